"""The Temporal adapter against a real dev server: each class is one rule."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from conftest import new_id, saga_worker, story
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)
from workflows.activities import ALL, JOURNAL, STARTED, STEPS, Job, events, sync_touch
from workflows.sagas import (
    BadStepWorkflow,
    ByNameWorkflow,
    CancelSagaTaskWorkflow,
    ChildDo,
    ChildStepWorkflow,
    ChildUndo,
    InlineHookWorkflow,
    InlineUndoWorkflow,
    InlineWorkflow,
    LocalStepsWorkflow,
    SlowRetryWorkflow,
    StepsWorkflow,
    SyncActivityWorkflow,
    TwoSagasWorkflow,
)

from sagakit import ErrorInfo, OmittedSteps, SagaReport, SagaStatus, StepStatus, UndoStatus
from sagakit.temporal import REPORT_QUERY, SAGA_FAILED_TYPE, report_from_failure

pytestmark = pytest.mark.temporal

WORKFLOWS = [
    StepsWorkflow,
    TwoSagasWorkflow,
    ChildStepWorkflow,
    ChildDo,
    ChildUndo,
    InlineWorkflow,
    InlineUndoWorkflow,
    InlineHookWorkflow,
    BadStepWorkflow,
    SyncActivityWorkflow,
    LocalStepsWorkflow,
    CancelSagaTaskWorkflow,
]


async def run_failing(client: Client, job: Job, workflow: type = StepsWorkflow) -> ApplicationError:
    """Run a saga workflow that must fail; return its SagaFailed failure."""
    async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
        with pytest.raises(WorkflowFailureError) as ei:
            await client.execute_workflow(
                workflow.run,  # type: ignore[attr-defined]
                job,
                id=new_id(),
                task_queue=w.task_queue,
            )
    err = ei.value.cause
    assert isinstance(err, ApplicationError)
    return err


async def run_failing_with_report(
    client: Client, job: Job, workflow: type = StepsWorkflow
) -> tuple[ApplicationError, SagaReport]:
    """Run a saga workflow that must fail; its SagaFailed failure and its full report.

    The full report is the `sagakit_report` query's, asked while the worker
    still polls: every step, with its times. The failure's report tells the
    same story, every step and undo, without the step times.
    """
    async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
        handle = await client.start_workflow(
            workflow.run,  # type: ignore[attr-defined]
            job,
            id=new_id(),
            task_queue=w.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as ei:
            await handle.result()
        full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
    err = ei.value.cause
    assert isinstance(err, ApplicationError)
    assert story(report_of(err)) == story(full)
    return err, full


def report_of(err: BaseException) -> SagaReport:
    """The report in a SagaFailed failure, read the way users read it."""
    report = report_from_failure(err)
    assert report is not None, "the SagaFailed failure carries no report"
    return report


async def event_types(handle: WorkflowHandle[Any, Any]) -> list[EventType.ValueType]:
    return [e.event_type async for e in handle.fetch_history_events()]


async def poll_until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - the journal has no event to wait on
            await asyncio.sleep(0.05)


class TestSuccess:
    async def test_all_dos_run_in_order_and_no_undo(self, client: Client) -> None:
        """A saga whose steps all succeed returns their results and runs no undo."""
        job = Job(run=new_id("run"))
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            result = await client.execute_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
        assert result == [f"do-{n}" for n in STEPS]
        assert events(job.run) == [f"do:{n}" for n in STEPS]

    async def test_activity_ids_name_the_step(self, client: Client) -> None:
        """Activity ids read `seq.name` for a do and `seq.name.undo` for an undo."""
        job = Job(run=new_id("run"), steps=["a", "b"], fail=["b"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            ids = [
                e.activity_task_scheduled_event_attributes.activity_id
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
        assert ids == ["1.do_a", "2.do_b", "2.do_b.undo", "1.do_a.undo"]

    async def test_sync_activity_sees_the_step(self, client: Client) -> None:
        """A sync activity on the thread pool reads the step's idempotency key too."""
        from concurrent.futures import ThreadPoolExecutor

        job = Job(run=new_id("run"))
        with ThreadPoolExecutor(2) as pool:
            async with saga_worker(
                client, workflows=WORKFLOWS, activities=[sync_touch], activity_executor=pool
            ) as w:
                wf_id = new_id()
                assert (
                    await client.execute_workflow(
                        SyncActivityWorkflow.run, job, id=wf_id, task_queue=w.task_queue
                    )
                    == "sync"
                )
        [entry] = JOURNAL[job.run]
        assert entry.key.startswith(f"{wf_id}/")
        assert entry.key.endswith("#1")

    async def test_local_activities(self, client: Client) -> None:
        """`local=True` runs do and undo as local activities, unwound the same way."""
        job = Job(run=new_id("run"), steps=["a", "b", "c"], fail=["c"])
        err = await run_failing(client, job, LocalStepsWorkflow)
        assert err.type == SAGA_FAILED_TYPE
        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]


