"""A child workflow's run method given to `saga.sub` runs as a child workflow saga (API.md §10.5).

On the real dev server: its undo plan comes back with its result and joins
the parent's stack, each undo with the key its do saw in the child; a child
that failed undid its own steps and the parent falls back; a cancelled parent
waits for the child to compensate itself before it unwinds; a child run as a
sub-saga refuses an undo that could not travel before the do runs; and a
recorded history of all this replays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id, saga_worker
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHistory
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Replayer
from workflows.activities import ALL, JOURNAL, STARTED, Job, events
from workflows.subsagas import (
    SUB_WORKFLOWS,
    Hotels,
    Trip,
    TripBrokenChild,
    TripLateChild,
    TripNested,
    TripNoSaga,
    TripTwoSagas,
    TripUntravelled,
    UntravelledChild,
)

from sagakit import SagaReport, SagaStatus, UndoStatus
from sagakit.temporal import REPORT_QUERY, SagakitPlugin, report_from_failure

pytestmark = pytest.mark.temporal

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("SAGAKIT_RECORD_HISTORIES") == "1"


def keys(run: str) -> dict[str, str]:
    """`phase:name` -> the idempotency key that do or undo saw."""
    return {f"{e.phase}:{e.name}": e.key for e in JOURNAL[run] if e.event == "ran"}


async def failure_of(client: Client, run: Any, job: Job) -> WorkflowFailureError:
    """Run one of SUB_WORKFLOWS on a worker of its own; the failure it ends with."""
    async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
        with pytest.raises(WorkflowFailureError) as failure:
            await client.execute_workflow(run, job, id=new_id(), task_queue=w.task_queue)
    return failure.value


def steps(report: SagaReport) -> list[tuple[Any, ...]]:
    return [
        (s.seq, s.name, s.sub, s.carried is not None, s.undo and s.undo.status)
        for s in report.steps
    ]


class TestChildSucceeded:
    async def test_its_undos_run_in_the_parents_unwind_with_their_keys(
        self, client: Client
    ) -> None:
        """A child's undos run LIFO in the parent's later unwind, each with its do's key."""
        job = Job(run=new_id("run"), steps=["b", "c"], fail=["e"])
        wf_id = new_id()
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(Trip.run, job, id=wf_id, task_queue=w.task_queue)
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))

        assert events(job.run) == [
            *["do:a", "do:b", "do:c", "do:e"],
            *["undo:e", "undo:c", "undo:b", "undo:a"],
        ]
        seen = keys(job.run)
        child = await client.get_workflow_handle(f"{wf_id}.sub.hotels").describe()
        for n in ("b", "c"):
            assert seen[f"undo:{n}"] == seen[f"do:{n}"]
            assert seen[f"do:{n}"].startswith(f"{wf_id}.sub.hotels/{child.run_id}#")
        assert seen["undo:a"] == seen["do:a"] != seen["do:b"]

        done = UndoStatus.COMPENSATED
        assert steps(report) == [
            (1, "do_a", None, False, done),
            (2, "do_b", "hotels", True, done),
            (3, "do_c", "hotels", True, done),
            (4, "do_e", None, False, done),
        ]
        assert [report.steps[i].carried for i in (1, 2)] == [seen["do:b"], seen["do:c"]]
        assert report.status is SagaStatus.COMPENSATED
        assert "  hotels: do_b" in report.timeline()
        # The parent failed with e's error; the child's steps are among its undone ones.
        from_failure = report_from_failure(failure.value)
        assert from_failure is not None
        assert [(s.name, s.sub, s.carried) for s in from_failure.steps] == [
            (s.name, s.sub, s.carried) for s in report.steps
        ]

    async def test_its_result_comes_back_decoded_by_the_run_methods_type(
        self, client: Client
    ) -> None:
        """The child's result reaches the parent decoded by its type; the plan rides beside."""
        job = Job(run=new_id("run"), steps=["b", "c"])
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            out = await client.execute_workflow(Trip.run, job, id=new_id(), task_queue=w.task_queue)
        assert out == {"result": ["do-a", "do-b", "do-c", "do-e"], "caught": None}
        assert events(job.run) == ["do:a", "do:b", "do:c", "do:e"]


