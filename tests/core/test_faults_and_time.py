"""Retries, timeouts and fault injection on the in-memory executor's virtual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError

from sagakit import (
    Phase,
    RetryPolicy,
    Saga,
    SagaFailed,
    StepStatus,
    StepTimeoutError,
    UndoStatus,
)
from sagakit.inmemory import ALWAYS, Fault, InjectedFault, InMemoryExecutor, VirtualClock

from ._support import Journal, options

HOUR = timedelta(hours=1)


class Boom(Exception):
    pass


class Declined(Exception):
    pass


def counting(fail_times: int, error: Exception | None = None):  # type: ignore[no-untyped-def]
    """An async do that fails its first `fail_times` calls, and its call list."""
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= fail_times:
            raise error if error is not None else Boom(f"call {len(calls)}")
        return "ok"

    return flaky, calls


class TestRetries:
    async def test_hour_long_backoff_passes_in_virtual_time(self) -> None:
        """A policy backing off for hours finishes at once; the clock shows the skipped time."""
        clock = VirtualClock(datetime(2030, 1, 1, tzinfo=UTC))
        policy = RetryPolicy(initial_interval=HOUR, backoff_coefficient=2, maximum_attempts=4)
        executor = InMemoryExecutor(options(retry_policy=policy), clock=clock)
        flaky, calls = counting(3)

        async def saga(s: Saga) -> str:
            return await s.step(flaky, None)

        assert await executor.run(saga) == "ok"
        assert calls == [1, 2, 3, 4]
        assert clock.skipped == HOUR * (1 + 2 + 4)
        report = executor.last_report
        assert report.steps[0].attempts == 4
        assert report.steps[0].duration == (HOUR * 7).total_seconds()

    async def test_backoff_is_capped_by_maximum_interval(self) -> None:
        """Backoffs grow by the coefficient up to maximum_interval."""
        policy = RetryPolicy(
            initial_interval=HOUR, backoff_coefficient=10, maximum_interval=2 * HOUR,
            maximum_attempts=4,
        )  # fmt: skip
        executor = InMemoryExecutor(options(retry_policy=policy))
        flaky, _ = counting(3)

        async def saga(s: Saga) -> str:
            return await s.step(flaky, None)

        await executor.run(saga)
        assert executor.clock.skipped == HOUR * (1 + 2 + 2)

    async def test_attempts_are_counted_when_retries_run_out(self) -> None:
        """A do that fails every attempt fails the step after maximum_attempts, all recorded."""
        executor = InMemoryExecutor(options(retry_policy=RetryPolicy(maximum_attempts=3)))
        flaky, calls = counting(99)

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert calls == [1, 2, 3]
        assert str(info.value.__cause__) == "call 3"  # the last attempt's error
        assert info.value.report.steps[0].attempts == 3
        assert [a.attempt for a in executor.attempts_of("flaky")] == [1, 2, 3]
        assert not any(a.ok for a in executor.attempts_of("flaky"))

    async def test_non_retryable_error_types_are_not_retried(self) -> None:
        """An error whose type name is in non_retryable_error_types fails the step at once."""
        policy = RetryPolicy(maximum_attempts=5, non_retryable_error_types=("Declined",))
        executor = InMemoryExecutor(options(retry_policy=policy))
        flaky, calls = counting(99, Declined("no"))

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert calls == [1]
        assert executor.clock.skipped == timedelta(0)

    async def test_non_retryable_error_types_match_the_exact_type_name(self) -> None:
        """Only the exact type name matches, as on Temporal: a subclass is still retried."""

        class HardDecline(Declined):
            pass

        policy = RetryPolicy(maximum_attempts=5, non_retryable_error_types=("Declined",))
        executor = InMemoryExecutor(options(retry_policy=policy))
        flaky, calls = counting(99, HardDecline("no"))

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert calls == [1, 2, 3, 4, 5]

    async def test_application_error_non_retryable_is_honoured(self) -> None:
        """Temporalio's ApplicationError(non_retryable=True) is never retried."""
        executor = InMemoryExecutor(options(retry_policy=RetryPolicy(maximum_attempts=5)))
        flaky, calls = counting(99, ApplicationError("nope", non_retryable=True))

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert calls == [1]
        assert isinstance(info.value.__cause__, ApplicationError)

    async def test_application_error_type_matches_non_retryable_error_types(self) -> None:
        """ApplicationError(type="Declined") is matched by its type, as on Temporal."""
        policy = RetryPolicy(maximum_attempts=5, non_retryable_error_types=("Declined",))
        executor = InMemoryExecutor(options(retry_policy=policy))
        flaky, calls = counting(99, ApplicationError("no", type="Declined"))

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert calls == [1]

    async def test_undo_is_retried_by_undo_retry_policy(self, journal: Journal) -> None:
        """An undo that fails transiently is retried by undo_retry_policy, then counts as done."""
        executor = InMemoryExecutor(options(), faults=[Fault.fail("a", undo=True, attempts=[1, 2])])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), undo_retry_policy=RetryPolicy(maximum_attempts=3))
            raise Boom()

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        undo = info.value.report.step("a").undo
        assert undo is not None
        assert undo.status is UndoStatus.COMPENSATED
        assert undo.attempts == 3
        assert info.value.compensation_error is None

    async def test_unlimited_policy_stops_at_unlimited_attempts(self) -> None:
        """maximum_attempts=0 (unlimited) stops in memory after `unlimited_attempts`."""
        executor = InMemoryExecutor(unlimited_attempts=7)
        flaky, calls = counting(99)

        async def saga(s: Saga) -> None:
            await s.step(flaky, None)

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert len(calls) == 7


