"""Determinism: recorded histories replay, and a patched new step replays old histories."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from conftest import new_id, saga_worker
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError
from workflows.activities import ALL, Job
from workflows.sagas import (
    CancelSagaTaskWorkflow,
    ChildDo,
    ChildStepWorkflow,
    ChildUndo,
    StepsWorkflow,
    VersionedUnpatched,
    VersionedV1,
    VersionedV2,
)

from sagakit.temporal import SagakitPlugin

pytestmark = pytest.mark.temporal

HISTORIES = Path(__file__).parent / "histories"
# Set to re-record the committed histories (after a deliberate, versioned change).
RECORD = os.environ.get("SAGAKIT_RECORD_HISTORIES") == "1"

RECORDED = {
    "steps_fail_at_c.json": (StepsWorkflow, Job(run="recorded", fail=["c"])),
    "steps_success.json": (StepsWorkflow, Job(run="recorded", steps=["a", "b"])),
    "child_step_fail_at_c.json": (ChildStepWorkflow, Job(run="recorded", steps=[], fail=["c"])),
}


def replayer(*workflows: type) -> Replayer:
    return Replayer(workflows=list(workflows), plugins=[SagakitPlugin()])


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