class TestChildFailed:
    async def test_the_parent_catches_sagafailed_and_falls_back(self, client: Client) -> None:
        """A child that failed undid its steps; the parent catches SagaFailed and goes on."""
        job = Job(run=new_id("run"), steps=["b", "c"], fail=["c"])
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                Trip.run, job, id=new_id(), task_queue=w.task_queue
            )
            out = await handle.result()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))

        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "do:d", "do:e"]
        assert out["result"] == ["do-a", "do-d", "do-e"]
        caught = out["caught"]
        assert caught["cause"] == "ActivityError"
        assert caught["cause_message"] == "Boom: do c failed"
        assert caught["status"] == "compensated"
        assert caught["steps"] == [
            [1, "do_b", "hotels", "compensated"],
            [2, "do_c", "hotels", "compensated"],
        ]
        assert caught["message"].startswith("sub-saga 'hotels' of saga ")
        # The parent's report keeps them, undone, as it keeps an inline sub-saga's.
        done, pending = UndoStatus.COMPENSATED, UndoStatus.PENDING
        assert steps(report) == [
            (1, "do_a", None, False, pending),
            (2, "do_b", "hotels", True, done),
            (3, "do_c", "hotels", True, done),
            (4, "do_d", None, False, pending),
            (5, "do_e", None, False, pending),
        ]
        seen = keys(job.run)
        assert [report.steps[i].carried for i in (1, 2)] == [seen["do:b"], seen["do:c"]]
        assert report.status is SagaStatus.SUCCEEDED


class TestParentCancelled:
    async def test_the_child_compensates_itself_before_the_parent_unwinds(
        self, client: Client
    ) -> None:
        """A cancelled parent waits for its cancelled child to compensate, then unwinds."""
        job = Job(run=new_id("run"), steps=["b", "c"], block=["c"])
        wf_id = new_id()
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(Trip.run, job, id=wf_id, task_queue=w.task_queue)
            await asyncio.wait_for(STARTED[job.run].wait(), 30)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            child = await client.get_workflow_handle(f"{wf_id}.sub.hotels").describe()

        assert isinstance(failure.value.cause, CancelledError)
        assert child.status is WorkflowExecutionStatus.CANCELED
        assert events(job.run, "started") == events(job.run, "cancelled") == ["do:c"]
        assert events(job.run) == ["do:a", "do:b", "undo:c", "undo:b", "undo:a"]

    async def test_a_child_that_succeeded_before_the_cancel_reached_it_is_undone(
        self, client: Client
    ) -> None:
        """A child that ended well though cancelled hands its plan back: the parent undoes it."""
        job = Job(run=new_id("run"), steps=["b", "c"])
        wf_id = new_id()
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                TripLateChild.run, job, id=wf_id, task_queue=w.task_queue
            )
            for _ in range(300):  # until the child's saga has done both its steps
                if "do:c" in events(job.run):
                    break
                await asyncio.sleep(0.05)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            child = await client.get_workflow_handle(f"{wf_id}.sub.LateChild").describe()

        assert isinstance(failure.value.cause, CancelledError)
        assert child.status is WorkflowExecutionStatus.COMPLETED
        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        seen = keys(job.run)
        assert seen["undo:b"] == seen["do:b"]


class TestRefusedInASubSaga:
    async def test_an_undo_that_cannot_travel_is_refused_before_its_do(
        self, client: Client
    ) -> None:
        """A sub-saga child refuses an undo that cannot travel, before its do; alone, not."""
        job = Job(run=new_id("run"))
        alone = Job(run=new_id("run"))
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            with pytest.raises(WorkflowFailureError) as failure:
                await client.execute_workflow(
                    TripUntravelled.run, job, id=new_id(), task_queue=w.task_queue
                )
            await client.execute_workflow(
                UntravelledChild.run, alone, id=new_id(), task_queue=w.task_queue
            )

        assert events(job.run) == ["do:a", "undo:a"]  # do_b never ran
        assert events(alone.run) == ["do:b"]
        saga_failed = failure.value.cause
        assert isinstance(saga_failed, ApplicationError)
        assert saga_failed.type == "SagaFailed"
        refused = saga_failed.cause
        assert isinstance(refused, ApplicationError)
        assert refused.type == "StepDefinitionError"
        assert "its undo ChildUndo is a child workflow, which cannot travel" in refused.message
        assert "sub-saga 'UntravelledChild'" in refused.message

    async def test_a_sub_saga_child_on_a_worker_without_the_plugin_is_refused(
        self, client: Client
    ) -> None:
        """A child marked as a sub-saga, on a worker without SagakitPlugin, runs no step."""
        job = Job(run=new_id("run"), steps=["b"])
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL, plugins=[]) as w:
            with pytest.raises(WorkflowFailureError) as failure:
                await client.execute_workflow(
                    Hotels.run,
                    job,
                    id=new_id(),
                    task_queue=w.task_queue,
                    memo={"sagakit_sub": "hotels"},  # as saga.sub marks it
                )

        assert events(job.run) == []
        refused = failure.value.cause
        assert isinstance(refused, ApplicationError)
        assert refused.type == "StepDefinitionError"
        assert "runs as sub-saga 'hotels' of its parent, but its worker has no" in str(refused)


