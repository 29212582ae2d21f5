"""Cancelling the task that runs a saga: the unwind still runs to its end."""

from __future__ import annotations

import asyncio

import pytest

from sagakit import Saga, SagaStatus, StepStatus
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal


class Boom(Exception):
    pass


async def until(predicate, limit: int = 1000) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until `predicate()` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


class TestCancellation:
    async def test_cancel_mid_step_runs_every_undo_then_reraises(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Cancelling executor.run mid-step undoes every registered step, then re-raises."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"))
            await s.step(*journal.step("c", block=True))

        task = asyncio.create_task(executor.run(saga))
        await until(lambda: ("do", "c", "start") in journal.events)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert journal.undone == ["c", "b", "a"]
        assert journal.names("undo", "end") == ["c", "b", "a"]
        journal.assert_no_undo_before_its_do_ended()
        report = executor.last_report
        assert report.cancelled
        assert report.status is SagaStatus.COMPENSATED
        assert report.step("c").status is StepStatus.CANCELLED

    async def test_cancel_mid_gather_stops_every_sibling_first(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Cancelling during concurrent steps stops them all before the first undo."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.gather(
                s.step(*journal.step("b", block=True)), s.step(*journal.step("c", block=True))
            )

        task = asyncio.create_task(executor.run(saga))
        await until(lambda: len(journal.done) == 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        journal.assert_nothing_running_when_unwind_began()
        assert sorted(journal.undone) == ["a", "b", "c"]
        assert journal.undone[-1] == "a"

    async def test_second_cancel_during_unwind_does_not_abort_it(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A cancel that arrives while undos run is noted; every undo still runs to its end."""

        async def saga(s: Saga) -> None:
            for name in "abc":
                await s.step(*journal.step(name))
            await s.step(*journal.step("d", block=True))

        task = asyncio.create_task(executor.run(saga))
        await until(lambda: ("do", "d", "start") in journal.events)
        task.cancel()
        await until(lambda: ("undo", "c", "start") in journal.events)
        task.cancel()
        await until(lambda: ("undo", "b", "start") in journal.events)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert journal.names("undo", "end") == ["d", "c", "b", "a"]

    async def test_cancel_during_unwind_of_a_failure_still_finishes_it(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A failed saga cancelled mid-unwind finishes the unwind, then is cancelled."""

        async def saga(s: Saga) -> None:
            for name in "abc":
                await s.step(*journal.step(name))
            raise Boom()

        task = asyncio.create_task(executor.run(saga))
        await until(lambda: ("undo", "c", "start") in journal.events)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task
        assert journal.names("undo", "end") == ["c", "b", "a"]
        assert isinstance(info.value.__cause__, Boom)
        assert executor.last_report.cancelled

    async def test_cancel_before_any_step_runs_no_undo(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Cancelling a saga that registered nothing has nothing to undo and just re-raises."""
        started = asyncio.Event()

        async def saga(s: Saga) -> None:
            started.set()
            await asyncio.Event().wait()
            await s.step(*journal.step("never"))

        task = asyncio.create_task(executor.run(saga))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert journal.events == []
        assert executor.last_report.steps == []
