"""Child workflows run as sub-sagas (`saga.sub(Child.run, ...)`), for test_child_sub_saga.py.

The parent's steps are a (before) and e (after); the child's are `job.steps`;
d is the parent's fallback when the child's saga failed.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from sagakit import Saga, SagaFailed
    from sagakit.temporal import TemporalExecutor
    from workflows.activities import DO, UNDO, Job
    from workflows.sagas import ChildUndo, TwoSagasWorkflow, options, steps


@workflow.defn
class Hotels:
    """The child: `job.steps` as activities, a saga of its own."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(steps, job)


async def trip(saga: Saga, job: Job) -> dict[str, Any]:
    """a, then the child as sub-saga "hotels" (or the fallback d if it failed), then e."""
    a = await saga.step(DO["a"], UNDO["a"], job)
    caught: dict[str, Any] | None = None
    try:
        hotels = await saga.sub(Hotels.run, job, name="hotels")
    except SagaFailed as e:  # the child undid its own steps already
        cause = e.__cause__
        caught = {
            "message": str(e),
            "cause": type(cause).__name__,
            "cause_message": str(cause.cause) if hasattr(cause, "cause") else str(cause),
            "status": e.report.status.value,
            "steps": [
                [s.seq, s.name, s.sub, s.undo and s.undo.status.value] for s in e.report.steps
            ],
        }
        hotels = [await saga.step(DO["d"], UNDO["d"], job)]
    e_ = await saga.step(DO["e"], UNDO["e"], job)
    return {"result": [a, *hotels, e_], "caught": caught}


@workflow.defn
class Trip:
    """The parent: its saga runs `Hotels` as a sub-saga between two steps of its own."""

    @workflow.run
    async def run(self, job: Job) -> dict[str, Any]:
        return await TemporalExecutor(options=options(job)).run(trip, job)


async def travel_undo_refused(saga: Saga, job: Job) -> str:
    """A step whose undo is a child workflow: fine in a saga, refused in a sub-saga."""
    timeout = timedelta(seconds=10)
    return await saga.step(DO["b"], ChildUndo, job, start_to_close_timeout=timeout)


@workflow.defn
class UntravelledChild:
    @workflow.run
    async def run(self, job: Job) -> str:
        return await TemporalExecutor(options=options(job)).run(travel_undo_refused, job)


@workflow.defn
class NoSaga:
    """A child that runs no saga: it has no plan to hand back."""

    @workflow.run
    async def run(self, job: Job) -> str:
        return "nothing"


def around(child: Any) -> Any:
    """A saga of a, the child `child` as a sub-saga (not caught), then e."""

    async def saga_fn(saga: Saga, job: Job) -> list[Any]:
        a = await saga.step(DO["a"], UNDO["a"], job)
        got = await saga.sub(child, job)
        e = await saga.step(DO["e"], UNDO["e"], job)
        return [a, got, e]

    return saga_fn


async def only_c(saga: Saga, job: Job) -> str:
    return await saga.step(DO["c"], UNDO["c"], job)


@workflow.defn
class Rooms:
    """A grandchild: step c."""

    @workflow.run
    async def run(self, job: Job) -> str:
        return await TemporalExecutor(options=options(job)).run(only_c, job)


async def b_then_rooms(saga: Saga, job: Job) -> list[str]:
    b = await saga.step(DO["b"], UNDO["b"], job)
    return [b, await saga.sub(Rooms.run, job)]


@workflow.defn
class HotelsWithRooms:
    """A child whose saga runs step b, then `Rooms` as a sub-saga of its own."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=options(job)).run(b_then_rooms, job)


@workflow.defn
class TripNested:
    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(HotelsWithRooms.run), job)


@workflow.defn
class TripUntravelled:
    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(UntravelledChild.run), job)


@workflow.defn
class TripTwoSagas:
    """The child runs two sagas, one after the other: both plans come back."""

    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(TwoSagasWorkflow.run), job)


@workflow.defn
class TripNoSaga:
    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(NoSaga.run), job)


@workflow.defn
class Broken:
    """A child that fails, but not as a saga's failure: nothing says what it undid."""

    @workflow.run
    async def run(self, job: Job) -> str:
        raise ApplicationError("broken before any saga", type="Broken", non_retryable=True)


@workflow.defn
class TripBrokenChild:
    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(Broken.run), job)


@workflow.defn
class LateChild:
    """Its saga succeeds; then it waits, and a cancel ends the wait: it returns all the same."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        done = await TemporalExecutor(options=options(job)).run(steps, job)
        # Cancelled after its saga succeeded, it ends completed, plan and all.
        with contextlib.suppress(asyncio.CancelledError):
            await workflow.wait_condition(lambda: False)
        return done


@workflow.defn
class TripLateChild:
    @workflow.run
    async def run(self, job: Job) -> list[Any]:
        return await TemporalExecutor(options=options(job)).run(around(LateChild.run), job)


SUB_WORKFLOWS = [
    *[Hotels, Trip, UntravelledChild, TripUntravelled, ChildUndo, NoSaga, Broken],
    *[TwoSagasWorkflow, TripTwoSagas, TripNoSaga, TripBrokenChild],
    *[Rooms, HotelsWithRooms, TripNested, LateChild, TripLateChild],
]
