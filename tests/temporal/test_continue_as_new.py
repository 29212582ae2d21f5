"""API.md §11 on Temporal: a saga that continues as new with its undo plan, and what is refused.

A batch applies 100 items a run and continues as new with `saga.undo_plan()`;
when a late item fails, the last run unwinds its own steps, then every step
the earlier runs carried to it, each undo once and with its do's key. And:
an undo no worker registers fails by the undo bound, a plan past the payload
limit and an undo that is not an activity are refused at `undo_plan()`.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id, saga_worker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from workflows.plans import (
    ACTIVITIES,
    FAILING,
    LEDGER,
    Batch,
    BatchWorkflow,
    BigBatch,
    BigPlanWorkflow,
    InlineUndoWorkflow,
    StrictBatchWorkflow,
    SubSagaWorkflow,
    apply_big,
    revert_big,
)

from sagakit import SagaReport, SagaStatus, StepStatus, UndoStatus
from sagakit.temporal import REPORT_QUERY, SagakitPlugin, report_from_failure

pytestmark = pytest.mark.temporal

WORKFLOWS = [
    BatchWorkflow,
    BigPlanWorkflow,
    InlineUndoWorkflow,
    StrictBatchWorkflow,
    SubSagaWorkflow,
]

HISTORIES = Path(__file__).parent / "histories"
# Set to re-record the committed histories (after a deliberate, versioned change).
RECORD = os.environ.get("SAGAKIT_RECORD_HISTORIES") == "1"


@pytest.fixture
def pclient(temporal_env: WorkflowEnvironment) -> Client:
    """The dev server through a client on `pydantic_data_converter`: an `UndoPlan` travels."""
    return Client(**{**temporal_env.client.config(), "data_converter": pydantic_data_converter})


async def runs_of(client: Client, handle: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """The history of every run of the chain, first to last."""
    histories = []
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return histories


async def run_batch(
    client: Client, batch: Batch, task_queue: str
) -> tuple[WorkflowHandle[Any, Any], WorkflowFailureError | None]:
    """Run the batch's chain to its end; its first handle and the error it ended with."""
    async with saga_worker(
        client, workflows=WORKFLOWS, activities=ACTIVITIES, task_queue=task_queue
    ):
        handle = await client.start_workflow(
            BatchWorkflow.run, args=[batch, None], id=new_id("batch"), task_queue=task_queue
        )
        try:
            await handle.result()
        except WorkflowFailureError as e:
            return handle, e
        return handle, None


async def query_report(client: Client, wf_id: str, run_id: str, task_queue: str) -> Any:
    """The `sagakit_report` of one run of a chain, and its current details (a worker answers)."""
    async with saga_worker(
        client, workflows=WORKFLOWS, activities=ACTIVITIES, task_queue=task_queue
    ):
        handle = client.get_workflow_handle(wf_id, run_id=run_id)
        report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        metadata = await handle.query("__temporal_workflow_metadata")
    return report, metadata.current_details


