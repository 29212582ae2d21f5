"""Every kind of do and undo learns its step from the `sagakit` header.

Async, thread-pool and process-pool activities and child workflows; the header
goes with everything sagakit schedules. Each do and undo writes what
`current_step()` and `idempotency_key()` say to a file (the process-pool ones
run in another process), read back by the test. The workflows run unsandboxed
here: what is tested is the worker boundary.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import multiprocessing
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import SharedStateManager, UnsandboxedWorkflowRunner, Worker

import sagakit
from sagakit import RetryPolicy, Saga, SagaOptions
from sagakit.temporal import STEP_HEADER, SagakitPlugin, TemporalExecutor

pytestmark = pytest.mark.temporal

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=50), maximum_attempts=3)


def _note(path: str, what: str) -> None:
    step = sagakit.current_step()
    with open(path, "a") as f:
        f.write(
            json.dumps(
                {
                    "what": what,
                    "saga_id": step.saga_id,
                    "seq": step.seq,
                    "name": step.name,
                    "phase": step.phase.value,
                    "outcome": step.do_outcome.value,
                    "key": sagakit.idempotency_key(),
                    "attempt": activity.info().attempt if activity.in_activity() else None,
                }
            )
            + "\n"
        )


@activity.defn
async def async_do(path: str) -> str:
    _note(path, "async")
    return "async"


@activity.defn
async def async_undo(path: str) -> None:
    _note(path, "async")
    if activity.info().attempt == 1:  # one retry: two undo attempts to count
        raise ApplicationError("not yet", type="Flaky")


@activity.defn
def thread_do(path: str) -> str:
    _note(path, "thread")
    return "thread"


@activity.defn
def thread_undo(path: str) -> None:
    _note(path, "thread")


@activity.defn
def process_do(path: str) -> str:
    _note(path, "process")
    raise ApplicationError("sold out", type="SoldOut", non_retryable=True)


@activity.defn
def process_undo(path: str) -> None:
    _note(path, "process")


@workflow.defn
class ChildDoCtx:
    @workflow.run
    async def run(self, path: str) -> str:
        step = sagakit.current_step()
        return f"{step.saga_id}|{step.seq}|{step.name}|{step.phase.value}|{step.do_outcome.value}"


@workflow.defn
class ChildUndoCtx:
    @workflow.run
    async def run(self, path: str) -> None:
        # Outside any saga of its own, the child's activity carries the parent's step.
        await workflow.execute_activity(
            thread_undo, path, start_to_close_timeout=timedelta(seconds=10)
        )


async def every_kind(saga: Saga, path: str, process_queue: str) -> list[str]:
    return [
        await saga.step(async_do, async_undo, path),
        await saga.step(thread_do, thread_undo, path),
        await saga.step(ChildDoCtx, ChildUndoCtx, path, name="child"),
        await saga.step(process_do, process_undo, path, task_queue=process_queue),
    ]


@workflow.defn
class EveryKind:
    @workflow.run
    async def run(self, path: str, process_queue: str) -> list[str]:
        options = SagaOptions(start_to_close_timeout=timedelta(seconds=20), retry_policy=FAST)
        return await TemporalExecutor(options=options).run(every_kind, path, process_queue)


def undo_attempts(buffer: MetricBuffer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for update in buffer.retrieve_updates():
        if update.metric.name == "sagakit_undo_attempts":
            kind = str(update.attributes.get("activity_type"))
            counts[kind] = counts.get(kind, 0) + int(update.value)
    return counts


async def test_every_kind_of_step_knows_its_step(
    temporal_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Async, thread-pool, process-pool activities and child workflows see their step.

    The failed do's undo learns its do's outcome too (in another process,
    too), and the activity the undo's child workflow schedules itself learns
    the parent's step. Every activity and child workflow of the saga carries
    the header. Undo attempts are counted in `sagakit_undo_attempts` (not in a
    process pool, where temporalio offers no metric meter).
    """
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, namespace="default", runtime=runtime)
    path = str(tmp_path / "notes.jsonl")
    queue, process_queue = f"tq-{uuid.uuid4()}", f"tq-{uuid.uuid4()}"
    spawn = multiprocessing.get_context("spawn")
    common: dict[str, Any] = {"plugins": [SagakitPlugin()]}
    with (
        concurrent.futures.ThreadPoolExecutor(2) as threads,
        concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as processes,
        spawn.Manager() as manager,
    ):
        async with (
            Worker(
                client,
                task_queue=queue,
                workflows=[EveryKind, ChildDoCtx, ChildUndoCtx],
                activities=[async_do, async_undo, thread_do, thread_undo],
                activity_executor=threads,
                workflow_runner=UnsandboxedWorkflowRunner(),
                **common,
            ),
            Worker(
                client,
                task_queue=process_queue,
                activities=[process_do, process_undo],
                activity_executor=processes,
                shared_state_manager=SharedStateManager.create_from_multiprocessing(manager),
                **common,
            ),
        ):
            handle = await client.start_workflow(
                EveryKind.run, args=[path, process_queue], id=f"wf-{uuid.uuid4()}", task_queue=queue
            )
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            history = await handle.fetch_history()
    saga_id = f"{handle.id}/{handle.result_run_id}"
    notes = [json.loads(line) for line in Path(path).read_text().splitlines()]  # noqa: ASYNC240
    seen = {(n["what"], n["phase"], n["seq"], n["name"], n["outcome"]) for n in notes}
    assert seen == {
        ("async", "do", 1, "async_do", "pending"),
        ("thread", "do", 2, "thread_do", "pending"),
        ("process", "do", 4, "process_do", "pending"),
        ("process", "undo", 4, "process_do", "failed"),
        ("thread", "undo", 3, "child", "succeeded"),  # the child's own activity
        ("thread", "undo", 2, "thread_do", "succeeded"),
        ("async", "undo", 1, "async_do", "succeeded"),
    }
    assert {n["saga_id"] for n in notes} == {saga_id}
    assert all(n["key"] == f"{saga_id}#{n['seq']}" for n in notes)
    # The child workflow do saw the parent's step too.
    [child_result] = [
        json.loads(e.child_workflow_execution_completed_event_attributes.result.payloads[0].data)
        for e in history.events
        if e.HasField("child_workflow_execution_completed_event_attributes")
        and e.child_workflow_execution_completed_event_attributes.result.payloads[0].data
    ]
    assert child_result == f"{saga_id}|3|child|do|pending"
    scheduled = [
        *(
            e.start_child_workflow_execution_initiated_event_attributes
            for e in history.events
            if e.HasField("start_child_workflow_execution_initiated_event_attributes")
        ),
        *(
            e.activity_task_scheduled_event_attributes
            for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")
        ),
    ]
    assert len(scheduled) == 8  # 2 children, 6 activities
    assert all(STEP_HEADER in a.header.fields for a in scheduled)
    await asyncio.sleep(1.5)  # metrics are exported about every second
    assert undo_attempts(buffer) == {"async_undo": 2, "thread_undo": 2}


