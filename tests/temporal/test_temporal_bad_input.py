"""Bad input after a good first step: the run fails promptly, step 1 is undone, the worker lives.

Each case would otherwise wedge something: a payload over the limit or an arg
the converter cannot encode fails every workflow task from then on (or its undo
is attempted with the same args); a plain `def` saga function retries the
workflow task forever; a step left in a task that never started reports success.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import uuid
from typing import Any

import pytest
from conftest import new_id, saga_worker, story
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer
from workflows.bad_input import DONE, BadInputWorkflow, do_any, do_fail, undo_any

from sagakit import OmittedSteps, SagaReport, SagaStatus, StepStatus, UndoStatus
from sagakit.temporal import REPORT_QUERY, SAGA_FAILED_TYPE, SagakitPlugin, report_from_failure

pytestmark = pytest.mark.temporal  # every test here runs on the dev server

WORKFLOWS = [BadInputWorkflow]
ACTIVITIES = [do_any, undo_any, do_fail]


async def run_bad(
    client: Client, task_queue: str, which: str
) -> tuple[str, WorkflowFailureError, WorkflowHandle[Any, Any]]:
    """Run one bad saga to its end, within 15 s; its run name, the failure and the workflow."""
    run = f"{which}-{uuid.uuid4()}"
    handle = await client.start_workflow(
        BadInputWorkflow.run, args=[which, run], id=new_id(), task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as ei:
        async with asyncio.timeout(15):
            await handle.result()
    return run, ei.value, handle


async def full_report(handle: WorkflowHandle[Any, Any]) -> SagaReport:
    """The saga's full report, every step: the `sagakit_report` query's (a worker must poll)."""
    return SagaReport.model_validate(await handle.query(REPORT_QUERY))


async def healthy_run_succeeds(client: Client, task_queue: str) -> None:
    """The same worker still runs a good saga to its end."""
    run = f"ok-{uuid.uuid4()}"
    async with asyncio.timeout(15):
        await client.execute_workflow(
            BadInputWorkflow.run, args=["healthy", run], id=new_id(), task_queue=task_queue
        )
    assert ("do", run) in DONE


class TestArgsThatCannotTravel:
    @pytest.mark.parametrize(
        ("which", "error_type", "message"),
        [
            ("big_arg", "PayloadTooLargeError", "over the payload limit"),
            ("unserializable_arg", "StepDefinitionError", "cannot be encoded"),
        ],
    )
    async def test_refused_before_scheduling_and_step_one_undone(
        self, client: Client, which: str, error_type: str, message: str
    ) -> None:
        """Args that cannot be sent fail their step unscheduled; only step 1 is undone."""
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure, handle = await run_bad(client, w.task_queue, which)
            full = await full_report(handle)
            await healthy_run_succeeds(client, w.task_queue)
        err = failure.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        cause = err.__cause__
        assert isinstance(cause, ApplicationError)
        assert cause.type == error_type
        assert message in cause.message
        # The full report (the query's): step 1 undone, step 2's undo not needed.
        assert full.status is SagaStatus.COMPENSATED
        first, second = full.steps
        assert first.status is StepStatus.SUCCEEDED
        assert first.undo is not None
        assert first.undo.status is UndoStatus.COMPENSATED
        assert second.status is StepStatus.FAILED
        assert second.undo is not None
        assert second.undo.status is UndoStatus.NOT_NEEDED
        assert full.compensation_order == ["do_any"]
        # The failure's report: both steps, as the query's.
        report = report_from_failure(failure)
        assert report is not None
        assert story(report) == story(full)
        assert report.omitted == OmittedSteps()
        assert [p for p, r in DONE if r == run] == ["do", "undo"]


class TestSagaFunctionsThatCannotRun:
    async def test_a_plain_def_saga_function_fails_the_run(self, client: Client) -> None:
        """A saga function that is not `async def` fails the run instead of retrying its task."""
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure, _ = await run_bad(client, w.task_queue, "plain_function")
            await healthy_run_succeeds(client, w.task_queue)
        err = failure.cause
        assert isinstance(err, ApplicationError)
        assert err.type == "StepDefinitionError"
        assert "async def" in err.message
        assert [p for p, r in DONE if r == run] == []


class TestStepsNeverStarted:
    async def test_a_step_left_in_a_task_that_never_started_fails_the_saga(
        self, client: Client
    ) -> None:
        """A step in a task not yet started when the saga returned is a SagaStateError."""
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure, _ = await run_bad(client, w.task_queue, "unstarted_task")
            await healthy_run_succeeds(client, w.task_queue)
        err = failure.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        cause = err.__cause__
        assert isinstance(cause, ApplicationError)
        assert cause.type == "SagaStateError"
        assert "saga.step(do_any)" in cause.message
        report = report_from_failure(failure)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        assert [p for p, r in DONE if r == run] == ["do", "undo"]

    async def test_its_task_logs_nothing_in_the_worker_or_in_a_replay(
        self, client: Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The task ends cancelled: no "Task exception was never retrieved" in the worker's log."""
        with caplog.at_level(logging.DEBUG):
            async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
                run, failure, handle = await run_bad(client, w.task_queue, "task_left_behind")
            history = await handle.fetch_history()
            replayer = Replayer(workflows=WORKFLOWS, plugins=[SagakitPlugin()])
            await replayer.replay_workflow(history)
            gc.collect()
        cause = failure.cause.__cause__ if failure.cause is not None else None
        assert isinstance(cause, ApplicationError)
        assert cause.type == "SagaStateError"
        assert "saga.step(do_any)" in cause.message
        assert [p for p, r in DONE if r == run] == ["do", "undo"]
        stray = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
        assert stray == []


class TestUndosThatWouldRetryForever:
    async def test_an_unregistered_undo_is_bounded_and_the_unwind_goes_on(
        self, client: Client
    ) -> None:
        """An undo no worker registered, with unlimited retries, stops after UNDO_ATTEMPTS.

        Without the bound it would retry forever (it has no schedule_to_close_timeout),
        and step 1's undo would wait behind it.
        """
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure, handle = await run_bad(client, w.task_queue, "unregistered_undo")
            full = await full_report(handle)
            await healthy_run_succeeds(client, w.task_queue)
        # The full report (the query's): step 2's undo failed, step 1's ran after it.
        assert full.status is SagaStatus.COMPENSATION_FAILED
        first, second, third = (s.undo for s in full.steps)
        assert second is not None
        assert second.status is UndoStatus.FAILED
        assert first is not None
        assert first.status is UndoStatus.COMPENSATED
        assert third is None
        assert second.order is not None
        assert first.order is not None
        assert second.order < first.order
        assert ("undo", run) in DONE  # step 1 was undone after it
        # The failure's report: every step and undo, as the query's.
        report = report_from_failure(failure)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATION_FAILED
        assert story(report) == story(full)
        assert [s.seq for s in report.failed_undos] == [2]