class TestABatchAcrossRuns:
    @pytest.mark.slow
    async def test_a_late_failure_unwinds_every_run_each_undo_once_with_its_key(
        self, pclient: Client
    ) -> None:
        """300 items, 100 a run, item 250 fails: run 3 undoes 250..200, then 199..0 carried."""
        batch = Batch(run=str(uuid.uuid4()), total=300)
        FAILING[batch.run] = {250}
        queue = new_id("tq")
        handle, error = await run_batch(pclient, batch, queue)

        assert error is not None
        report = report_from_failure(error)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        ledger = LEDGER[batch.run]
        dos = {item: key for phase, item, key in ledger if phase == "do"}
        undos = [(item, key) for phase, item, key in ledger if phase == "undo"]
        assert sorted(dos) == list(range(251))
        assert [item for item, _ in undos] == list(range(250, -1, -1))  # LIFO, across runs
        assert all(key == dos[item] for item, key in undos)  # each with its do's key
        assert len(set(dos.values())) == 251
        # Nothing unwound when a run continued as new: every undo ran in the last run.
        first_undo = next(i for i, (phase, _, _) in enumerate(ledger) if phase == "undo")
        assert all(phase == "do" for phase, _, _ in ledger[:first_undo])

        histories = await runs_of(pclient, handle)
        assert len(histories) == 3
        # The last run's report: the 200 carried steps first, with fresh seqs.
        last, _ = await query_report(pclient, handle.id, histories[-1].run_id, queue)
        assert [s.seq for s in last.steps] == list(range(1, 252))
        assert [s.carried for s in last.steps[:200]] == [dos[i] for i in range(200)]
        assert all(s.carried is None for s in last.steps[200:])
        assert all(
            s.undo is not None and s.undo.status is UndoStatus.COMPENSATED for s in last.steps
        )
        assert last.steps[-1].status is StepStatus.FAILED

    async def test_a_run_that_continues_as_new_is_no_failure(self, pclient: Client) -> None:
        """Run 1 of the chain: 100 steps succeeded, their undos pending, none ran."""
        batch = Batch(run=str(uuid.uuid4()), total=150)
        queue = new_id("tq")
        handle, error = await run_batch(pclient, batch, queue)
        assert error is None
        first, _ = await runs_of(pclient, handle)
        scheduled = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        assert sum(e.event_type == scheduled for e in first.events) == 100
        report, details = await query_report(pclient, handle.id, first.run_id, queue)
        assert report.status is SagaStatus.RUNNING  # it goes on in the next run
        assert len(report.steps) == 100
        assert all(s.status is StepStatus.SUCCEEDED for s in report.steps)
        assert all(s.undo is not None and s.undo.status is UndoStatus.PENDING for s in report.steps)
        assert details == "continued as new after 100 step(s)"
        assert not any(phase == "undo" for phase, _, _ in LEDGER[batch.run])

    async def test_pass_result_carries_each_result_to_its_undo(self, pclient: Client) -> None:
        """The undo of item n, run in a later run, is told what apply n returned (10 n)."""
        batch = Batch(
            run=str(uuid.uuid4()), total=6, per_run=2, undo="revert_item_seeing", pass_result=True
        )
        FAILING[batch.run] = {5}
        _, error = await run_batch(pclient, batch, new_id("tq"))
        assert error is not None
        dos = {item: key for phase, item, key in LEDGER[batch.run] if phase == "do"}
        undos = [key for phase, _, key in LEDGER[batch.run] if phase == "undo"]
        assert undos == [f"{dos[5]}=None"] + [f"{dos[n]}={10 * n}" for n in range(4, -1, -1)]


