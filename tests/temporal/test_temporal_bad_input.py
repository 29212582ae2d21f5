"""Bad input after a good first step: the run fails promptly, step 1 is undone, the worker lives.

Each case would otherwise wedge something: a payload over the limit or an arg
the converter cannot encode fails every workflow task from then on (or its undo
is attempted with the same args); a plain `def` saga function retries the
workflow task forever; a step left in a task that never started reports success.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from conftest import new_id, saga_worker
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from workflows.bad_input import DONE, BadInputWorkflow, do_any, do_fail, undo_any

from sagakit import SagaStatus, StepStatus, UndoStatus
from sagakit.temporal import SAGA_FAILED_TYPE, report_from_failure

WORKFLOWS = [BadInputWorkflow]
ACTIVITIES = [do_any, undo_any, do_fail]


async def run_bad(client: Client, task_queue: str, which: str) -> tuple[str, WorkflowFailureError]:
    """Run one bad saga to its end, within 15 s; its run name and the failure."""
    run = f"{which}-{uuid.uuid4()}"
    handle = await client.start_workflow(
        BadInputWorkflow.run, args=[which, run], id=new_id(), task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as ei:
        async with asyncio.timeout(15):
            await handle.result()
    return run, ei.value


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
            run, failure = await run_bad(client, w.task_queue, which)
            await healthy_run_succeeds(client, w.task_queue)
        err = failure.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        cause = err.__cause__
        assert isinstance(cause, ApplicationError)
        assert cause.type == error_type
        assert message in cause.message
        report = report_from_failure(failure)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        first, second = report.steps
        assert first.undo is not None
        assert first.undo.status is UndoStatus.COMPENSATED
        assert second.status is StepStatus.FAILED
        assert second.undo is not None
        assert second.undo.status is UndoStatus.NOT_NEEDED
        assert [p for p, r in DONE if r == run] == ["do", "undo"]


class TestSagaFunctionsThatCannotRun:
    async def test_a_plain_def_saga_function_fails_the_run(self, client: Client) -> None:
        """A saga function that is not `async def` fails the run instead of retrying its task."""
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure = await run_bad(client, w.task_queue, "plain_function")
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
            run, failure = await run_bad(client, w.task_queue, "unstarted_task")
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


class TestUndosThatWouldRetryForever:
    async def test_an_unregistered_undo_is_bounded_and_the_unwind_goes_on(
        self, client: Client
    ) -> None:
        """An undo no worker registered, with unlimited retries, stops after UNDO_ATTEMPTS.

        Without the bound it would retry forever (it has no schedule_to_close_timeout),
        and step 1's undo would wait behind it.
        """
        async with saga_worker(client, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            run, failure = await run_bad(client, w.task_queue, "unregistered_undo")
            report = report_from_failure(failure)
            await healthy_run_succeeds(client, w.task_queue)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATION_FAILED
        second = report.steps[1].undo
        assert second is not None
        assert second.status is UndoStatus.FAILED
        assert ("undo", run) in DONE  # step 1 was undone after it