class TestTimeouts:
    async def test_start_to_close_bounds_real_code(self) -> None:
        """A do running past start_to_close_timeout is cancelled and fails with StepTimeoutError."""
        cancelled: list[bool] = []

        async def slow() -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        async def saga(s: Saga) -> None:
            await s.step(slow, None, start_to_close_timeout=timedelta(milliseconds=20))

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)
        assert isinstance(info.value.__cause__, TimeoutError)
        assert cancelled == [True]

    async def test_start_to_close_timeouts_are_retried(self) -> None:
        """A timed-out attempt is retried like any failure; a faster retry succeeds."""
        calls: list[int] = []

        async def slow_once() -> str:
            calls.append(1)
            if len(calls) == 1:
                await asyncio.sleep(30)
            return "ok"

        async def saga(s: Saga) -> str:
            return await s.step(
                slow_once,
                None,
                start_to_close_timeout=timedelta(milliseconds=20),
                retry_policy=RetryPolicy(maximum_attempts=2),
            )

        executor = InMemoryExecutor()
        assert await executor.run(saga) == "ok"
        assert [a.ok for a in executor.attempts_of("slow_once")] == [False, True]
        assert isinstance(executor.attempts_of("slow_once")[0].error, StepTimeoutError)

    async def test_schedule_to_close_bounds_real_code(self) -> None:
        """A do that runs past schedule_to_close_timeout fails with StepTimeoutError."""

        async def slow() -> None:
            await asyncio.sleep(30)

        async def saga(s: Saga) -> None:
            await s.step(slow, None, schedule_to_close_timeout=timedelta(milliseconds=20))

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor().run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)

    async def test_virtual_delay_past_start_to_close_times_out(self, journal: Journal) -> None:
        """A Fault.delay past start_to_close_timeout times the attempt out, in no real time."""
        executor = InMemoryExecutor(options(), faults=[Fault.delay("a", HOUR)])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), start_to_close_timeout=timedelta(minutes=5))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)
        assert "start_to_close_timeout" in str(info.value.__cause__)
        assert executor.clock.skipped == HOUR
        assert journal.undone == ["a"]

    async def test_virtual_delay_within_timeout_only_takes_time(self, journal: Journal) -> None:
        """A Fault.delay shorter than the timeout only moves the clock; the do then runs."""
        executor = InMemoryExecutor(options(), faults=[Fault.delay("a", timedelta(minutes=1))])

        async def saga(s: Saga) -> str:
            return await s.step(*journal.step("a"), start_to_close_timeout=timedelta(minutes=5))

        assert await executor.run(saga) == "a"
        assert executor.last_report.steps[0].duration == 60.0

    async def test_schedule_to_close_stops_retries_in_virtual_time(self) -> None:
        """Retries stop once the next backoff would pass schedule_to_close_timeout."""
        policy = RetryPolicy(initial_interval=timedelta(minutes=10), backoff_coefficient=1)
        executor = InMemoryExecutor(options(retry_policy=policy))
        flaky, calls = counting(99)

        async def saga(s: Saga) -> None:
            await s.step(flaky, None, schedule_to_close_timeout=timedelta(minutes=35))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)
        assert len(calls) == 4  # at 0, 10, 20 and 30 minutes; the next would be at 40
        assert executor.clock.skipped == timedelta(minutes=30)

    async def test_virtual_delay_past_schedule_to_close_is_not_retried(self) -> None:
        """An attempt that alone outlasts schedule_to_close_timeout ends the step, unretried."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(maximum_attempts=5)),
            faults=[Fault.delay("a", 2 * HOUR, attempts=ALWAYS)],
        )
        journal = Journal()

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), schedule_to_close_timeout=HOUR)

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)
        assert len(executor.attempts_of("a")) == 1


class TestFaults:
    async def test_fail_on_attempt_n(self, journal: Journal) -> None:
        """Fault.fail(attempts=[1, 2]) fails exactly those attempts, before the function runs."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(maximum_attempts=3)),
            faults=[Fault.fail("a", attempts=[1, 2])],
        )

        async def saga(s: Saga) -> str:
            return await s.step(*journal.step("a"))

        assert await executor.run(saga) == "a"
        assert [a.ok for a in executor.attempts_of("a")] == [False, False, True]
        assert journal.done == ["a"]  # the faults hit before the function ran
        assert all(isinstance(a.error, InjectedFault) for a in executor.attempts_of("a")[:2])

    async def test_fault_with_custom_error(self, journal: Journal) -> None:
        """Fault.fail(error=...) raises that error (a class, an instance, or a factory)."""
        executor = InMemoryExecutor(
            options(),
            faults=[
                Fault.fail("a", error=Declined),
                Fault.fail("b", error=Declined("instance")),
                Fault.fail("c", error=lambda n: Declined(f"attempt {n}")),
            ],
        )
        causes = []
        for name in "abc":

            async def saga(s: Saga, name: str = name) -> None:
                await s.step(*journal.step(name))

            with pytest.raises(SagaFailed) as info:
                await executor.run(saga)
            causes.append(info.value.__cause__)
        assert all(isinstance(c, Declined) for c in causes)
        assert str(causes[1]) == "instance"
        assert str(causes[2]) == "attempt 1"

    async def test_after_effect_fault_runs_the_do_then_fails_and_undo_runs(
        self, journal: Journal
    ) -> None:
        """after_effect=True: the do's effect happened, the caller saw a failure, the undo runs."""
        executor = InMemoryExecutor(options(), faults=[Fault.fail("a", after_effect=True)])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert journal.done == ["a"]
        assert ("do", "a", "end") in journal.events
        assert journal.undone == ["a"]
        assert info.value.report.step("a").status is StepStatus.FAILED
        assert isinstance(info.value.__cause__, InjectedFault)

    async def test_undo_fault(self, journal: Journal) -> None:
        """Fault.fail(undo=True) makes the undo fail; the failure is reported and collected."""
        executor = InMemoryExecutor(options(), faults=[Fault.fail("a", undo=True, attempts=ALWAYS)])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=Boom()))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert journal.undone == ["b"]  # a's undo was stopped by the fault before it ran
        assert [st.name for st in info.value.report.failed_undos] == ["a"]
        assert info.value.compensation_error is not None
        assert isinstance(info.value.compensation_error.exceptions[0], InjectedFault)
        assert executor.attempts_of("a", Phase.UNDO)[0].error is not None

    async def test_faults_match_the_step_name_option(self, journal: Journal) -> None:
        """A fault names the step as the report does: its name= if given."""
        executor = InMemoryExecutor(options(), faults=[Fault.fail("reserve")])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), name="reserve")

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert journal.done == []

    async def test_a_fault_added_mid_run_hits_a_step_shape_already_seen(self) -> None:
        """Faults apply from the moment they are added, even to a shape that ran fault-free.

        Steps of a shape seen with no fault run on a fast path that skips fault
        matching; adding a fault must take that path away at once.
        """
        executor = InMemoryExecutor(options())
        undone: list[int] = []

        async def reserve(n: int) -> int:
            if n == 1:
                executor.faults.append(Fault.fail("reserve", attempts=ALWAYS))
            return n

        async def release(n: int) -> None:
            undone.append(n)

        async def saga(s: Saga) -> None:
            await s.step(reserve, release, 1)
            await s.step(reserve, release, 2)  # same shape, now faulted

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, InjectedFault)
        assert undone == [2, 1]
        assert [a.ok for a in executor.attempts_of("reserve")] == [True, False]

    async def test_faults_set_between_runs_apply_to_the_next_run(self) -> None:
        """Replacing or clearing the fault list between runs takes effect on the next run."""
        executor = InMemoryExecutor(options())

        async def reserve() -> str:
            return "ok"

        async def saga(s: Saga) -> str:
            return await s.step(reserve, None)

        assert await executor.run(saga) == "ok"
        executor.faults = [Fault.fail("reserve")]
        with pytest.raises(SagaFailed):
            await executor.run(saga)
        executor.faults.clear()
        assert await executor.run(saga) == "ok"
        executor.faults += [Fault.fail("reserve")]
        with pytest.raises(SagaFailed):
            await executor.run(saga)

    async def test_options_replaced_between_runs_apply_to_the_next_run(self) -> None:
        """A step timeout set on `executor.options` after a run bounds the next run's steps."""
        executor = InMemoryExecutor(options())

        async def slow() -> str:
            await asyncio.sleep(0.2)
            return "late"

        async def saga(s: Saga) -> str:
            return await s.step(slow, None)

        assert await executor.run(saga) == "late"
        executor.options = options(start_to_close_timeout=timedelta(milliseconds=10))
        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)

    def test_bad_fault_arguments_are_refused(self) -> None:
        """Fault attempts start at 1 and a delay cannot be negative."""
        with pytest.raises(ValueError, match="from 1"):
            Fault.fail("a", attempts=[0])
        with pytest.raises(ValueError, match="non-negative"):
            Fault.delay("a", timedelta(seconds=-1))
        with pytest.raises(ValueError, match="'always'"):
            Fault.fail("a", attempts="sometimes")  # type: ignore[arg-type]


class TestVirtualClock:
    def test_clock_moves_only_when_told(self) -> None:
        """A VirtualClock stands still until advanced, and never moves back."""
        start = datetime(2030, 1, 1, tzinfo=UTC)
        clock = VirtualClock(start)
        assert clock.now() == start
        clock.advance(timedelta(minutes=3))
        clock.advance(60)
        assert clock.now() == start + timedelta(minutes=4)
        assert clock.skipped == timedelta(minutes=4)
        with pytest.raises(ValueError, match="forward"):
            clock.advance(-1)

    def test_clock_needs_an_aware_start(self) -> None:
        """A naive start datetime is refused."""
        with pytest.raises(ValueError, match="aware"):
            VirtualClock(datetime(2030, 1, 1))

    async def test_report_times_come_from_the_virtual_clock(self, journal: Journal) -> None:
        """Report timestamps are virtual-clock readings."""
        start = datetime(2030, 1, 1, tzinfo=UTC)
        executor = InMemoryExecutor(options(), clock=VirtualClock(start))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        await executor.run(saga)
        assert executor.last_report.started_at == start
        assert executor.last_report.steps[0].started_at == start