class TestBadPlans:
    @pytest.mark.slow
    async def test_an_undo_no_worker_registers_fails_by_the_undo_bound(
        self, pclient: Client
    ) -> None:
        """The carried undos are of an activity no worker has: each fails, the unwind ends."""
        batch = Batch(run=str(uuid.uuid4()), total=2, per_run=1, undo="revert_nowhere")
        FAILING[batch.run] = {1}
        _, error = await run_batch(pclient, batch, new_id("tq"))
        assert error is not None
        report = report_from_failure(error)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATION_FAILED
        undos = [s.undo for s in report.steps]
        assert all(u is not None and u.status is UndoStatus.FAILED for u in undos)
        for u in undos:  # each retried to the undo bound (10 attempts), then failed
            assert u is not None
            assert u.error is not None
            assert u.error.type == "NotFoundError"
            assert "revert_nowhere" in u.error.message
        assert not any(phase == "undo" for phase, _, _ in LEDGER[batch.run])

    async def test_a_plan_past_the_payload_limit_is_refused_at_undo_plan(
        self, pclient: Client
    ) -> None:
        """Three steps of 800 KB args each fit; their plan (2.3 MiB) does not: refused, unwound."""
        batch = BigBatch(run=str(uuid.uuid4()), steps=3, payload="x" * 800_000)
        async with saga_worker(
            pclient, workflows=WORKFLOWS, activities=[apply_big, revert_big]
        ) as w:
            handle = await pclient.start_workflow(
                BigPlanWorkflow.run, args=[batch, None], id=new_id("big"), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        cause = info.value.cause
        assert isinstance(cause, ApplicationError)
        assert isinstance(cause.cause, ApplicationError)
        assert cause.cause.type == "PayloadTooLargeError"
        assert "saga.undo_plan(): the plan of 3 pending undo(s): it encodes to 2.3 MiB" in (
            cause.cause.message
        )
        assert "over the payload limit of 2.0 MiB" in cause.cause.message
        assert [(p, i) for p, i, _ in LEDGER[batch.run]] == [
            ("do", 0),
            ("do", 1),
            ("do", 2),
            ("undo", 2),
            ("undo", 1),
            ("undo", 0),
        ]

    async def test_an_undo_that_is_not_an_activity_is_refused_at_undo_plan(
        self, pclient: Client
    ) -> None:
        """An inline undo cannot travel: StepDefinitionError naming the step and the fix."""
        batch = Batch(run=str(uuid.uuid4()), total=1)
        async with saga_worker(pclient, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            handle = await pclient.start_workflow(
                InlineUndoWorkflow.run,
                args=[batch, None],
                id=new_id("inline"),
                task_queue=w.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        refusal = info.value.cause.cause  # type: ignore[union-attr]
        assert isinstance(refusal, ApplicationError)
        assert refusal.type == "StepDefinitionError"
        assert "the undo revert_inline of step 1 'apply_item' is inline workflow code" in (
            refusal.message
        )
        assert "@activity.defn" in refusal.message
        report = report_from_failure(info.value)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED  # the inline undo ran, in the workflow
        assert [(p, i) for p, i, _ in LEDGER[batch.run]] == [("do", 0)]

    async def test_a_malformed_plan_fails_a_workflow_that_types_it(self, pclient: Client) -> None:
        """`plan: UndoPlan | None` that does not decode: failure_exception_types fails the run.

        Without it temporalio fails the workflow task, and retries it until the
        workflow is reset or terminated (taken as `Any`, `resume=` refuses it:
        the contract tests).
        """
        batch = Batch(run=str(uuid.uuid4()), total=1)
        edited = {"version": 1, "runs": ["x"], "undos": [{"seq": 0, "name": "a", "undo": "u"}]}
        async with saga_worker(pclient, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
            handle = await pclient.start_workflow(
                "StrictBatchWorkflow",
                args=[batch, edited],
                id=new_id("strict"),
                task_queue=w.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result()
        cause = info.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "ValidationError"
        assert "undos.0.seq" in cause.message
        assert batch.run not in LEDGER  # no step ran


class TestRecordedHistories:
    """Histories recorded by this build replay: a continue-as-new chain, an inline sub-saga."""

    @staticmethod
    def replayer() -> Replayer:
        return Replayer(
            workflows=WORKFLOWS, plugins=[SagakitPlugin()], data_converter=pydantic_data_converter
        )

    async def test_a_continue_as_new_chain_replays_run_by_run(self, pclient: Client) -> None:
        """6 items, 2 a run, item 5 fails: runs 1 and 2 continue as new, run 3 unwinds all."""
        paths = [HISTORIES / f"plan_chain.{n}.json" for n in (1, 2, 3)]
        if RECORD:
            batch = Batch(run="recorded-plan-chain", total=6, per_run=2)
            FAILING[batch.run] = {5}
            handle, _ = await run_batch(pclient, batch, new_id("tq"))
            for path, history in zip(paths, await runs_of(pclient, handle), strict=True):
                path.write_text(history.to_json())
        histories = [WorkflowHistory.from_json("recorded-plan-chain", p.read_text()) for p in paths]
        closing = [h.events[-1].event_type for h in histories]
        assert closing == [
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
        ]
        for history in histories:
            await self.replayer().replay_workflow(history)

    async def test_an_inline_sub_saga_replays(self, pclient: Client) -> None:
        """Sub-saga rooms fails at 3 and is caught; hostel runs; 5 fails; 5, 4, 1 undone."""
        path = HISTORIES / "sub_saga_inline.json"
        if RECORD:
            batch = Batch(run="recorded-sub-saga", total=0)
            FAILING[batch.run] = {3, 5}
            async with saga_worker(pclient, workflows=WORKFLOWS, activities=ACTIVITIES) as w:
                handle = await pclient.start_workflow(
                    SubSagaWorkflow.run, batch, id="recorded-sub-saga", task_queue=w.task_queue
                )
                with pytest.raises(WorkflowFailureError) as info:
                    await handle.result()
            report = report_from_failure(info.value)
            assert report is not None
            path.write_text((await handle.fetch_history()).to_json())
        history = WorkflowHistory.from_json("recorded-sub-saga", path.read_text())
        failed = history.events[-1].workflow_execution_failed_event_attributes.failure
        report = report_from_failure(await pydantic_data_converter.decode_failure(failed))
        assert report is not None
        assert [(s.name, s.sub) for s in report.steps] == [
            ("apply_item", None),
            ("apply_item", "rooms"),
            ("apply_item", "rooms"),
            ("apply_item", "hostel"),
            ("apply_item", None),
        ]
        await self.replayer().replay_workflow(history)
