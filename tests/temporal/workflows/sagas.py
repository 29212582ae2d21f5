"""Saga workflows of the Temporal adapter's tests."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import ActivityRef, TemporalExecutor
    from workflows.activities import (
        DO,
        UNDO,
        Job,
        alive,
        collect_garbage,
        not_an_activity,
        sync_touch,
        track,
    )

FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(milliseconds=200)
)


def options(job: Job, **extra: Any) -> SagaOptions:
    return SagaOptions(
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=FAST_RETRY,
        parallel_compensation=job.parallel,
        continue_on_compensation_error=job.keep_going,
        **extra,
    )


async def steps(saga: Saga, job: Job) -> list[str]:
    """One step per name in `job.steps`, each an activity do with an activity undo."""
    return [
        await saga.step(DO[n], UNDO[n], job, heartbeat_timeout=timedelta(seconds=2))
        for n in job.steps
    ]


@workflow.defn
class StepsWorkflow:
    """The workhorse: `job.steps` as activities, unwound per `job`'s options."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(steps, job)


@workflow.defn
class TwoSagasWorkflow:
    """Two sagas in one run: their ids (and so their keys) must differ."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        first = await TemporalExecutor(options=options(job)).run(steps, job)
        second = await TemporalExecutor(options=options(job)).run(steps, job)
        return first + second


# -- child workflows as steps ---------------------------------------------------


@workflow.defn
class ChildDo:
    @workflow.run
    async def run(self, job: Job) -> str:
        # An activity the child schedules outside any saga of its own carries the
        # parent's step, so it journals the parent step's key.
        return await workflow.execute_activity(
            DO["b"],
            job,
            start_to_close_timeout=timedelta(seconds=10),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


@workflow.defn
class ChildUndo:
    @workflow.run
    async def run(self, job: Job) -> str:
        return await workflow.execute_activity(
            UNDO["b"], job, start_to_close_timeout=timedelta(seconds=10)
        )


async def with_child(saga: Saga, job: Job) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], job)
    # Children are retried by the step's policy like activities; this one fails for good.
    b = await saga.step(
        ChildDo, ChildUndo, job, name="b", retry_policy=RetryPolicy(maximum_attempts=1)
    )
    c = await saga.step(DO["c"], UNDO["c"], job)
    return [a, b, c]


@workflow.defn
class ChildStepWorkflow:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(with_child, job)


@workflow.defn
class DeadlineWorkflow:
    """`job.steps` under `job.deadline`: a blocked do is cancelled when it passes."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        deadline = timedelta(seconds=job.deadline)
        return await TemporalExecutor(options=options(job, deadline=deadline)).run(steps, job)


