"""Retries at their edges, in memory: a deadline passed after attempt 1, a cancel mid-backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sagakit import (
    DoOutcome,
    Phase,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaStatus,
    StepStatus,
    StepTimeoutError,
    UndoStatus,
    current_step,
)
from sagakit.inmemory import ALWAYS, Fault, InjectedFault, InMemoryExecutor, VirtualClock

from ._support import options

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
START = datetime(2030, 1, 1, tzinfo=UTC)


class Boom(Exception):
    pass


def slow_fault(step: str, attempt: int, latency: timedelta, *, fails: bool = False) -> Fault:
    """A fault that makes one attempt take `latency` of virtual time (and then fail, if `fails`)."""
    return Fault(
        step=step,
        attempts=frozenset({attempt}),
        latency=latency,
        error=Boom(f"slow and failing on attempt {attempt}") if fails else None,
    )


class Recorder:
    """A do and an undo that record their runs and what the undo knew of its do."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.outcomes: dict[str, DoOutcome] = {}

    async def reserve(self, name: str) -> str:
        self.runs.append(f"do {name}")
        return name

    async def release(self, name: str) -> None:
        self.runs.append(f"undo {name}")
        self.outcomes[name] = current_step().do_outcome


async def timed_out(executor: InMemoryExecutor, saga_fn: Any) -> SagaFailed:
    """Run a saga that must fail; its cause must be a StepTimeoutError (and nothing internal)."""
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga_fn)
    cause = info.value.__cause__
    assert isinstance(cause, StepTimeoutError), repr(cause)
    assert isinstance(cause, TimeoutError)
    assert not isinstance(cause, AssertionError)
    return info.value


