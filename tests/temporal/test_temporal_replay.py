"""Determinism: recorded histories replay, and a patched new step replays old histories."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id, saga_worker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.testing import ActivityEnvironment
from temporalio.worker import (
    ExecuteActivityInput,
    Interceptor,
    Replayer,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import NondeterminismError
from workflows.activities import ALL, Job
from workflows.sagas import (
    CancelSagaTaskWorkflow,
    ChildDo,
    ChildStepWorkflow,
    ChildUndo,
    DeadlineDropped,
    DeadlineWorkflow,
    StepsWorkflow,
    TeardownWorkflow,
    TwoSagasWorkflow,
    VersionedUnpatched,
    VersionedV1,
    VersionedV2,
)

from sagakit import DoOutcome, Phase, StepContext
from sagakit.temporal import SagakitPlugin
from sagakit.temporal._header import STEP_HEADER, decode_step, run_saga_base
from sagakit.temporal._plugin import _activity_step

pytestmark = pytest.mark.temporal

HISTORIES = Path(__file__).parent / "histories"
# Set to re-record the committed histories (after a deliberate, versioned change).
RECORD = os.environ.get("SAGAKIT_RECORD_HISTORIES") == "1"

RECORDED = {
    "steps_fail_at_c.json": (StepsWorkflow, Job(run="recorded", fail=["c"])),
    "steps_success.json": (StepsWorkflow, Job(run="recorded", steps=["a", "b"])),
    "child_step_fail_at_c.json": (ChildStepWorkflow, Job(run="recorded", steps=[], fail=["c"])),
    # The 2 s deadline passed while b's do hung: b cancelled, b and a undone.
    "deadline_mid_step.json": (
        DeadlineWorkflow,
        Job(run="recorded", steps=["a", "b", "c"], block=["b"], deadline=2.0),
    ),
}
# Recorded before sagakit stopped sending the `sagakit` header with every activity
# (#12): every scheduled activity carries it. Never re-recorded: they stand for the
# workflows that were running when a worker was upgraded.
BEFORE_STEP_IDS = {
    "before_ids_two_sagas.json": TwoSagasWorkflow,
    "before_ids_parallel_fail.json": TeardownWorkflow,
}


# Recorded by the builds between #12 and #18, which sent the header only where the
# activity or child workflow id could not tell the step; their activities and
# children without one read it off their id. Never re-recorded, as above. The
# `.2.b` ones are the child workflows ChildStepWorkflow ran as step 2's do and undo.
STEP_IDS = {
    "ids_steps_fail_at_c.json": StepsWorkflow,
    "ids_two_sagas.json": TwoSagasWorkflow,
    "ids_child_step_fail_at_c.json": ChildStepWorkflow,
    "ids_child_step_fail_at_c.2.b.json": ChildDo,
    "ids_child_step_fail_at_c.2.b.undo.json": ChildUndo,
}


def replayer(*workflows: type, interceptors: list[Interceptor] | None = None) -> Replayer:
    return Replayer(
        workflows=list(workflows), plugins=[SagakitPlugin()], interceptors=interceptors or []
    )


def load(name: str) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"recorded-{Path(name).stem}", (HISTORIES / name).read_text())


def learned_steps(history: WorkflowHistory) -> dict[str, StepContext | None]:
    """Activity id -> the step the activity learns, with the headers its history holds."""
    learned = {}
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        scheduled = event.activity_task_scheduled_event_attributes
        env = ActivityEnvironment()
        env.info = dataclasses.replace(
            env.info,
            workflow_id=history.workflow_id,
            workflow_run_id=history.run_id,
            activity_id=scheduled.activity_id,
        )
        input = ExecuteActivityInput(lambda: None, [], None, dict(scheduled.header.fields))
        learned[scheduled.activity_id] = env.run(_activity_step, input)
    return learned


async def run_to_history(
    client: Client, workflow: type, job: Job, wf_id: str | None = None
) -> WorkflowHistory:
    async with saga_worker(
        client, workflows=[workflow, ChildDo, ChildUndo, CancelSagaTaskWorkflow], activities=ALL
    ) as w:
        handle = await client.start_workflow(
            workflow.run,  # type: ignore[attr-defined]
            job,
            id=wf_id or new_id(),
            task_queue=w.task_queue,
        )
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        return await handle.fetch_history()


class TestRecordedHistories:
    @pytest.mark.parametrize("name", sorted(RECORDED))
    async def test_recorded_history_replays(self, client: Client, name: str) -> None:
        """A history recorded by an earlier build replays without nondeterminism."""
        workflow, job = RECORDED[name]
        path = HISTORIES / name
        # Child workflow ids derive from the parent's: replay needs the same id.
        wf_id = f"recorded-{path.stem}"
        if RECORD:
            history = await run_to_history(client, workflow, job, wf_id)
            path.write_text(history.to_json())
        history = WorkflowHistory.from_json(wf_id, path.read_text())
        await replayer(workflow, ChildDo, ChildUndo).replay_workflow(history)


class TestHistoriesFromBeforeStepIds:
    @pytest.mark.parametrize("name", sorted(BEFORE_STEP_IDS))
    async def test_history_with_a_header_on_every_activity_replays(self, name: str) -> None:
        """Workflows started when every activity carried the header replay on this build.

        Activity ids are checked by replay; the header is not, and no longer goes
        out with an activity whose id tells its step.
        """
        wf_id = f"recorded-{Path(name).stem}"
        history = WorkflowHistory.from_json(wf_id, (HISTORIES / name).read_text())
        scheduled = [
            e.activity_task_scheduled_event_attributes
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        ]
        assert scheduled, "the fixture schedules activities"
        assert all(STEP_HEADER in a.header.fields for a in scheduled)
        await replayer(BEFORE_STEP_IDS[name]).replay_workflow(history)

    @pytest.mark.parametrize("name", sorted(BEFORE_STEP_IDS))
    async def test_their_activities_know_their_step(self, name: str) -> None:
        """An activity such a workflow scheduled reads its step off the old header.

        And the step its id tells agrees with the header in all but an undo's
        outcome, which the builds that sent the header only when needed sent
        whenever it was not "succeeded".
        """
        wf_id = f"recorded-{Path(name).stem}"
        history = WorkflowHistory.from_json(wf_id, (HISTORIES / name).read_text())
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.original_execution_run_id
        base = run_saga_base(wf_id, run_id)
        outcomes = set()
        for event in history.events:
            if not event.HasField("activity_task_scheduled_event_attributes"):
                continue
            scheduled = event.activity_task_scheduled_event_attributes
            env = ActivityEnvironment()
            env.info = dataclasses.replace(
                env.info,
                workflow_id=wf_id,
                workflow_run_id=run_id,
                activity_id=scheduled.activity_id,
            )

            def step(headers: dict[str, Any]) -> StepContext | None:
                return _activity_step(ExecuteActivityInput(lambda: None, [], None, headers))

            old = env.run(step, dict(scheduled.header.fields))
            assert old is not None
            assert old == decode_step(scheduled.header.fields[STEP_HEADER], base)
            from_id = env.run(step, {})
            usual = DoOutcome.SUCCEEDED if old.phase is Phase.UNDO else DoOutcome.PENDING
            assert from_id == old._replace(do_outcome=usual)
            outcomes.add(old.do_outcome)
        if "fail" in name:  # the fixture holds an undo of each outcome
            assert outcomes >= {DoOutcome.SUCCEEDED, DoOutcome.FAILED, DoOutcome.UNKNOWN}


def count(history: WorkflowHistory, kind: EventType.ValueType) -> int:
    return sum(e.event_type == kind for e in history.events)


class TestTheDeadlineTimer:
    """API.md §12: on Temporal a deadline is one durable timer, and none without one."""

    def test_the_recorded_deadline_is_one_timer_that_fired_mid_step(self) -> None:
        """One 2 s timer, fired while b ran; then b cancelled, b and a undone, nothing more."""
        history = load("deadline_mid_step.json")
        timers = [
            e.timer_started_event_attributes
            for e in history.events
            if e.HasField("timer_started_event_attributes")
        ]
        assert len(timers) == 1
        assert timers[0].start_to_fire_timeout.ToTimedelta() == timedelta(seconds=2)
        assert count(history, EventType.EVENT_TYPE_TIMER_FIRED) == 1
        story = []
        for e in history.events:
            if e.HasField("activity_task_scheduled_event_attributes"):
                story.append(e.activity_task_scheduled_event_attributes.activity_type.name)
            elif e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
                story.append("deadline")
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED:
                story.append("cancel do_b")
        assert story == ["do_a", "do_b", "deadline", "cancel do_b", "undo_b", "undo_a"]
        failure = history.events[-1].workflow_execution_failed_event_attributes.failure
        assert failure.application_failure_info.type == "SagaFailed"
        assert failure.cause.application_failure_info.type == "SagaDeadlineExceeded"

    async def test_replay_checks_the_timer(self) -> None:
        """The same workflow without its deadline does not replay it: the test above means it."""
        with pytest.raises(NondeterminismError):
            await replayer(DeadlineDropped).replay_workflow(load("deadline_mid_step.json"))

    async def test_a_saga_without_a_deadline_sets_no_timer(self, client: Client) -> None:
        """Neither the recorded histories nor a run of this build start a timer."""
        fresh = await run_to_history(client, StepsWorkflow, Job(run=new_id("run"), fail=["c"]))
        for history in (fresh, load("steps_fail_at_c.json"), load("steps_success.json")):
            assert count(history, EventType.EVENT_TYPE_TIMER_STARTED) == 0

    async def test_a_saga_that_ends_in_time_cancels_its_timer(self, client: Client) -> None:
        """Succeeded under a 60 s deadline: its one timer is cancelled, and the run replays."""
        job = Job(run=new_id("run"), steps=["a", "b"], deadline=60.0)
        history = await run_to_history(client, DeadlineWorkflow, job)
        assert count(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) == 1
        assert count(history, EventType.EVENT_TYPE_TIMER_STARTED) == 1
        assert count(history, EventType.EVENT_TYPE_TIMER_CANCELED) == 1
        assert count(history, EventType.EVENT_TYPE_TIMER_FIRED) == 0
        await replayer(DeadlineWorkflow).replay_workflow(history)


class _SeeWhatIsScheduled(Interceptor):
    """Keeps the `sagakit` header of every activity a replayed workflow schedules.

    Given to the replayer beside SagakitPlugin, it sees each activity after
    sagakit's interceptor added the header.
    """

    def __init__(self) -> None:
        self.headers: list[Any] = []

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        seen = self.headers

        class Outbound(WorkflowOutboundInterceptor):
            def start_activity(self, input: StartActivityInput) -> Any:
                seen.append(input.headers.get(STEP_HEADER))
                return self.next.start_activity(input)

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(Outbound(outbound))

        return Inbound


class TestHistoriesFromBeforeTheHeaderWentEverywhere:
    """Workflows started when the header went only where the id could not tell the step."""

    @pytest.mark.parametrize("name", sorted(STEP_IDS))
    async def test_they_replay(self, name: str) -> None:
        """This build sends the header with everything; replay does not check headers."""
        await replayer(STEP_IDS[name]).replay_workflow(load(name))

    def test_their_activities_know_their_step(self) -> None:
        """Without a header an activity reads its step off its id; with one, off the header."""
        history = load("ids_steps_fail_at_c.json")
        base = run_saga_base(history.workflow_id, history.run_id)
        assert learned_steps(history) == {
            "1.do_a": StepContext(base, 1, "do_a", Phase.DO),
            "2.do_b": StepContext(base, 2, "do_b", Phase.DO),
            "3.do_c": StepContext(base, 3, "do_c", Phase.DO),
            # The one activity of the run that had a header: its do failed.
            "3.do_c.undo": StepContext(base, 3, "do_c", Phase.UNDO, DoOutcome.FAILED),
            "2.do_b.undo": StepContext(base, 2, "do_b", Phase.UNDO, DoOutcome.SUCCEEDED),
            "1.do_a.undo": StepContext(base, 1, "do_a", Phase.UNDO, DoOutcome.SUCCEEDED),
        }

    def test_the_second_saga_of_a_run_is_told_apart(self) -> None:
        history = load("ids_two_sagas.json")
        base = run_saga_base(history.workflow_id, history.run_id)
        assert learned_steps(history) == {
            "1.do_a": StepContext(base, 1, "do_a", Phase.DO),
            "2.do_b": StepContext(base, 2, "do_b", Phase.DO),
            "2/1.do_a": StepContext(f"{base}/2", 1, "do_a", Phase.DO),
            "2/2.do_b": StepContext(f"{base}/2", 2, "do_b", Phase.DO),
        }

    @pytest.mark.parametrize(
        ("name", "phase", "outcome"),
        [
            ("ids_child_step_fail_at_c.2.b.json", Phase.DO, DoOutcome.PENDING),
            ("ids_child_step_fail_at_c.2.b.undo.json", Phase.UNDO, DoOutcome.SUCCEEDED),
        ],
    )
    async def test_a_child_started_without_a_header_knows_its_step(
        self, name: str, phase: Phase, outcome: DoOutcome
    ) -> None:
        """A child workflow step started without a header reads the parent's step off its id.

        Replayed on this build, the activity it schedules carries that step.
        """
        history = load(name)
        started = history.events[0].workflow_execution_started_event_attributes
        assert not started.header.fields
        parent = run_saga_base(
            started.parent_workflow_execution.workflow_id,
            started.parent_workflow_execution.run_id,
        )
        seen = _SeeWhatIsScheduled()
        await replayer(STEP_IDS[name], interceptors=[seen]).replay_workflow(history)
        assert len(seen.headers) == 1
        child_base = run_saga_base(history.workflow_id, history.run_id)
        assert decode_step(seen.headers[0], child_base) == StepContext(
            parent, 2, "b", phase, outcome
        )


class TestVersioning:
    async def test_patched_new_step_replays_an_old_history(self, client: Client) -> None:
        """A step added under workflow.patched() keeps old runs replaying."""
        history = await run_to_history(client, VersionedV1, Job(run=new_id("run"), fail=["b"]))
        await replayer(VersionedV2).replay_workflow(history)

    async def test_unpatched_new_step_breaks_replay(self, client: Client) -> None:
        """The same change without a patch is caught by replay: the test above means something."""
        history = await run_to_history(client, VersionedV1, Job(run=new_id("run"), fail=["b"]))
        with pytest.raises(NondeterminismError):
            await replayer(VersionedUnpatched).replay_workflow(history)

    async def test_patched_new_step_runs_in_new_workflows(self, client: Client) -> None:
        """New runs take the patched branch."""
        async with saga_worker(client, workflows=[VersionedV2], activities=ALL) as w:
            result = await client.execute_workflow(
                VersionedV2.run, Job(run=new_id("run")), id=new_id(), task_queue=w.task_queue
            )
        assert result == ["do-a", "do-c", "do-b"]
