"""A saga torn down mid-run (worker stopped, workflow evicted) goes quietly.

A worker that stops drops the workflows it was running without evicting them:
the coroutines of their sagas are closed later by the garbage collector,
outside any workflow event loop, or inside whichever other workflow's task
happens to be running. Nothing of sagakit may run then: no clock read, no
unwind, nothing printed ("Exception ignored in ..."), no task left on the
running loop, no command in another workflow. An eviction, by contrast, runs
the saga's tasks to their end inside the workflow: it must not compensate,
and must not print either.

Each test captures what Python reports (unraisable exceptions, asyncio's error
log) while the worker stops and the garbage is collected, and checks that the
saga's coroutine really was collected, so that "nothing reported" means
something.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from conftest import new_id, saga_worker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.worker import Worker
from workflows.activities import ALIVE, ALL, JOURNAL, Job, alive
from workflows.sagas import ChildDo, ChildUndo, CollectGarbageWorkflow, TeardownWorkflow

from sagakit.temporal import SAGA_FAILED_TYPE

pytestmark = pytest.mark.temporal

WORKFLOWS = [TeardownWorkflow, CollectGarbageWorkflow, ChildDo, ChildUndo]


class _Reports(logging.Handler):
    """What Python reports by itself: unraisable exceptions, and asyncio's error log."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(self.format(record))

    def unraisable(self, u: sys.UnraisableHookArgs) -> None:
        head = f"{u.err_msg or 'Exception ignored in'}: {u.object!r}"
        tb = "".join(traceback.format_exception(u.exc_type, u.exc_value, u.exc_traceback))
        self.seen.append(f"{head}\n{tb}")


@asynccontextmanager
async def reports() -> AsyncIterator[list[str]]:
    """What Python reports in the block, once the garbage is collected and the loop has run.

    A coroutine that awaits while being closed, or a task it leaves on the
    running loop, shows only after a collection and a few loop iterations.
    """
    gc.collect()  # what earlier tests left is not this block's
    handler = _Reports()
    log = logging.getLogger("asyncio")
    previous = sys.unraisablehook
    sys.unraisablehook = handler.unraisable
    log.addHandler(handler)
    try:
        yield handler.seen
        for _ in range(3):
            gc.collect()
            for _ in range(5):
                await asyncio.sleep(0)
    finally:
        log.removeHandler(handler)
        sys.unraisablehook = previous


def said(seen: list[str]) -> str:
    return "Python reported on teardown:\n\n" + "\n\n".join(seen)


async def start(client: Client, task_queue: str, job: Job, how: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        TeardownWorkflow.run, args=[job, how], id=new_id(), task_queue=task_queue
    )


def journal(job: Job) -> list[str]:
    return [f"{e.event}:{e.phase}:{e.name}" for e in JOURNAL[job.run]]


async def started(job: Job, count: int) -> None:
    """Wait until `count` blocking activities of `job` started."""
    async with asyncio.timeout(10):
        while sum(e.event == "started" for e in JOURNAL[job.run]) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def let_go(worker: Worker) -> None:
    """Drop the workflows a stopped worker still holds, as if the worker itself were gone.

    A stopped worker is freed only once temporalio's core (other threads) lets
    go of it, which on a busy machine can take seconds; its workflows are
    garbage from the moment it stopped.
    """
    getattr(getattr(worker, "_workflow_worker", None), "_running_workflows", {}).clear()