class TestScheduleToCloseAfterTheFirstAttempt:
    async def test_deadline_reached_during_the_backoff_sleep(self) -> None:
        """When the next backoff would end past schedule_to_close_timeout, the step times out."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=10 * MINUTE, backoff_coefficient=1)),
            faults=[Fault.fail("a", attempts=ALWAYS)],
            clock=VirtualClock(START),
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "a", name="a",
                         schedule_to_close_timeout=15 * MINUTE)  # fmt: skip

        err = await timed_out(executor, saga)
        assert "schedule_to_close_timeout" in str(err.__cause__)
        assert [a.attempt for a in executor.attempts_of("a")] == [1, 2]
        assert executor.clock.skipped == 10 * MINUTE
        step = err.report.step("a")
        assert (step.status, step.attempts) == (StepStatus.FAILED, 2)
        assert step.error is not None
        assert step.error.type == "StepTimeoutError"
        assert rec.outcomes == {"a": DoOutcome.FAILED}

    async def test_deadline_reached_during_the_latency_of_attempt_two(self) -> None:
        """Attempt 2 whose latency runs past schedule_to_close_timeout ends in StepTimeoutError."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=MINUTE, maximum_attempts=5)),
            faults=[Fault.fail("a", attempts=[1]), slow_fault("a", 2, 30 * MINUTE)],
            clock=VirtualClock(START),
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "a", name="a",
                         schedule_to_close_timeout=20 * MINUTE)  # fmt: skip

        err = await timed_out(executor, saga)
        assert "schedule_to_close_timeout" in str(err.__cause__)
        assert [(a.attempt, a.ok) for a in executor.attempts_of("a")] == [(1, False), (2, False)]
        assert isinstance(executor.attempts_of("a")[1].error, StepTimeoutError)
        assert rec.runs == ["undo a"]  # attempt 2 never got to run the do
        assert executor.clock.skipped == 31 * MINUTE
        step = err.report.step("a")
        assert (step.status, step.attempts) == (StepStatus.FAILED, 2)
        assert step.error is not None
        assert step.error.type == "StepTimeoutError"
        assert err.report.status is SagaStatus.COMPENSATED

    async def test_deadline_reached_during_a_failing_slow_attempt_two(self) -> None:
        """A slow attempt 2 that would also fail ends as a timeout once it passed the deadline."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=MINUTE, maximum_attempts=5)),
            faults=[Fault.fail("a", attempts=[1]), slow_fault("a", 2, HOUR, fails=True)],
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "a", name="a",
                         schedule_to_close_timeout=20 * MINUTE)  # fmt: skip

        err = await timed_out(executor, saga)
        assert [a.attempt for a in executor.attempts_of("a")] == [1, 2]
        assert err.report.step("a").attempts == 2

    async def test_deadline_reached_during_attempt_three(self) -> None:
        """Two failed attempts, then an attempt 3 that runs past the deadline: StepTimeoutError."""
        executor = InMemoryExecutor(
            options(
                retry_policy=RetryPolicy(
                    initial_interval=MINUTE, backoff_coefficient=2, maximum_attempts=6
                )
            ),
            faults=[Fault.fail("a", attempts=[1, 2]), slow_fault("a", 3, 30 * MINUTE)],
            clock=VirtualClock(START),
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "a", name="a",
                         schedule_to_close_timeout=20 * MINUTE)  # fmt: skip

        err = await timed_out(executor, saga)
        assert "schedule_to_close_timeout" in str(err.__cause__)
        assert [(a.attempt, a.ok) for a in executor.attempts_of("a")] == [
            (1, False),
            (2, False),
            (3, False),
        ]
        assert executor.clock.skipped == (1 + 2 + 30) * MINUTE
        step = err.report.step("a")
        assert (step.status, step.attempts) == (StepStatus.FAILED, 3)
        assert step.error is not None
        assert step.error.type == "StepTimeoutError"

    async def test_deadline_reached_exactly_at_the_end_of_attempt_two(self) -> None:
        """Attempt 2's latency ending exactly at the deadline is within it: the do then runs."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=MINUTE, maximum_attempts=5)),
            faults=[Fault.fail("a", attempts=[1]), slow_fault("a", 2, 19 * MINUTE)],
        )
        rec = Recorder()

        async def saga(s: Saga) -> str:
            return await s.step(rec.reserve, rec.release, "a", name="a",
                                schedule_to_close_timeout=20 * MINUTE)  # fmt: skip

        assert await executor.run(saga) == "a"
        assert [(a.attempt, a.ok) for a in executor.attempts_of("a")] == [(1, False), (2, True)]

    async def test_the_rest_of_the_deadline_bounds_real_code_in_attempt_two(self) -> None:
        """Attempt 2's real code gets only what is left of schedule_to_close_timeout."""
        calls: list[int] = []

        async def slow() -> str:
            calls.append(len(calls) + 1)
            await asyncio.sleep(30)
            return "late"

        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=MINUTE, maximum_attempts=5)),
            faults=[Fault.fail("slow", attempts=[1])],
        )

        async def saga(s: Saga) -> None:
            await s.step(slow, None, schedule_to_close_timeout=MINUTE + timedelta(seconds=0.02))

        await asyncio.wait_for(timed_out(executor, saga), timeout=10)
        assert calls == [1]  # only attempt 2 ran the code (attempt 1 was faulted), then no more
        assert [a.attempt for a in executor.attempts_of("slow")] == [1, 2]

    async def test_an_undo_whose_deadline_runs_out_in_attempt_two(self) -> None:
        """An undo whose schedule_to_close_timeout runs out in attempt 2 fails: StepTimeoutError."""
        executor = InMemoryExecutor(
            options(undo_retry_policy=RetryPolicy(initial_interval=MINUTE, maximum_attempts=5)),
            faults=[
                Fault.fail("a", undo=True, attempts=[1]),
                Fault(step="a", phase=Phase.UNDO, attempts=frozenset({2}), latency=HOUR),
            ],
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "a", name="a",
                         schedule_to_close_timeout=20 * MINUTE)  # fmt: skip
            raise Boom()

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        err = info.value
        assert isinstance(err.__cause__, Boom)
        assert err.compensation_error is not None
        (undo_error,) = err.compensation_error.exceptions
        assert isinstance(undo_error, StepTimeoutError)
        undo = err.report.step("a").undo
        assert undo is not None
        assert (undo.status, undo.attempts) == (UndoStatus.FAILED, 2)
        assert undo.error is not None
        assert undo.error.type == "StepTimeoutError"
        assert [a.attempt for a in executor.attempts_of("a", Phase.UNDO)] == [1, 2]


