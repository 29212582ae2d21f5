"""A `BaseException` raised in workflow code fails the run; the worker serves on.

`KeyboardInterrupt`, `SystemExit` or a custom `BaseException` subclass raised by
an inline `async def` step (or the saga body) after activity step a: re-raised
out of the workflow, the first two stop the worker's workflow thread (the worker
stays up, runs nothing more and logs nothing) and the last leaves the workflow
hanging until its timeout. The saga must be unwound, the run must fail at once
(not retry its task, not time out), and the same worker must run the next saga.

The exceptions are raised only inside workflow code, on the worker: the test
itself never sees one.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from conftest import new_id, saga_worker, story
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from workflows.activities import ALL, Job, events
from workflows.interrupts import HealthyWorkflow, InterruptWorkflow

from sagakit import SagaReport, SagaStatus, StepStatus
from sagakit.temporal import REPORT_QUERY
from sagakit.temporal._failure import decode

pytestmark = pytest.mark.temporal

PROMPTLY = 15.0
"""Seconds a run may take here; a wedged worker or a hanging run takes until the timeout."""


@pytest.mark.parametrize("where", ["step", "body"])
@pytest.mark.parametrize("which", ["KeyboardInterrupt", "SystemExit", "Halt"])
async def test_unwinds_fails_the_run_and_the_worker_serves_on(
    client: Client, which: str, where: str
) -> None:
    job = Job(run=new_id("run"), steps=["a"])
    healthy = Job(run=new_id("run"), steps=["a", "b"])
    async with saga_worker(
        client, workflows=[InterruptWorkflow, HealthyWorkflow], activities=ALL
    ) as w:
        handle = await client.start_workflow(
            InterruptWorkflow.run,
            args=[job, which, where],
            id=new_id(),
            task_queue=w.task_queue,
            execution_timeout=timedelta(seconds=120),
        )
        with pytest.raises(WorkflowFailureError) as ei:
            async with asyncio.timeout(PROMPTLY):
                await handle.result()
        status = (await handle.describe()).status
        types = [e.event_type async for e in handle.fetch_history_events()]
        full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        # The same worker, right after: a wedged one would let this time out.
        async with asyncio.timeout(PROMPTLY):
            result = await client.execute_workflow(
                HealthyWorkflow.run, healthy, id=new_id(), task_queue=w.task_queue
            )
    assert result == ["do-a", "do-b"]
    assert events(healthy.run) == ["do:a", "do:b"]

    # Step a was undone, then the run failed: closed, not retrying its task.
    assert events(job.run) == ["do:a", "undo:a"]
    assert status is WorkflowExecutionStatus.FAILED
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in types
    assert types[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED

    err = ei.value.cause
    assert isinstance(err, ApplicationError)
    assert err.type == which
    assert err.non_retryable
    assert "1 of 1 undo(s) succeeded" in err.message
    assert f"{which} is a BaseException" in err.message
    assert "raise an Exception subclass" in err.message  # the fix
    at = "at step 2 'interrupt'" if where == "step" else "in the saga body"
    assert at in err.message
    # The cause keeps the original, with where it was raised.
    cause = err.__cause__
    assert isinstance(cause, ApplicationError)
    assert cause.type == which
    assert f"{which} from " in cause.message

    # The full report (the query's): step a undone; the inline step failed with it.
    assert full.status is SagaStatus.COMPENSATED
    assert full.compensation_order == ["do_a"]
    assert full.step("do_a").status is StepStatus.SUCCEEDED
    if where == "step":
        assert [s.name for s in full.steps] == ["do_a", "interrupt"]
        assert full.steps[-1].status is StepStatus.FAILED
        assert full.steps[-1].error is not None
        assert full.steps[-1].error.type == which
    else:
        assert [s.name for s in full.steps] == ["do_a"]

    # The report, as a failed saga carries it: every step, as the query's.
    report = decode(err.details[0])
    assert report.status is SagaStatus.COMPENSATED
    assert story(report) == story(full)


@pytest.mark.parametrize("which", ["KeyboardInterrupt", "SystemExit", "Halt"])
async def test_in_a_gathered_step_it_fails_the_run_and_the_worker_serves_on(
    client: Client, which: str
) -> None:
    """Raised by an inline step in a task of its own (saga.gather), it fails the run too."""
    job = Job(run=new_id("run"), steps=["a", "b"])
    healthy = Job(run=new_id("run"), steps=["a"])
    async with saga_worker(
        client, workflows=[InterruptWorkflow, HealthyWorkflow], activities=ALL
    ) as w:
        handle = await client.start_workflow(
            InterruptWorkflow.run,
            args=[job, which, "gather"],
            id=new_id(),
            task_queue=w.task_queue,
            execution_timeout=timedelta(seconds=120),
        )
        with pytest.raises(WorkflowFailureError) as ei:
            async with asyncio.timeout(PROMPTLY):
                await handle.result()
        async with asyncio.timeout(PROMPTLY):
            await client.execute_workflow(
                HealthyWorkflow.run, healthy, id=new_id(), task_queue=w.task_queue
            )
    assert events(healthy.run) == ["do:a"]
    assert "undo:a" in events(job.run)
    err = ei.value.cause
    assert isinstance(err, ApplicationError)
    assert err.type == which
    assert err.non_retryable
    report = decode(err.details[0])
    assert report.status is SagaStatus.COMPENSATED
    assert report.step("interrupt").error is not None
    assert report.step("interrupt").error.type == which  # type: ignore[union-attr]