class TestWhatComesBack:
    async def test_a_child_of_two_sagas_hands_back_both_plans(self, client: Client) -> None:
        """A child that ran two sagas hands back both plans: the second's undone first."""
        job = Job(run=new_id("run"), steps=["b", "c"], fail=["e"])
        await failure_of(client, TripTwoSagas.run, job)

        ran = [(e.phase, e.name, e.key) for e in JOURNAL[job.run] if e.event == "ran"]
        child = [(p, n, k) for p, n, k in ran if n in ("b", "c")]
        dos = [k for p, _, k in child if p == "do"]
        assert [k for p, _, k in child if p == "undo"] == dos[::-1]
        assert "/2#" in dos[2]  # the child's second saga: its own keys
        assert [f"{p}:{n}" for p, n, _ in ran] == [
            *["do:a", "do:b", "do:c", "do:b", "do:c", "do:e"],
            *["undo:e", "undo:c", "undo:b", "undo:c", "undo:b", "undo:a"],
        ]

    async def test_child_sub_sagas_nest(self, client: Client) -> None:
        """A grandchild's plan joins its parent's, which joins the saga's: named, keys kept."""
        job = Job(run=new_id("run"), fail=["e"])
        wf_id = new_id()
        async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
            handle = await client.start_workflow(
                TripNested.run, job, id=wf_id, task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            report = SagaReport.model_validate(await handle.query(REPORT_QUERY))

        assert events(job.run) == [
            *["do:a", "do:b", "do:c", "do:e"],
            *["undo:e", "undo:c", "undo:b", "undo:a"],
        ]
        seen = keys(job.run)
        assert seen["undo:c"] == seen["do:c"]
        assert seen["do:c"].startswith(f"{wf_id}.sub.HotelsWithRooms.sub.Rooms/")
        assert [(s.name, s.sub, s.carried) for s in report.steps[1:3]] == [
            ("do_b", "HotelsWithRooms", seen["do:b"]),
            ("do_c", "HotelsWithRooms/Rooms", seen["do:c"]),
        ]

    async def test_a_child_that_ran_no_saga_is_refused(self, client: Client) -> None:
        """A child that ran no saga hands back no plan: StepDefinitionError; the saga unwinds."""
        job = Job(run=new_id("run"))
        failure = await failure_of(client, TripNoSaga.run, job)

        assert events(job.run) == ["do:a", "undo:a"]
        refused = failure.cause.cause if failure.cause else None
        assert isinstance(refused, ApplicationError)
        assert refused.type == "StepDefinitionError"
        assert "ended without an undo plan: it ran no saga with TemporalExecutor" in str(refused)

    async def test_a_child_that_failed_not_as_a_saga_is_no_sagafailed(self, client: Client) -> None:
        """A child that failed but not as a saga raises its ChildWorkflowError; the saga unwinds."""
        job = Job(run=new_id("run"))
        failure = await failure_of(client, TripBrokenChild.run, job)

        assert events(job.run) == ["do:a", "undo:a"]
        report = report_from_failure(failure)
        assert report is not None
        assert report.error is not None
        assert (report.error.type, report.error.message) == ("Broken", "broken before any saga")


# Recorded by this build: the parent and its child sub-saga "hotels" (`<name>.hotels.json`).
RECORDED = {
    # The child succeeded; the parent failed at e and undid the child's steps by its plan.
    "sub_child_fail_late": Job(run="recorded", steps=["b", "c"], fail=["e"]),
    # The child failed at c and undid its steps; the parent fell back to d and succeeded.
    "sub_child_failed_fallback": Job(run="recorded", steps=["b", "c"], fail=["c"]),
}


class TestReplay:
    @pytest.mark.parametrize("name", sorted(RECORDED))
    async def test_a_recorded_child_sub_saga_history_replays(
        self, client: Client, name: str
    ) -> None:
        """Recorded parent and child histories of a child sub-saga replay deterministically."""
        parent_path = HISTORIES / f"{name}.json"
        child_path = HISTORIES / f"{name}.hotels.json"
        wf_id = f"recorded-{name}"  # the child's id derives from the parent's
        child_id = f"{wf_id}.sub.hotels"
        if RECORD:
            async with saga_worker(client, workflows=SUB_WORKFLOWS, activities=ALL) as w:
                handle = await client.start_workflow(
                    Trip.run, RECORDED[name], id=wf_id, task_queue=w.task_queue
                )
                with contextlib.suppress(WorkflowFailureError):
                    await handle.result()
                parent_path.write_text((await handle.fetch_history()).to_json())
                child = client.get_workflow_handle(child_id)
                child_path.write_text((await child.fetch_history()).to_json())
        replayer = Replayer(workflows=[Trip, Hotels], plugins=[SagakitPlugin()])
        for path, history_id in ((parent_path, wf_id), (child_path, child_id)):
            history = WorkflowHistory.from_json(history_id, path.read_text())
            await replayer.replay_workflow(history)