async def until_collected(job: Job, seconds: float = 10.0) -> None:
    """Collect the garbage until the sagas of `job` are gone, for at most `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while alive(job.run) and loop.time() < deadline:
        gc.collect()
        await asyncio.sleep(0.05)


async def stop_mid_saga(client: Client, job: Job, how: str, *, blocked: int = 1) -> None:
    """Stop the worker once `blocked` activities of `job` block, and check what followed.

    Python reported nothing, the saga was collected, and the journal reads
    as if the worker had been killed: the blocked activity was cancelled (by
    the worker stopping), and nothing was undone.
    """
    async with reports() as seen:
        async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
            handle = await start(client, w.task_queue, job, how)
            await started(job, blocked)
        let_go(w)
        del w
        await until_collected(job)
    await handle.terminate()
    assert seen == [], said(seen)
    assert alive(job.run) == 0, "the saga was not collected: the test proves nothing"


class TestWorkerStopped:
    async def test_while_a_do_runs(self, client: Client) -> None:
        """Stopped while a do runs: the saga is collected silently and nothing is undone."""
        job = Job(run=new_id("run"), steps=["a", "b", "c"], block=["b"])
        await stop_mid_saga(client, job, "steps")
        assert journal(job) == ["ran:do:a", "started:do:b", "cancelled:do:b"]

    async def test_while_an_undo_runs(self, client: Client) -> None:
        """Stopped mid-unwind: collected silently, and no further undo runs."""
        job = Job(run=new_id("run"), steps=["a", "b"], block_undo=["b"])
        await stop_mid_saga(client, job, "fail")
        assert journal(job) == ["ran:do:a", "ran:do:b", "started:undo:b", "cancelled:undo:b"]

    async def test_while_parallel_undos_run(self, client: Client) -> None:
        """Stopped while undos run concurrently (parallel_compensation): collected silently."""
        job = Job(run=new_id("run"), steps=["a", "b"], block_undo=["a", "b"], parallel=True)
        await stop_mid_saga(client, job, "fail", blocked=2)
        assert sorted(journal(job)[2:]) == [
            "cancelled:undo:a",
            "cancelled:undo:b",
            "started:undo:a",
            "started:undo:b",
        ]

    async def test_while_gathered_steps_run(self, client: Client) -> None:
        """Stopped while `saga.gather` waits on steps: collected silently."""
        job = Job(run=new_id("run"), steps=["a", "b"], block=["b"])
        await stop_mid_saga(client, job, "parallel")
        assert sorted(journal(job)) == ["cancelled:do:b", "ran:do:a", "started:do:b"]

    async def test_while_a_child_workflow_step_runs(self, client: Client) -> None:
        """Stopped while a child workflow step runs: parent and child collected silently."""
        job = Job(run=new_id("run"), block=["b"])
        await stop_mid_saga(client, job, "child")
        assert journal(job) == ["ran:do:a", "started:do:b", "cancelled:do:b"]

    async def test_collected_in_another_workflow_runs_nothing_there(self, client: Client) -> None:
        """A saga collected during another workflow's task schedules no undo in that workflow."""
        job = Job(run=new_id("run"), steps=["a", "b"], block=["b"])
        scheduled: list[tuple[str, str]] = []
        gc.collect()
        gc.disable()  # only the other workflows' tasks may collect the dropped saga
        try:
            async with reports() as seen:
                async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
                    handle = await start(client, w.task_queue, job, "steps")
                    await started(job, 1)
                let_go(w)
                del w
                async with saga_worker(client, workflows=WORKFLOWS, activities=ALL) as w:
                    for _ in range(50):  # until one of them collected it
                        other = await client.start_workflow(
                            CollectGarbageWorkflow.run,
                            job.run,
                            id=new_id(),
                            task_queue=w.task_queue,
                        )
                        before, after = await other.result()
                        scheduled += [
                            (a.activity_type.name, a.activity_id)
                            async for e in other.fetch_history_events()
                            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                            for a in [e.activity_task_scheduled_event_attributes]
                        ]
                        if after == 0:
                            break
                        await asyncio.sleep(0.1)
                del w
        finally:
            gc.enable()
        await handle.terminate()
        assert (before, after) == (1, 0), "not collected in another workflow: proves nothing"
        assert scheduled == []
        assert seen == [], said(seen)
        assert journal(job) == ["ran:do:a", "started:do:b", "cancelled:do:b"]


class TestEvicted:
    async def test_after_every_task(self, client: Client) -> None:
        """Evicted after every task, forward and unwinding: replayed to its end, nothing said."""
        job = Job(run=new_id("run"), steps=["a", "b", "c"])
        async with reports() as seen:
            async with saga_worker(
                client, workflows=WORKFLOWS, activities=ALL, max_cached_workflows=0
            ) as w:
                handle = await start(client, w.task_queue, job, "fail")
                with pytest.raises(WorkflowFailureError) as ei:
                    await handle.result()
            del w
            await until_collected(job)
        assert seen == [], said(seen)
        assert len(ALIVE[job.run]) > 6, "not evicted after every task"
        assert alive(job.run) == 0
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        assert err.type == SAGA_FAILED_TYPE
        assert journal(job) == [
            *(f"ran:do:{n}" for n in "abc"),
            *(f"ran:undo:{n}" for n in "cba"),
        ]

    async def test_while_a_do_runs(self, client: Client) -> None:
        """Evicted from a one-workflow cache while its do runs: not compensated, nothing said."""
        job = Job(run=new_id("run"), steps=["a", "b"], block=["b"])
        other = Job(run=new_id("run"), steps=["a"])
        async with reports() as seen:
            async with saga_worker(
                client, workflows=WORKFLOWS, activities=ALL, max_cached_workflows=1
            ) as w:
                handle = await start(client, w.task_queue, job, "steps")
                await started(job, 1)
                # The other workflow takes the only cache slot: the first is evicted.
                await (await start(client, w.task_queue, other, "steps")).result()
                assert journal(job) == ["ran:do:a", "started:do:b"]
                # Replayed on the next task, it compensates once, for the cancel only.
                await handle.cancel()
                with pytest.raises(WorkflowFailureError) as ei:
                    await handle.result()
            del w
            await until_collected(job)
        assert seen == [], said(seen)
        assert len(ALIVE[job.run]) >= 2, "not evicted"
        assert alive(job.run) == 0
        assert isinstance(ei.value.cause, CancelledError)
        assert journal(job) == [
            "ran:do:a",
            "started:do:b",
            "cancelled:do:b",
            "ran:undo:b",
            "ran:undo:a",
        ]
