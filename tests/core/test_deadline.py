"""API.md §12 in memory: a deadline on the virtual clock, and what it refuses.

The contract suite states the rules on both backends; here, what only the
in-memory executor has: a `Fault.delay` that would carry a step past the
deadline is cut there, the step is cancelled at that moment, and its do
never runs (its undo does: the step counts as started).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sagakit import (
    DoOutcome,
    OptionsError,
    Saga,
    SagaDeadlineExceeded,
    SagaFailed,
    SagaOptions,
    SagaStatus,
    StepStatus,
    current_step,
)
from sagakit.inmemory import Fault, InMemoryExecutor

from ._fake_backend import FakeBackend, run_saga
from ._support import NO_RETRY


class TestADelayPastTheDeadline:
    async def test_is_cut_there_and_the_do_never_runs(self) -> None:
        """A 1 h delay on b under a 15 min deadline: the clock stops at 15 min, b is undone."""
        ran: list[str] = []
        outcomes: list[DoOutcome] = []

        def do(name: str) -> str:
            ran.append(f"do:{name}")
            return name

        def undo(name: str) -> None:
            ran.append(f"undo:{name}")
            outcomes.append(current_step().do_outcome)

        async def two(saga: Saga) -> None:
            await saga.step(do, undo, "a", name="a")
            await saga.step(do, undo, "b", name="b")

        ex = InMemoryExecutor(
            SagaOptions(retry_policy=NO_RETRY, deadline=timedelta(minutes=15)),
            faults=[Fault.delay("b", timedelta(hours=1))],
        )
        with pytest.raises(SagaFailed) as ei:
            await ex.run(two)
        assert isinstance(ei.value.__cause__, SagaDeadlineExceeded)
        assert ran == ["do:a", "undo:b", "undo:a"]
        assert outcomes == [DoOutcome.UNKNOWN, DoOutcome.SUCCEEDED]
        report = ei.value.report
        assert report.status is SagaStatus.COMPENSATED
        assert report.step("b").status is StepStatus.CANCELLED
        assert report.deadline_passed
        assert report.ended_at is not None
        assert report.ended_at - report.started_at == timedelta(minutes=15)

    async def test_a_retry_backoff_past_it_is_cut_too(self) -> None:
        """A do backing off for an hour between attempts ends at the deadline."""
        tries: list[int] = []

        def flaky(n: int) -> int:
            tries.append(n)
            raise ConnectionError("down")

        async def one(saga: Saga) -> None:
            await saga.step(flaky, None, 1)

        ex = InMemoryExecutor(SagaOptions(deadline=timedelta(minutes=10)))
        with pytest.raises(SagaFailed) as ei:
            await ex.run(one)
        assert isinstance(ei.value.__cause__, SagaDeadlineExceeded)
        report = ei.value.report
        assert report.ended_at is not None
        assert report.ended_at - report.started_at == timedelta(minutes=10)
        assert 1 < len(tries) < 20  # retried (1 s, 2 s, 4 s ... apart) until the deadline


class TestBadInput:
    @pytest.mark.parametrize("deadline", [timedelta(0), timedelta(seconds=-1)])
    def test_a_deadline_that_is_not_positive_is_refused(self, deadline: timedelta) -> None:
        """Zero or negative: `OptionsError` naming the option."""
        with pytest.raises(OptionsError, match="deadline must be a positive"):
            SagaOptions(deadline=deadline)

    async def test_a_cancel_during_the_deadline_wait_is_a_cancel(self) -> None:
        """Cancelled from outside before its deadline, the saga ends cancelled, not failed."""
        started = asyncio.Event()

        async def hang(n: int) -> None:
            started.set()
            await asyncio.Event().wait()

        async def one(saga: Saga) -> None:
            await saga.step(hang, None, 1)

        ex = InMemoryExecutor(SagaOptions(deadline=timedelta(minutes=10)))
        task = asyncio.create_task(ex.run(one))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ex.last_report.cancelled
        assert not ex.last_report.deadline_passed


class TimerFirstBackend(FakeBackend):
    """Reports a timeout whenever the time is up, even if the event was set in the same turn.

    As temporalio does when a timer and the saga's last step complete in one
    activation: it fires due timers before it checks conditions.
    """

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        until = None if seconds is None else self.now + seconds
        while True:
            if until is not None and self.now >= until:
                return False
            if event.is_set():
                return True
            await asyncio.sleep(0)


class TestTheTimerAndTheSagaEndingTogether:
    async def test_a_saga_that_ended_is_not_cancelled_by_a_late_timer(self) -> None:
        """The last step ends past the deadline, in the turn the timer fires: it succeeded."""
        backend = TimerFirstBackend()

        async def slow(n: int) -> int:
            await asyncio.sleep(0)
            backend.now += 120  # the step took two minutes
            return n

        async def two(saga: Saga) -> list[int]:
            return [await saga.step(slow, None, 1), await saga.step(slow, None, 2)]

        saga = Saga(backend, SagaOptions(deadline=timedelta(minutes=3)))
        assert await run_saga(saga, two, ()) == [1, 2]
        assert saga.status is SagaStatus.SUCCEEDED
        assert not saga.report().deadline_passed
        await asyncio.sleep(0.01)  # the deadline's task has ended, and cancelled nothing
        assert saga._run.watch is not None
        assert saga._run.watch.done()


class TestAnUnwindingSaga:
    async def test_its_deadline_changes_nothing(self) -> None:
        """An undo taking 20 min past a 10 min deadline runs to its end; the cause stays."""
        ran: list[str] = []

        def reserve(n: int) -> None:
            ran.append("do:reserve")

        def release(n: int) -> None:
            ran.append("undo:release")

        def ship(n: int) -> None:
            raise ValueError("no truck")

        async def two(saga: Saga) -> None:
            await saga.step(reserve, release, 1)
            await saga.step(ship, None, 1)

        ex = InMemoryExecutor(
            SagaOptions(retry_policy=NO_RETRY, deadline=timedelta(minutes=10)),
            faults=[Fault.delay("reserve", timedelta(minutes=20), undo=True)],
        )
        with pytest.raises(SagaFailed) as ei:
            await ex.run(two)
        assert isinstance(ei.value.__cause__, ValueError)
        assert ran == ["do:reserve", "undo:release"]
        report = ei.value.report
        assert report.status is SagaStatus.COMPENSATED
        assert not report.deadline_passed
        assert report.ended_at is not None
        assert report.ended_at - report.started_at >= timedelta(minutes=20)