class BackoffClock(VirtualClock):
    """A virtual clock that reports its first sleep (a retry backoff) to the test.

    `on_first_sleep` is called as that sleep starts (a test cancels the saga
    there, so the cancel lands in the sleep's own yield); with `hold`, the first
    sleep then waits until cancelled, and `sleeping` is set while it waits.
    """

    def __init__(self, *, hold: bool = False) -> None:
        super().__init__(START)
        self.hold = hold
        self.sleeps: list[float] = []
        self.sleeping = asyncio.Event()
        self.on_first_sleep: Callable[[], Any] | None = None

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        first = len(self.sleeps) == 1
        if first and self.on_first_sleep is not None:
            self.on_first_sleep()
        await super().sleep(seconds)
        if first and self.hold:
            self.sleeping.set()
            await asyncio.Event().wait()  # the backoff is still under way: cancel it here


async def cancelled_in_first_backoff(
    executor: InMemoryExecutor, clock: BackoffClock, saga_fn: Any
) -> None:
    """Run `saga_fn`, cancel it during the first retry backoff; it must end cancelled."""
    task = asyncio.create_task(executor.run(saga_fn))
    if clock.hold:
        await asyncio.wait_for(clock.sleeping.wait(), timeout=5)
        task.cancel()
    else:
        clock.on_first_sleep = task.cancel
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)


class TestCancelDuringBackoff:
    @pytest.mark.parametrize("hold", [False, True], ids=["as-it-starts", "held"])
    async def test_cancel_between_retries_stops_the_step_unretried(self, hold: bool) -> None:
        """A step cancelled while it waits to retry is not retried, and its undo sees UNKNOWN."""
        clock = BackoffClock(hold=hold)
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(initial_interval=HOUR, maximum_attempts=3)),
            faults=[Fault.fail("pay", attempts=[1])],
            clock=clock,
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "book", name="book")
            await s.step(rec.reserve, rec.release, "pay", name="pay")
            await s.step(rec.reserve, rec.release, "ship", name="ship")

        await cancelled_in_first_backoff(executor, clock, saga)
        assert [(a.attempt, a.ok) for a in executor.attempts_of("pay")] == [(1, False)]
        assert isinstance(executor.attempts_of("pay")[0].error, InjectedFault)
        assert clock.sleeps == [HOUR.total_seconds()]
        assert rec.runs == ["do book", "undo pay", "undo book"]  # pay's do never ran
        assert rec.outcomes == {"pay": DoOutcome.UNKNOWN, "book": DoOutcome.SUCCEEDED}
        r = executor.last_report
        assert r.cancelled
        assert r.status is SagaStatus.COMPENSATED
        assert [(s.name, s.status) for s in r.steps] == [
            ("book", StepStatus.SUCCEEDED),
            ("pay", StepStatus.CANCELLED),
        ]
        assert r.compensation_order == ["pay", "book"]

    async def test_cancel_during_an_undo_backoff_still_retries_the_undo(self) -> None:
        """A cancel that arrives while an undo waits to retry does not stop the unwind."""
        clock = BackoffClock()
        executor = InMemoryExecutor(
            options(undo_retry_policy=RetryPolicy(initial_interval=HOUR, maximum_attempts=3)),
            faults=[Fault.fail("pay", undo=True, attempts=[1])],
            clock=clock,
        )
        rec = Recorder()

        async def saga(s: Saga) -> None:
            await s.step(rec.reserve, rec.release, "book", name="book")
            await s.step(rec.reserve, rec.release, "pay", name="pay")
            raise Boom()

        await cancelled_in_first_backoff(executor, clock, saga)
        assert [(a.attempt, a.ok) for a in executor.attempts_of("pay", Phase.UNDO)] == [
            (1, False),
            (2, True),
        ]
        assert rec.runs == ["do book", "do pay", "undo pay", "undo book"]
        r = executor.last_report
        assert r.cancelled
        assert r.status is SagaStatus.COMPENSATED