async def inner_inline(path: str) -> None:
    """Step 1 of a saga nested in an inline step: inline too."""


async def nested(saga: Saga, path: str) -> None:
    await saga.step(inner_inline, None, path, inline=True)


async def outer_inline(path: str) -> str:
    """An inline step that runs a saga of its own, then schedules an activity itself."""
    await TemporalExecutor().run(nested, path)
    return await workflow.execute_activity(
        async_do, path, start_to_close_timeout=timedelta(seconds=10)
    )


async def nesting(saga: Saga, path: str) -> str:
    return await saga.step(outer_inline, None, path, name="outer", inline=True)


@workflow.defn
class Nesting:
    @workflow.run
    async def run(self, path: str) -> str:
        options = SagaOptions(start_to_close_timeout=timedelta(seconds=20), retry_policy=FAST)
        return await TemporalExecutor(options=options).run(nesting, path)


async def test_an_inline_step_schedules_with_its_own_step_after_a_nested_one(
    client: Client, tmp_path: Path
) -> None:
    """The nested saga's step ends; what the outer inline step schedules next is its own."""
    path = str(tmp_path / "notes.jsonl")
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[Nesting],
        activities=[async_do],
        workflow_runner=UnsandboxedWorkflowRunner(),
        plugins=[SagakitPlugin()],
    ):
        handle = await client.start_workflow(
            Nesting.run, path, id=f"wf-{uuid.uuid4()}", task_queue=queue
        )
        assert await handle.result() == "async"
    notes = [json.loads(line) for line in Path(path).read_text().splitlines()]  # noqa: ASYNC240
    saga_id = f"{handle.id}/{handle.result_run_id}"
    assert [(n["saga_id"], n["seq"], n["name"], n["phase"]) for n in notes] == [
        (saga_id, 1, "outer", "do")
    ]
