"""saga.step in memory (API.md §2): the saga's args, registration seen live, callable kinds.

That a step returns its do's result, that its undo gets the do's args and
that `name=` names it are the contract suite's (`tests/contract/`), on every
backend. Here: what only the in-memory executor accepts or shows.
"""

from __future__ import annotations

import functools
from typing import Any

import pytest
from temporalio import activity

import sagakit
from sagakit import DoOutcome, Phase, Saga, SagaFailed, current_step
from sagakit.inmemory import InMemoryExecutor


class Boom(Exception):
    pass


class TestSagaArgsAndRegistration:
    async def test_executor_passes_saga_args_to_the_saga_function(
        self, executor: InMemoryExecutor
    ) -> None:
        """executor.run(fn, *args) calls fn(saga, *args)."""

        async def saga(s: Saga, a: int, b: int) -> int:
            assert isinstance(s, Saga)
            return a + b

        assert await executor.run(saga, 2, 3) == 5

    async def test_undo_is_registered_before_do_starts(self, executor: InMemoryExecutor) -> None:
        """While the do runs, its step is already in the report with its undo pending."""
        seen: list[Any] = []

        async def do() -> None:
            r = executor.last_report
            seen.append((r.steps[-1].name, r.steps[-1].undo.status))  # type: ignore[union-attr]

        async def undo() -> None: ...

        async def saga(s: Saga) -> None:
            await s.step(do, undo)

        await executor.run(saga)
        assert seen == [("do", "pending")]


class TestCallableKinds:
    async def test_sync_and_async_callables_both_run(self, executor: InMemoryExecutor) -> None:
        """In memory a do or undo may be a plain function or an async one."""
        log: list[str] = []

        def sync_do(x: int) -> int:
            log.append("sync_do")
            return x + 1

        def sync_undo(x: int) -> None:
            log.append("sync_undo")

        async def async_do(x: int) -> int:
            log.append("async_do")
            return x * 2

        async def async_undo(x: int) -> None:
            log.append("async_undo")

        async def saga(s: Saga) -> None:
            assert await s.step(sync_do, async_undo, 1) == 2
            assert await s.step(async_do, sync_undo, 5) == 10
            raise Boom()

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert log == ["sync_do", "async_do", "sync_undo", "async_undo"]

    async def test_partials_lambdas_and_callable_objects_run(
        self, executor: InMemoryExecutor
    ) -> None:
        """functools.partial, lambdas and objects with (async) __call__ are callables too."""

        def add(a: int, b: int) -> int:
            return a + b

        class AsyncAdder:
            async def __call__(self, b: int) -> int:
                return 100 + b

        async def saga(s: Saga) -> list[int]:
            return [
                await s.step(functools.partial(add, 10), None, 1),
                await s.step(lambda b: b * 3, None, 2),
                await s.step(AsyncAdder(), None, 3),
            ]

        assert await executor.run(saga) == [11, 6, 103]
        assert [st.name for st in executor.last_report.steps] == ["add", "<lambda>", "AsyncAdder"]

    async def test_unhashable_callables_run(self, executor: InMemoryExecutor) -> None:
        """A callable object that cannot be hashed (so cannot be cached) still runs as a step."""

        class Unhashable:
            __hash__ = None  # type: ignore[assignment]

            def __init__(self, log: list[str], word: str) -> None:
                self.log, self.word = log, word

            async def __call__(self, x: int) -> int:
                self.log.append(self.word)
                return x

        log: list[str] = []

        async def saga(s: Saga) -> None:
            await s.step(Unhashable(log, "do"), Unhashable(log, "undo"), 1)
            raise Boom()

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert log == ["do", "undo"]

    async def test_sync_function_returning_an_awaitable_is_awaited(
        self, executor: InMemoryExecutor
    ) -> None:
        """A sync callable that returns an awaitable has that awaitable awaited."""

        async def inner() -> str:
            return "inner"

        async def saga(s: Saga) -> str:
            return await s.step(lambda: inner(), None)

        assert await executor.run(saga) == "inner"


@activity.defn
async def async_activity(x: int) -> dict[str, Any]:
    activity.heartbeat("working")
    info = activity.info()
    return {
        "x": x,
        "type": info.activity_type,
        "attempt": info.attempt,
        "key": sagakit.idempotency_key(),
        "phase": current_step().phase,
    }


@activity.defn(name="SyncActivity")
def sync_activity(x: int) -> dict[str, Any]:
    activity.heartbeat()
    info = activity.info()
    return {"x": x, "type": info.activity_type, "key": sagakit.idempotency_key()}


undo_infos: list[dict[str, Any]] = []


@activity.defn
async def undo_activity(x: int) -> None:
    info = activity.info()
    undo_infos.append(
        {
            "id": info.activity_id,
            "key": sagakit.idempotency_key(),
            "outcome": current_step().do_outcome,
        }
    )


class TestTemporalActivities:
    async def test_async_activity_sees_activity_info_and_heartbeats(
        self, executor: InMemoryExecutor
    ) -> None:
        """An async @activity.defn runs in a real activity context: info() and heartbeat() work."""

        async def saga(s: Saga) -> dict[str, Any]:
            return await s.step(async_activity, None, 4)

        out = await executor.run(saga, saga_id="trip-9")
        assert out == {
            "x": 4,
            "type": "async_activity",
            "attempt": 1,
            "key": "trip-9#1",
            "phase": Phase.DO,
        }

    async def test_sync_activity_sees_activity_info_and_its_registered_name(
        self, executor: InMemoryExecutor
    ) -> None:
        """A sync @activity.defn runs too, and its step is named after the activity's name."""

        async def saga(s: Saga) -> dict[str, Any]:
            return await s.step(sync_activity, None, 5)

        out = await executor.run(saga, saga_id="trip-10")
        assert out == {"x": 5, "type": "SyncActivity", "key": "trip-10#1"}
        assert executor.last_report.steps[0].name == "SyncActivity"

    async def test_activity_undo_runs_with_its_own_activity_id(
        self, executor: InMemoryExecutor
    ) -> None:
        """An activity used as an undo runs with the step's key and an `.undo` activity id."""
        undo_infos.clear()

        async def saga(s: Saga) -> None:
            await s.step(async_activity, undo_activity, 1)
            raise Boom()

        with pytest.raises(SagaFailed):
            await executor.run(saga, saga_id="trip-11")
        assert undo_infos == [
            {"id": "1.async_activity.undo", "key": "trip-11#1", "outcome": DoOutcome.SUCCEEDED}
        ]