@workflow.defn(name="DeadlineWorkflow")
class DeadlineDropped:
    """`DeadlineWorkflow` with its deadline taken out: replay must catch the missing timer."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(steps, job)


# -- inline async steps -----------------------------------------------------------


@workflow.defn
class InlineWorkflow:
    """An inline `async def` step waiting for a signal, between two activity steps."""

    def __init__(self) -> None:
        self.approved: bool | None = None

    @workflow.signal
    def decide(self, approved: bool) -> None:
        self.approved = approved

    async def approval(self, job: Job) -> str:
        await workflow.wait_condition(lambda: self.approved is not None)
        if not self.approved:
            raise ValueError("rejected")
        return "approved"

    async def saga(self, saga: Saga, job: Job) -> list[str]:
        a = await saga.step(DO["a"], UNDO["a"], job)
        ok = await saga.step(self.approval, None, job, inline=True)
        b = await saga.step(DO["b"], UNDO["b"], job)
        return [a, ok, b]

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(self.saga, job)


@workflow.defn
class InlineUndoWorkflow:
    """An activity do whose undo is workflow code: it waits for a `release` signal."""

    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    async def wait_for_release(self, job: Job) -> None:
        await workflow.wait_condition(lambda: self.released)

    async def saga(self, saga: Saga, job: Job) -> list[str]:
        a = await saga.step(DO["a"], self.wait_for_release, job, inline=True)
        b = await saga.step(DO["b"], UNDO["b"], job)
        return [a, b]

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(self.saga, job)


async def alert_inline(report: Any) -> None:
    """An alert hook that is not an activity: the hook has no `inline=True` to say."""


@workflow.defn
class InlineHookWorkflow:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        opts = options(job, on_compensation_failed=alert_inline)
        return await TemporalExecutor(options=opts).run(steps, job)


# -- refused before anything runs ----------------------------------------------------


async def bad_sync(saga: Saga, job: Job) -> None:
    await saga.step(not_an_activity, None, job)


async def stamp(job: Job) -> str:
    """An activity that forgot its `@activity.defn`: inline, it would read the wall clock."""
    return datetime.now().isoformat()


async def release_nothing(job: Job) -> None:
    """An undo that forgot its `@activity.defn` too."""


async def bad_not_inline(saga: Saga, job: Job) -> None:
    await saga.step(stamp, None, job)


async def bad_not_inline_undo(saga: Saga, job: Job) -> None:
    await after_a(saga, job, DO["b"], release_nothing)


async def bad_nothing_inline(saga: Saga, job: Job) -> None:
    timeout = timedelta(seconds=10)
    await saga.step(DO["a"], UNDO["a"], job, start_to_close_timeout=timeout, inline=True)


async def bad_nothing_inline_no_undo(saga: Saga, job: Job) -> None:
    timeout = timedelta(seconds=10)
    await saga.step(DO["a"], None, job, start_to_close_timeout=timeout, inline=True)


async def bad_timeout(saga: Saga, job: Job) -> None:
    await saga.step(DO["a"], UNDO["a"], job)


async def bad_lambda(saga: Saga, job: Job) -> None:
    await saga.step(lambda j: None, None, job)


async def after_a(saga: Saga, job: Job, do: Any, undo: Any) -> None:
    """Steps a, (`do`, `undo`) and c: refusing the second step unwinds the first.

    Accepted, a bad undo would be scheduled once step c fails (with `job.fail`).
    """
    timeout = timedelta(seconds=10)
    await saga.step(DO["a"], UNDO["a"], job, start_to_close_timeout=timeout)
    await saga.step(do, undo, job, start_to_close_timeout=timeout)
    await saga.step(DO["c"], UNDO["c"], job, start_to_close_timeout=timeout)


async def bad_empty_undo(saga: Saga, job: Job) -> None:
    await after_a(saga, job, DO["b"], "")


async def bad_blank_undo(saga: Saga, job: Job) -> None:
    await after_a(saga, job, DO["b"], " \t")


async def bad_empty_do(saga: Saga, job: Job) -> None:
    await after_a(saga, job, "", UNDO["b"])


BAD = {
    "sync": bad_sync,
    "timeout": bad_timeout,
    "lambda": bad_lambda,
    "empty_undo": bad_empty_undo,
    "blank_undo": bad_blank_undo,
    "empty_do": bad_empty_do,
    "not_inline": bad_not_inline,
    "not_inline_undo": bad_not_inline_undo,
    "nothing_inline": bad_nothing_inline,
    "nothing_inline_no_undo": bad_nothing_inline_no_undo,
}


@workflow.defn
class BadStepWorkflow:
    @workflow.run
    async def run(self, job: Job, which: str) -> None:
        # No saga-wide timeout here, so "timeout" has none at all.
        await TemporalExecutor(options=SagaOptions()).run(BAD[which], job)


# -- misc ---------------------------------------------------------------------------


async def sync_step(saga: Saga, job: Job) -> str:
    return await saga.step(sync_touch, None, job)


@workflow.defn
class SyncActivityWorkflow:
    @workflow.run
    async def run(self, job: Job) -> str:
        return await TemporalExecutor(options=options(job)).run(sync_step, job)


async def local_steps(saga: Saga, job: Job) -> list[str]:
    return [await saga.step(DO[n], UNDO[n], job, local=True) for n in job.steps]


@workflow.defn
class LocalStepsWorkflow:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(local_steps, job)


@workflow.defn
class CancelSagaTaskWorkflow:
    """Cancels its own saga task on signals: the second cancel lands mid-unwind."""

    def __init__(self) -> None:
        self.cancels = 0

    @workflow.signal
    def cancel_saga(self) -> None:
        self.cancels += 1

    @workflow.run
    async def run(self, job: Job) -> str:
        task = asyncio.create_task(TemporalExecutor(options=options(job)).run(steps, job))
        self.seen = 0
        while not task.done():
            await workflow.wait_condition(lambda: self.cancels > self.seen or task.done())
            if self.cancels > self.seen:
                self.seen = self.cancels
                task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        return "finished"


# -- versioning ------------------------------------------------------------------------


async def versioned_v1(saga: Saga, job: Job) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], job)
    b = await saga.step(DO["b"], UNDO["b"], job)
    return [a, b]


async def versioned_v2(saga: Saga, job: Job) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], job)
    # New in v2: runs only in workflows started after the change.
    x = [await saga.step(DO["c"], UNDO["c"], job)] if workflow.patched("add-step-c") else []
    b = await saga.step(DO["b"], UNDO["b"], job)
    return [a, *x, b]


async def versioned_unpatched(saga: Saga, job: Job) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], job)
    c = await saga.step(DO["c"], UNDO["c"], job)  # added without a patch: breaks replay
    b = await saga.step(DO["b"], UNDO["b"], job)
    return [a, c, b]


@workflow.defn(name="Versioned")
class VersionedV1:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(versioned_v1, job)


@workflow.defn(name="Versioned")
class VersionedV2:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(versioned_v2, job)


@workflow.defn(name="Versioned")
class VersionedUnpatched:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(versioned_unpatched, job)


# -- steps by name, summaries, lean failures ----------------------------------------------


async def by_name(saga: Saga, job: Job) -> list[str]:
    a = await saga.step("do_a", "undo_a", job, summary="reserve a")
    b: str = await saga.step(ActivityRef("do_b", result_type=str), ActivityRef("undo_b"), job)
    return [a, b]


@workflow.defn
class ByNameWorkflow:
    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job), report_in_failure=False).run(
            by_name, job
        )


# -- long waits (time-skipping server) ---------------------------------------------------


async def slow_retry(saga: Saga, job: Job) -> list[str]:
    hourly = RetryPolicy(initial_interval=timedelta(hours=1), maximum_attempts=3)
    a = await saga.step(DO["a"], UNDO["a"], job)
    b = await saga.step(DO["b"], UNDO["b"], job, retry_policy=hourly)
    return [a, b]


@workflow.defn
class SlowRetryWorkflow:
    """Step b fails once and is retried an hour later."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(slow_retry, job)