class TestUnwindOrder:
    @pytest.mark.parametrize("position", range(len(STEPS)))
    async def test_failure_at_each_position_unwinds_lifo(
        self, client: Client, position: int
    ) -> None:
        """A do failing at any position runs the registered undos as activities, LIFO."""
        failing = STEPS[position]
        job = Job(run=new_id("run"), fail=[failing])
        err, full = await run_failing_with_report(client, job)
        ran = list(STEPS[: position + 1])
        assert events(job.run) == [f"do:{n}" for n in ran] + [f"undo:{n}" for n in reversed(ran)]
        # The full report (the query's): every step and every undo.
        assert full.status is SagaStatus.COMPENSATED
        assert full.error == full.step(f"do_{failing}").error
        assert full.error is not None
        assert full.error.type == "Boom"
        assert [(s.name, s.status) for s in full.steps] == [
            *((f"do_{n}", StepStatus.SUCCEEDED) for n in ran[:-1]),
            (f"do_{failing}", StepStatus.FAILED),
        ]
        assert [(s.undo.name, s.undo.status) for s in full.steps if s.undo] == [
            (f"undo_{n}", UndoStatus.COMPENSATED) for n in ran
        ]
        assert full.compensation_order == [f"do_{n}" for n in reversed(ran)]
        # The failure's report: every step and undo, as the query's.
        report = report_of(err)
        assert report.status is SagaStatus.COMPENSATED
        assert report.error == full.error
        assert [(s.name, s.status) for s in report.steps] == [
            (s.name, s.status) for s in full.steps
        ]
        assert report.compensation_order == full.compensation_order
        assert report.omitted == OmittedSteps()

    async def test_parallel_compensation_runs_every_undo_concurrently(self, client: Client) -> None:
        """With parallel_compensation every undo is scheduled before any completes."""
        job = Job(run=new_id("run"), fail=["e"], parallel=True)
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            types = await event_types(handle)
        assert sorted(events(job.run)[5:]) == sorted(f"undo:{n}" for n in STEPS)
        # The five undo ActivityTaskScheduled events come in one workflow task.
        last_do_done = max(
            i for i, t in enumerate(types) if t == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        )
        after = types[last_do_done:]
        first_undo_end = after.index(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        scheduled = after[:first_undo_end].count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
        assert scheduled == 5


class TestContinueOnCompensationError:
    async def test_keeps_going_past_a_failed_undo(self, client: Client) -> None:
        """continue_on_compensation_error=True runs every other undo and reports the failure."""
        job = Job(run=new_id("run"), fail=["d"], fail_undo=["c"], keep_going=True)
        err = await run_failing(client, job)
        assert events(job.run)[4:] == ["undo:d", "undo:c", "undo:b", "undo:a"]
        report = report_of(err)
        assert report.status is SagaStatus.COMPENSATION_FAILED
        assert [s.name for s in report.failed_undos] == ["do_c"]
        assert report.step("do_c").undo.error.type == "Boom"  # type: ignore[union-attr]

    async def test_stops_at_a_failed_undo(self, client: Client) -> None:
        """continue_on_compensation_error=False stops the unwind and skips the rest."""
        job = Job(run=new_id("run"), fail=["d"], fail_undo=["c"], keep_going=False)
        err = await run_failing(client, job)
        assert events(job.run)[4:] == ["undo:d", "undo:c"]
        report = report_of(err)
        assert report.step("do_b").undo.status is UndoStatus.SKIPPED  # type: ignore[union-attr]
        assert report.step("do_a").undo.status is UndoStatus.SKIPPED  # type: ignore[union-attr]


class TestChildWorkflowStep:
    async def test_child_workflow_do_and_undo(self, client: Client) -> None:
        """A @workflow.defn class is a step: a child workflow, undone by a child, keyed alike."""
        job = Job(run=new_id("run"), steps=[], fail=["c"])
        wf_id = new_id()
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                ChildStepWorkflow.run, job, id=wf_id, task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            children = [
                e.start_child_workflow_execution_initiated_event_attributes.workflow_id
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
            ]
        assert children == [f"{wf_id}.2.b", f"{wf_id}.2.b.undo"]
        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        b = [e for e in JOURNAL[job.run] if e.name == "b"]
        assert b[0].key == b[1].key
        assert b[0].key.endswith("#2")
        assert [e.outcome for e in b] == ["pending", "succeeded"]

    async def test_child_failure_fails_the_saga(self, client: Client) -> None:
        """A failing child workflow step is compensated like a failing activity."""
        job = Job(run=new_id("run"), steps=[], fail=["b"])
        err = await run_failing(client, job, ChildStepWorkflow)
        assert events(job.run) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert isinstance(err.__cause__, ChildWorkflowError)

    async def test_cancel_during_child_step(self, client: Client) -> None:
        """Cancelling the parent cancels the running child and waits for it, then unwinds."""
        job = Job(run=new_id("run"), steps=[], block=["b"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                ChildStepWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await asyncio.wait_for(STARTED[job.run].wait(), 10)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
        assert isinstance(ei.value.cause, CancelledError)
        b = [f"{e.event}:{e.phase}" for e in JOURNAL[job.run] if e.name == "b"]
        assert b == ["started:do", "cancelled:do", "ran:undo"]
        assert events(job.run) == ["do:a", "undo:b", "undo:a"]


async def run_refused(
    client: Client, job: Job, which: str
) -> tuple[ApplicationError, SagaReport, list[EventType.ValueType]]:
    """Run `BAD[which]`, which must fail the saga: the refusal, the full report, the history.

    The refusal is the `SagaFailed` failure's cause.
    """
    async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
        handle = await client.start_workflow(
            BadStepWorkflow.run, args=[job, which], id=new_id(), task_queue=w.task_queue
        )
        with pytest.raises(WorkflowFailureError) as ei:
            await handle.result()
        types = await event_types(handle)
        full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
    err = ei.value.cause
    assert isinstance(err, ApplicationError)
    assert err.type == SAGA_FAILED_TYPE
    cause = err.__cause__
    assert isinstance(cause, ApplicationError)
    return cause, full, types


class TestInlineStep:
    async def test_inline_step_waits_for_a_signal(self, client: Client) -> None:
        """An `async def` step runs in the workflow: here it waits for a signal."""
        job = Job(run=new_id("run"))
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                InlineWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await handle.signal(InlineWorkflow.decide, True)
            assert await handle.result() == ["do-a", "approved", "do-b"]

    async def test_inline_step_failure_unwinds(self, client: Client) -> None:
        """An inline step that raises unwinds the activity steps before it."""
        job = Job(run=new_id("run"))
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                InlineWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await handle.signal(InlineWorkflow.decide, False)
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
        assert events(job.run) == ["do:a", "undo:a"]
        assert isinstance(ei.value.cause, ApplicationError)
        assert ei.value.cause.type == SAGA_FAILED_TYPE
        assert "rejected" in str(ei.value.cause.cause)

    async def test_an_activity_do_with_an_inline_undo_that_waits_for_a_signal(
        self, client: Client
    ) -> None:
        """The do is an activity; its undo, said inline, waits in the unwind for a signal."""
        job = Job(run=new_id("run"), fail=["b"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                InlineUndoWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )

            async def undo_a_waits() -> bool:
                report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
                undo = report.step("do_a").undo
                return undo is not None and undo.status is UndoStatus.RUNNING

            async with asyncio.timeout(10):
                while not await undo_a_waits():  # noqa: ASYNC110 - only the query tells
                    await asyncio.sleep(0.05)
            await handle.signal(InlineUndoWorkflow.release)
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            types = await event_types(handle)
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        report = report_of(err)
        assert report.status is SagaStatus.COMPENSATED
        assert report.compensation_order == ["do_b", "do_a"]
        undo_a = report.step("do_a").undo
        assert undo_a is not None
        assert undo_a.name == "wait_for_release"
        assert undo_a.status is UndoStatus.COMPENSATED
        # Three activities (do a, do b, undo b): the undo of a ran in the workflow.
        assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 3
        assert events(job.run) == ["do:a", "do:b", "undo:b"]

    async def refused(
        self, client: Client, which: str
    ) -> tuple[ApplicationError, SagaReport, list[EventType.ValueType], Job]:
        """Run `BAD[which]`, which must be refused; its refusal, full report, history, job."""
        job = Job(run=new_id("run"), fail=["c"])
        cause, full, types = await run_refused(client, job, which)
        assert cause.type == "StepDefinitionError"
        return cause, full, types, job

    async def test_an_async_def_not_said_inline_is_refused_naming_both_fixes(
        self, client: Client
    ) -> None:
        """A forgotten `@activity.defn` no longer runs in the workflow: nothing runs at all."""
        cause, full, types, job = await self.refused(client, "not_inline")
        assert "the do stamp is an `async def` that is neither an activity" in cause.message
        assert "@activity.defn" in cause.message
        assert "inline=True" in cause.message
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
        assert full.steps == []
        assert JOURNAL[job.run] == []

    async def test_an_undo_not_said_inline_is_refused_and_unwinds(self, client: Client) -> None:
        """Refused at its step, before its do: the step before it is undone."""
        cause, full, _, job = await self.refused(client, "not_inline_undo")
        assert "the undo release_nothing" in cause.message
        assert "@activity.defn" in cause.message
        assert "inline=True" in cause.message
        assert events(job.run) == ["do:a", "undo:a"]
        assert [s.name for s in full.steps] == ["do_a"]

    async def test_an_async_def_alert_hook_is_refused_before_the_saga_runs(
        self, client: Client
    ) -> None:
        """The hook runs as an activity on Temporal: workflow code there is refused up front."""
        job = Job(run=new_id("run"))
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                InlineHookWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            types = await event_types(handle)
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        assert err.type == "StepDefinitionError"
        assert "the on_compensation_failed hook alert_inline" in err.message
        assert "@activity.defn" in err.message
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
        assert JOURNAL[job.run] == []

    @pytest.mark.parametrize(
        ("which", "reason"),
        [
            ("nothing_inline", "and the undo undo_a is an activity"),
            ("nothing_inline_no_undo", "and it has no undo"),
        ],
    )
    async def test_inline_with_nothing_to_run_inline_is_refused(
        self, client: Client, which: str, reason: str
    ) -> None:
        """`inline=True` on a step of activities only is refused, with the reason."""
        cause, _, types, job = await self.refused(client, which)
        assert "says inline=True, but its do do_a is an activity" in cause.message
        assert reason in cause.message
        assert "nothing would run inline; drop inline=True" in cause.message
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
        assert JOURNAL[job.run] == []


class TestRetries:
    async def test_flaky_step_retries_then_succeeds(self, client: Client) -> None:
        """A do failing twice then succeeding is retried by its policy, with one key."""
        job = Job(run=new_id("run"), steps=["a", "b"], flaky={"b": 2})
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            assert await client.execute_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            ) == ["do-a", "do-b"]
        b = [e for e in JOURNAL[job.run] if e.name == "b"]
        assert [e.attempt for e in b] == [1, 2, 3]
        assert len({e.key for e in b}) == 1


class TestIdempotencyKey:
    async def test_do_and_undo_share_the_key_and_steps_differ(self, client: Client) -> None:
        """Do and undo of a step read one key; each step's key differs; undo knows the outcome."""
        job = Job(run=new_id("run"), steps=["a", "b", "c"], fail=["c"], flaky={"a": 1})
        await run_failing(client, job)
        by_name: dict[str, set[str]] = {}
        for e in JOURNAL[job.run]:
            by_name.setdefault(e.name, set()).add(e.key)
        assert all(len(keys) == 1 for keys in by_name.values())
        assert len({k for keys in by_name.values() for k in keys}) == 3
        undo_outcome = {e.name: e.outcome for e in JOURNAL[job.run] if e.phase == "undo"}
        assert undo_outcome == {"a": "succeeded", "b": "succeeded", "c": "failed"}

    async def test_two_sagas_in_one_run_have_distinct_keys(self, client: Client) -> None:
        """The second saga of a workflow run gets its own saga id, so its own keys."""
        job = Job(run=new_id("run"), steps=["a"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            await client.execute_workflow(
                TwoSagasWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
        first, second = (e.key for e in JOURNAL[job.run])
        assert first != second
        assert second.endswith("/2#1")


class TestFailureShape:
    async def test_saga_failed_is_a_non_retryable_application_error(self, client: Client) -> None:
        """The run fails with a non-retryable ApplicationError SagaFailed carrying the report."""
        job = Job(run=new_id("run"), steps=["a", "b"], fail=["b"])
        err, full = await run_failing_with_report(client, job)
        assert err.type == SAGA_FAILED_TYPE
        assert err.non_retryable
        report = report_of(err)
        assert report.status is SagaStatus.COMPENSATED
        assert report.error is not None
        assert report.error.type == "Boom"
        assert report.error.message == "do b failed"
        assert report.step("do_a").status is StepStatus.SUCCEEDED
        assert report.step("do_b").status is StepStatus.FAILED
        assert report.compensation_order == full.compensation_order == ["do_b", "do_a"]
        assert report.omitted == OmittedSteps()
        # The original error stays in the cause chain.
        assert isinstance(err.__cause__, ActivityError)
        inner = err.__cause__.__cause__
        assert isinstance(inner, ApplicationError)
        assert inner.type == "Boom"
        assert inner.message == "do b failed"

    async def test_report_carries_no_values_by_default(self, client: Client) -> None:
        """Without record_values the failure details hold no step result or arg."""
        job = Job(run=new_id("run"), steps=["a", "b"], fail=["b"], secret="s3cr3t-value")
        err = await run_failing(client, job)
        assert "s3cr3t" not in str(err.details)
        assert all(s.result is None for s in report_of(err).steps)

    async def test_the_failed_steps_error_reads_back_on_the_step_and_the_saga(
        self, client: Client
    ) -> None:
        """Read back from the failure, the report gives the failed do's error to it and the saga."""
        job = Job(run=new_id("run"), fail=["e"])
        err, full = await run_failing_with_report(client, job)
        boom = ErrorInfo(type="Boom", message="do e failed")
        report = report_of(err)
        assert report.status is SagaStatus.COMPENSATED
        assert report.error == boom
        assert report.step("do_e").status is StepStatus.FAILED
        assert report.step("do_e").error == boom
        assert report.compensation_order == [f"do_{n}" for n in reversed(STEPS)]
        assert story(report) == story(full)

    async def test_report_from_the_client_error(self, client: Client) -> None:
        """report_from_failure takes the WorkflowFailureError itself; saga_id fills in the id."""
        job = Job(run=new_id("run"), steps=["a", "b"], fail=["b"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        saga_id = f"{handle.id}/{handle.result_run_id}"
        report = report_from_failure(ei.value, saga_id=saga_id)
        assert report is not None
        assert report.saga_id == full.saga_id == saga_id
        assert report.status is full.status
        assert report.error == full.error
        assert abs(report.started_at - full.started_at) <= timedelta(milliseconds=1)
        assert full.ended_at is not None
        assert report.ended_at is not None
        assert abs(report.ended_at - full.ended_at) <= timedelta(milliseconds=1)
        assert story(report) == story(full)
        assert report.compensation_order == full.compensation_order == ["do_b", "do_a"]
        assert report_from_failure(ApplicationError("not a saga", type="Other")) is None


class TestRefusedBeforeScheduling:
    @pytest.mark.parametrize(
        ("which", "error_type", "message"),
        [
            ("sync", "StepDefinitionError", "@activity.defn"),
            ("timeout", "OptionsError", "start_to_close_timeout"),
            ("lambda", "StepDefinitionError", "lambda"),
        ],
    )
    async def test_bad_step_fails_the_run_before_any_activity(
        self, client: Client, which: str, error_type: str, message: str
    ) -> None:
        """A step the backend cannot run fails the saga before anything is scheduled."""
        job = Job(run=new_id("run"))
        cause, _, types = await run_refused(client, job, which)
        assert cause.type == error_type
        assert message in cause.message
        assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
        assert JOURNAL[job.run] == []

    @pytest.mark.parametrize(
        ("which", "half", "kind"),
        [
            ("empty_undo", "undo", "empty"),
            ("blank_undo", "undo", "blank"),
            ("empty_do", "do", "empty"),
        ],
    )
    async def test_empty_activity_name_is_refused_and_unwinds(
        self, client: Client, which: str, half: str, kind: str
    ) -> None:
        """An empty or blank activity name fails the saga before it is scheduled; a is undone."""
        job = Job(run=new_id("run"), fail=["c"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                BadStepWorkflow.run, args=[job, which], id=new_id(), task_queue=w.task_queue
            )
            # Promptly: scheduled with no activity type, the workflow task would fail
            # forever (BadScheduleActivityAttributes) and the run never end.
            with pytest.raises(WorkflowFailureError) as ei:
                async with asyncio.timeout(10):
                    await handle.result()
            scheduled = [
                e.activity_task_scheduled_event_attributes.activity_type.name
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
            full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        cause = err.__cause__
        assert isinstance(cause, ApplicationError)
        assert cause.type == "StepDefinitionError"
        assert f"the {half} " in cause.message
        assert f"{kind} activity name" in cause.message
        assert "registered under" in cause.message  # the fix
        assert scheduled == ["do_a", "undo_a"]
        assert events(job.run) == ["do:a", "undo:a"]
        # The full report (the query's): step a undone; the refused step never registered.
        assert full.status is SagaStatus.COMPENSATED
        assert [(s.name, s.status) for s in full.steps] == [("do_a", StepStatus.SUCCEEDED)]
        assert full.compensation_order == ["do_a"]
        assert full.error is not None
        assert full.error.type == "StepDefinitionError"
        # The failure's report: step a, undone, and the refusal as the saga's error.
        report = report_of(err)
        assert story(report) == story(full)
        assert report.compensation_order == ["do_a"]
        assert report.error == full.error


class TestQuery:
    async def test_report_query_shows_the_live_saga(self, client: Client) -> None:
        """`sagakit_report` returns the running saga's report as JSON."""
        job = Job(run=new_id("run"), steps=["a", "b"], block=["b"])
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await asyncio.wait_for(STARTED[job.run].wait(), 10)
            raw = await handle.query(REPORT_QUERY)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        report = SagaReport.model_validate(raw)
        assert report.status is SagaStatus.RUNNING
        assert [(s.name, s.status) for s in report.steps] == [
            ("do_a", StepStatus.SUCCEEDED),
            ("do_b", StepStatus.RUNNING),
        ]


class TestCancellation:
    async def test_cancel_mid_step_stops_it_then_compensates(self, client: Client) -> None:
        """Cancelling the workflow cancels the running do, waits for it, unwinds, ends CANCELLED."""
        job = Job(run=new_id("run"), block=["c"], undo_delay=0.5)
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await asyncio.wait_for(STARTED[job.run].wait(), 10)
            await handle.cancel()
            # A second request while the undos run: the server records one cancel
            # request per run, and the unwind must go on regardless.
            await poll_until(lambda: "undo:c" in events(job.run))
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            desc = await handle.describe()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        assert isinstance(ei.value.cause, CancelledError)
        assert desc.status == WorkflowExecutionStatus.CANCELED
        # The do was stopped before its undo ran.
        assert [f"{e.event}:{e.phase}:{e.name}" for e in JOURNAL[job.run] if e.name == "c"] == [
            "started:do:c",
            "cancelled:do:c",
            "ran:undo:c",
        ]
        assert events(job.run) == ["do:a", "do:b", "undo:c", "undo:b", "undo:a"]
        assert report.cancelled
        assert report.status is SagaStatus.COMPENSATED
        assert report.step("do_c").status is StepStatus.CANCELLED
        undo_c = next(e for e in JOURNAL[job.run] if e.phase == "undo" and e.name == "c")
        assert undo_c.outcome == "unknown"

    async def test_second_cancel_does_not_abort_compensation(self, client: Client) -> None:
        """A cancel arriving while undos run is noted, and every undo still runs."""
        job = Job(run=new_id("run"), block=["c"], undo_delay=0.5)
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                CancelSagaTaskWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await asyncio.wait_for(STARTED[job.run].wait(), 10)
            await handle.signal(CancelSagaTaskWorkflow.cancel_saga)
            await poll_until(lambda: "undo:c" in events(job.run))
            await handle.signal(CancelSagaTaskWorkflow.cancel_saga)
            assert await handle.result() == "cancelled"
        assert events(job.run) == ["do:a", "do:b", "undo:c", "undo:b", "undo:a"]


class ReplayCounter(Interceptor):
    """Counts, per workflow id, how often the workflow's code starts and whether by replay.

    A worker that keeps a workflow cached runs its code once; a worker with
    no cache evicts it after every task and starts it again from history for
    the next one, replaying (`workflow.unsafe.is_replaying()`). The count is
    kept outside the workflow (a plain dict of this process), not asked of it.
    """

    def __init__(self) -> None:
        self.starts: defaultdict[str, list[bool]] = defaultdict(list)
        """Workflow id -> one entry per start of its code: was it a replay."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        """Record each start of a workflow's code, then run it."""
        starts = self.starts

        class Inbound(WorkflowInboundInterceptor):
            async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
                starts[workflow.info().workflow_id].append(workflow.unsafe.is_replaying())
                return await super().execute_workflow(input)

        return Inbound


async def run_without_cache(client: Client, job: Job) -> tuple[Any, list[bool]]:
    """Run `StepsWorkflow` on a worker with no workflow cache.

    Returns:
        The workflow's result, or the `ApplicationError` it failed with, and
        for each start of its code whether it was a replay.
    """
    counter = ReplayCounter()
    wf_id = new_id()
    async with saga_worker(
        client,
        workflows=WORKFLOWS,
        activities=ALL,
        max_cached_workflows=0,
        interceptors=[counter],
    ) as w:
        outcome: Any
        try:
            outcome = await client.execute_workflow(
                StepsWorkflow.run, job, id=wf_id, task_queue=w.task_queue
            )
        except WorkflowFailureError as e:
            outcome = e.cause
    return outcome, counter.starts[wf_id]


class TestEviction:
    async def test_eviction_after_every_task_does_not_compensate(self, client: Client) -> None:
        """Evicted after every task, the workflow replays once per step; the saga just succeeds."""
        job = Job(run=new_id("run"), steps=["a", "b", "c"])
        result, starts = await run_without_cache(client, job)
        assert result == ["do-a", "do-b", "do-c"]
        assert events(job.run) == ["do:a", "do:b", "do:c"]
        # Started fresh once, then rebuilt by replay for each completed do at least.
        assert starts[0] is False
        assert starts[1:].count(True) >= 3

    async def test_eviction_mid_unwind_resumes_the_unwind(self, client: Client) -> None:
        """Evicted between undos, a workflow replays and finishes its unwind, each undo once."""
        job = Job(run=new_id("run"), fail=["e"])
        err, starts = await run_without_cache(client, job)
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        assert events(job.run)[5:] == [f"undo:{n}" for n in reversed(STEPS)]
        # Rebuilt by replay after each do and after each undo but the last.
        assert starts[0] is False
        assert starts[1:].count(True) >= len(STEPS) + len(STEPS) - 1


class TestStepsByName:
    async def test_names_refs_and_summary(self, client: Client) -> None:
        """Activities given by name or ActivityRef run as steps; summary reaches the history."""
        job = Job(run=new_id("run"))
        async with saga_worker(client, workflows=[ByNameWorkflow], activities=ALL) as w:
            handle = await client.start_workflow(
                ByNameWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            assert await handle.result() == ["do-a", "do-b"]
            scheduled = [
                e
                async for e in handle.fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            ]
        assert [e.activity_task_scheduled_event_attributes.activity_id for e in scheduled] == [
            "1.do_a",
            "2.do_b",
        ]
        assert b"reserve a" in scheduled[0].user_metadata.summary.data

    async def test_lean_failure_has_no_details(self, client: Client) -> None:
        """report_in_failure=False leaves the details empty; the query still has the report."""
        job = Job(run=new_id("run"), fail=["b"])
        async with saga_worker(client, workflows=[ByNameWorkflow], activities=ALL) as w:
            handle = await client.start_workflow(
                ByNameWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        assert err.details == ()
        assert report_from_failure(ei.value) is None
        assert report.compensation_order == ["do_b", "do_a"]


class TestTimeSkippingServer:
    async def test_failure_unwinds_on_the_time_skipping_server(
        self, temporal_time_skipping_env: WorkflowEnvironment
    ) -> None:
        """The same saga unwinds the same way on the time-skipping test server."""
        client = temporal_time_skipping_env.client
        job = Job(run=new_id("run"), steps=["a", "b", "c"], fail=["c"], flaky={"b": 1})
        err = await run_failing(client, job)
        assert err.type == SAGA_FAILED_TYPE
        assert events(job.run) == ["do:a", "do:b", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]

    async def test_hour_long_retry_backoff_is_skipped(
        self, temporal_time_skipping_env: WorkflowEnvironment
    ) -> None:
        """A step retried after an hour's backoff finishes at once on the time-skipping server."""
        client = temporal_time_skipping_env.client
        job = Job(run=new_id("run"), steps=["a", "b"], flaky={"b": 1})
        async with saga_worker(client, workflows=[SlowRetryWorkflow], activities=ALL) as w:
            started = await temporal_time_skipping_env.get_current_time()
            result = await client.execute_workflow(
                SlowRetryWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            skipped = await temporal_time_skipping_env.get_current_time() - started
        assert result == ["do-a", "do-b"]
        assert events(job.run) == ["do:a", "do:b", "do:b"]
        assert skipped >= timedelta(hours=1)