# -- teardown: a worker stopping, or an eviction, mid-saga ----------------------------------


async def steps_then_fail(saga: Saga, job: Job) -> list[str]:
    """`job.steps`, then the body fails: an unwind with no failed activity (nothing logged)."""
    await steps(saga, job)
    raise ApplicationError("the saga body failed", type="BodyFailed", non_retryable=True)


async def parallel_steps(saga: Saga, job: Job) -> list[str]:
    """`job.steps` all at once, through `saga.gather`."""
    return await saga.gather(
        *(saga.step(DO[n], UNDO[n], job, heartbeat_timeout=timedelta(seconds=2)) for n in job.steps)
    )


async def child_step(saga: Saga, job: Job) -> list[str]:
    """Step a, then `ChildDo` (which runs do_b) as a child workflow step."""
    a = await saga.step(DO["a"], UNDO["a"], job)
    b = await saga.step(ChildDo, ChildUndo, job, name="b")
    return [a, b]


TEARDOWN = {
    "steps": steps,
    "fail": steps_then_fail,
    "parallel": parallel_steps,
    "child": child_step,
}


@workflow.defn
class TeardownWorkflow:
    """A saga of `TEARDOWN[how]`; its coroutine is tracked weakly (`activities.track`)."""

    @workflow.run
    async def run(self, job: Job, how: str) -> list[str]:
        saga = TemporalExecutor(options=options(job)).run(TEARDOWN[how], job)
        track(job.run, saga)
        return await saga


@workflow.defn
class CollectGarbageWorkflow:
    """Collects the garbage in its own workflow task: `[live sagas of run before, after]`."""

    @workflow.run
    async def run(self, run: str) -> list[int]:
        before = alive(run)
        with workflow.unsafe.sandbox_unrestricted():
            collect_garbage()
        return [before, alive(run)]
