"""What a failed or running saga says: recorded values, undo counts, names, live statuses."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest

from sagakit import (
    CompensationError,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaReport,
    SagaStatus,
    StepStatus,
    UndoStatus,
)
from sagakit.inmemory import ALWAYS, Fault, InMemoryExecutor

from ._support import Journal, options


class Boom(Exception):
    pass


async def until(predicate, limit: int = 1000) -> None:  # type: ignore[no-untyped-def]
    """Yield to the loop until `predicate()` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def run_failing(executor: InMemoryExecutor, saga_fn: Any, *args: Any) -> SagaFailed:
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga_fn, *args)
    return info.value


def counted(err: SagaFailed) -> tuple[int, int]:
    """The (succeeded, total) of "N of M undo(s) succeeded" in the SagaFailed message."""
    found = re.findall(r"\b(\d+) of (\d+) undo\(s\) succeeded\b", str(err))
    assert len(found) == 1, str(err)
    return int(found[0][0]), int(found[0][1])


async def value(n: int) -> dict[str, int]:
    return {"n": n}


async def undo_value(n: int) -> None:
    return None


async def hang(n: int) -> dict[str, int]:
    await asyncio.Event().wait()
    return {"n": n}


async def fail(n: int) -> dict[str, int]:
    await asyncio.sleep(0)
    raise Boom(f"step {n}")


class TestRecordedValues:
    async def test_failed_and_cancelled_steps_record_no_value(self) -> None:
        """With record_values a succeeded step shows its result; failed and cancelled ones None."""
        executor = InMemoryExecutor(options(record_values=True))

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="ok")
            await s.gather(
                s.step(hang, undo_value, 2, name="cancelled"),
                s.step(fail, undo_value, 3, name="failed"),
                s.step(value, undo_value, 4, name="sibling"),
            )

        r = (await run_failing(executor, saga)).report
        assert [(s.name, s.status, s.result) for s in r.steps] == [
            ("ok", StepStatus.SUCCEEDED, {"n": 1}),
            ("cancelled", StepStatus.CANCELLED, None),
            ("failed", StepStatus.FAILED, None),
            ("sibling", StepStatus.SUCCEEDED, {"n": 4}),
        ]
        assert executor.last_report == r

    async def test_a_do_that_returned_before_its_failure_records_no_value(self) -> None:
        """A do whose effect happened but whose caller saw a failure (after_effect) records None."""
        executor = InMemoryExecutor(
            options(record_values=True), faults=[Fault.fail("late", after_effect=True)]
        )

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="ok")
            await s.step(value, undo_value, 2, name="late")

        r = (await run_failing(executor, saga)).report
        assert [(s.status, s.result) for s in r.steps] == [
            (StepStatus.SUCCEEDED, {"n": 1}),
            (StepStatus.FAILED, None),
        ]

    async def test_a_step_retried_to_success_records_the_final_value(self) -> None:
        """A step that failed its first attempts records what its succeeding attempt returned."""
        executor = InMemoryExecutor(
            options(record_values=True, retry_policy=RetryPolicy(maximum_attempts=3)),
            faults=[Fault.fail("flaky", attempts=[1, 2])],
        )

        async def saga(s: Saga) -> dict[str, int]:
            return await s.step(value, undo_value, 5, name="flaky")

        assert await executor.run(saga) == {"n": 5}
        step = executor.last_report.steps[0]
        assert (step.attempts, step.result) == (3, {"n": 5})

    async def test_a_cancelled_run_records_no_value_for_the_cancelled_step(self) -> None:
        """Cancelling the saga mid-step: earlier steps keep their values, the cancelled one None."""
        executor = InMemoryExecutor(options(record_values=True))
        started = asyncio.Event()

        async def wait(n: int) -> dict[str, int]:
            started.set()
            return await hang(n)

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="ok")
            await s.step(wait, undo_value, 2, name="hung")

        task = asyncio.create_task(executor.run(saga))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = executor.last_report
        assert [(s.status, s.result) for s in r.steps] == [
            (StepStatus.SUCCEEDED, {"n": 1}),
            (StepStatus.CANCELLED, None),
        ]

    async def test_a_running_step_records_no_value_in_a_report_taken_inside_it(self) -> None:
        """A report taken inside a do shows earlier steps' values and None for the running one."""
        executor = InMemoryExecutor(options(record_values=True))
        seen: list[SagaReport] = []

        async def look(n: int) -> dict[str, int]:
            seen.append(executor.last_report)
            return {"n": n}

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="first")
            await s.step(look, undo_value, 2, name="looking")

        await executor.run(saga)
        (mid,) = seen
        assert mid.status is SagaStatus.RUNNING
        assert [(s.name, s.status, s.result) for s in mid.steps] == [
            ("first", StepStatus.SUCCEEDED, {"n": 1}),
            ("looking", StepStatus.RUNNING, None),
        ]
        assert [s.result for s in executor.last_report.steps] == [{"n": 1}, {"n": 2}]

    async def test_a_running_step_records_no_value_in_a_report_taken_from_outside(self) -> None:
        """A report taken by another task while a step runs shows None for that step."""
        executor = InMemoryExecutor(options(record_values=True))
        started = asyncio.Event()

        async def wait(n: int) -> dict[str, int]:
            started.set()
            return await hang(n)

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="first")
            await s.gather(
                s.step(wait, undo_value, 2, name="running"),
                s.step(value, undo_value, 3, name="sibling"),
            )

        task = asyncio.create_task(executor.run(saga))
        await started.wait()
        await until(lambda: executor.reports[-1].steps[-1].status is StepStatus.SUCCEEDED)
        (mid,) = executor.reports
        assert [(s.name, s.status, s.result) for s in mid.steps] == [
            ("first", StepStatus.SUCCEEDED, {"n": 1}),
            ("running", StepStatus.RUNNING, None),
            ("sibling", StepStatus.SUCCEEDED, {"n": 3}),
        ]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_without_record_values_no_step_shows_a_value(self) -> None:
        """Without record_values every result is None: succeeded, failed, cancelled or running."""
        executor = InMemoryExecutor(options())
        seen: list[SagaReport] = []

        async def look(n: int) -> dict[str, int]:
            seen.append(executor.last_report)
            return {"n": n}

        async def saga(s: Saga) -> None:
            await s.step(value, undo_value, 1, name="ok")
            await s.step(look, undo_value, 2, name="looking")
            await s.gather(
                s.step(hang, undo_value, 3, name="cancelled"),
                s.step(fail, undo_value, 4, name="failed"),
            )

        r = (await run_failing(executor, saga)).report
        assert [s.status for s in r.steps] == [
            StepStatus.SUCCEEDED,
            StepStatus.SUCCEEDED,
            StepStatus.CANCELLED,
            StepStatus.FAILED,
        ]
        assert [s.result for s in r.steps] == [None] * 4
        assert [s.result for s in seen[0].steps] == [None, None]


class TestUndoCountInTheMessage:
    @pytest.mark.parametrize(
        ("continue_on_error", "parallel", "expected"),
        [
            (True, False, (2, 3)),  # d ok, c failed, a ok
            (False, False, (1, 3)),  # d ok, c failed, a skipped
            (True, True, (2, 3)),  # all three run at once
        ],
    )
    async def test_one_failed_undo_and_one_step_without_undo(
        self, journal: Journal, continue_on_error: bool, parallel: bool, expected: tuple[int, int]
    ) -> None:
        """In "N of M undo(s) succeeded", M counts registered undos only, N those that succeeded."""
        executor = InMemoryExecutor(
            options(
                continue_on_compensation_error=continue_on_error,
                parallel_compensation=parallel,
            )
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(journal.step("b")[0], None)
            await s.step(*journal.step("c", undo_fail=KeyError("c")))
            await s.step(*journal.step("d", fail=Boom("no truck")))

        err = await run_failing(executor, saga)
        assert counted(err) == expected

    @pytest.mark.parametrize(
        ("continue_on_error", "parallel", "expected"),
        [
            (True, False, (2, 4)),  # e ok, d failed, b ok, a failed
            (False, False, (1, 4)),  # e ok, d failed, then b and a skipped
            (True, True, (2, 4)),  # all four run at once
        ],
    )
    async def test_two_failed_undos(
        self, journal: Journal, continue_on_error: bool, parallel: bool, expected: tuple[int, int]
    ) -> None:
        """Every finally failed undo lowers N; skipped undos still count in M."""
        executor = InMemoryExecutor(
            options(
                continue_on_compensation_error=continue_on_error,
                parallel_compensation=parallel,
            )
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=ValueError("a")))
            await s.step(*journal.step("b"))
            await s.step(journal.step("none")[0], None)
            await s.step(*journal.step("d", undo_fail=KeyError("d")))
            await s.step(*journal.step("e"))
            raise Boom("body")

        err = await run_failing(executor, saga)
        assert counted(err) == expected
        if not continue_on_error:
            assert journal.undone == ["e", "d"]

    async def test_every_undo_succeeding(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """When every registered undo succeeds, N equals M."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(journal.step("b")[0], None)
            await s.step(*journal.step("c", fail=Boom()))

        assert counted(await run_failing(executor, saga)) == (2, 2)

    async def test_every_undo_failing(self, journal: Journal, executor: InMemoryExecutor) -> None:
        """When every registered undo fails, N is 0."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a", undo_fail=KeyError("a")))
            await s.step(*journal.step("b", undo_fail=KeyError("b")))
            raise Boom()

        assert counted(await run_failing(executor, saga)) == (0, 2)

    async def test_nothing_to_undo(self, journal: Journal, executor: InMemoryExecutor) -> None:
        """A saga that failed with only undo-less steps, or none, reports 0 of 0."""

        async def saga(s: Saga) -> None:
            await s.step(journal.step("a")[0], None)
            raise Boom()

        async def empty(s: Saga) -> None:
            raise Boom()

        assert counted(await run_failing(executor, saga)) == (0, 0)
        assert counted(await run_failing(executor, empty)) == (0, 0)

    async def test_an_undo_retried_to_success_counts_as_succeeded(self, journal: Journal) -> None:
        """An undo that failed an attempt and then succeeded by its retry policy counts in N."""
        executor = InMemoryExecutor(
            options(undo_retry_policy=RetryPolicy(maximum_attempts=2)),
            faults=[Fault.fail("a", undo=True, attempts=[1])],
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=Boom()))

        err = await run_failing(executor, saga)
        assert counted(err) == (2, 2)
        assert err.compensation_error is None

    async def test_an_undo_failing_every_retry_is_not_counted(self, journal: Journal) -> None:
        """An undo that failed all its attempts counts once in M and not in N."""
        executor = InMemoryExecutor(
            options(undo_retry_policy=RetryPolicy(maximum_attempts=3)),
            faults=[Fault.fail("a", undo=True, attempts=ALWAYS)],
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=Boom()))

        assert counted(await run_failing(executor, saga)) == (1, 2)

    async def test_the_message_names_the_failed_step_and_its_error(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """The message says the saga id, which step failed with what, and the undo count."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b", fail=Boom("no truck")))

        async def body(s: Saga) -> None:
            await s.step(*journal.step("a"))
            raise Boom("body broke")

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga, saga_id="o-1")
        assert str(info.value) == (
            "saga o-1 failed at step 2 'b' (Boom: no truck); 2 of 2 undo(s) succeeded"
        )
        with pytest.raises(SagaFailed) as info:
            await executor.run(body, saga_id="o-2")
        assert str(info.value) == (
            "saga o-2 failed in the saga body (Boom: body broke); 1 of 1 undo(s) succeeded"
        )


class TestCompensationErrorMessage:
    async def test_names_the_failed_undos_in_the_order_they_ran(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """CompensationError's message counts the failed undos and names their steps, LIFO."""

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("car", undo_fail=KeyError("car")))
            await s.step(*journal.step("hotel"))
            await s.step(*journal.step("flight", undo_fail=ValueError("flight")))
            await s.step(*journal.step("pay", fail=Boom()))

        comp = (await run_failing(executor, saga)).compensation_error
        assert isinstance(comp, CompensationError)
        assert comp.message == "2 undo(s) failed: flight, car"

    async def test_stopping_at_the_first_failure_names_only_it(self, journal: Journal) -> None:
        """With continue_on_compensation_error=False only the undo that failed is named."""
        executor = InMemoryExecutor(options(continue_on_compensation_error=False))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("car", undo_fail=KeyError("car")))
            await s.step(*journal.step("hotel", undo_fail=ValueError("hotel")))
            raise Boom()

        comp = (await run_failing(executor, saga)).compensation_error
        assert isinstance(comp, CompensationError)
        assert comp.message == "1 undo(s) failed: hotel"

    async def test_parallel_undos_are_named_newest_first_whatever_order_they_ended(
        self, journal: Journal
    ) -> None:
        """In parallel mode the failed undos are still named last registered first."""
        executor = InMemoryExecutor(options(parallel_compensation=True))

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("car", undo_fail=KeyError("car"), undo_yields=0))
            await s.step(*journal.step("hotel"))
            await s.step(*journal.step("flight", undo_fail=ValueError("f"), undo_yields=6))
            raise Boom()

        comp = (await run_failing(executor, saga)).compensation_error
        assert journal.names("undo", "end")[0] == "car"  # car's undo ended first
        assert isinstance(comp, CompensationError)
        assert comp.message == "2 undo(s) failed: flight, car"

    async def test_names_are_the_steps_names(self, journal: Journal) -> None:
        """A failed undo is named by its step's name (name= if given), as in the report."""
        executor = InMemoryExecutor(
            options(), faults=[Fault.fail("booking", undo=True, attempts=ALWAYS)]
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), name="booking")
            raise Boom()

        err = await run_failing(executor, saga)
        assert isinstance(err.compensation_error, CompensationError)
        assert err.compensation_error.message == "1 undo(s) failed: booking"
        assert [s.name for s in err.report.failed_undos] == ["booking"]


class TestReportDuringAnUndo:
    @pytest.mark.parametrize(
        "step_options",
        [{}, {"start_to_close_timeout": timedelta(seconds=5)}, {"name": "named"}],
        ids=["plain", "timed", "named"],
    )
    async def test_the_running_undo_is_running_and_the_saga_compensating(
        self, step_options: dict[str, Any]
    ) -> None:
        """A report taken in an undo shows it RUNNING, the saga COMPENSATING, the rest PENDING."""
        executor = InMemoryExecutor(options())
        seen: list[SagaReport] = []

        async def do(n: int) -> int:
            return n

        async def undo(n: int) -> None:
            if n == 2:
                seen.append(executor.last_report)

        async def saga(s: Saga) -> None:
            await s.step(do, undo, 1, **step_options)
            await s.step(do, undo, 2, **step_options)
            await s.step(do, undo, 3, **step_options)
            raise Boom("body")

        await run_failing(executor, saga)
        (mid,) = seen
        assert mid.status is SagaStatus.COMPENSATING
        assert mid.ended_at is None
        assert mid.error is not None
        assert mid.error.type == "Boom"
        undos = [s.undo for s in mid.steps]
        assert [(u.status, u.order) for u in undos if u is not None] == [
            (UndoStatus.PENDING, None),
            (UndoStatus.RUNNING, 2),
            (UndoStatus.COMPENSATED, 1),
        ]
        running = undos[1]
        assert running is not None
        assert running.started_at is not None
        assert running.ended_at is None
        assert running.error is None
        final = executor.last_report
        assert final.status is SagaStatus.COMPENSATED
        assert [s.undo.status for s in final.steps if s.undo] == [UndoStatus.COMPENSATED] * 3

    async def test_a_faulted_undo_retrying_shows_running(self) -> None:
        """An undo between its failed first attempt and its retry is RUNNING in the report."""
        executor = InMemoryExecutor(
            options(undo_retry_policy=RetryPolicy(maximum_attempts=2)),
            faults=[Fault.fail("a", undo=True, attempts=[1])],
        )
        seen: list[SagaReport] = []

        async def do() -> None:
            return None

        async def undo() -> None:
            seen.append(executor.last_report)  # runs on attempt 2 only: attempt 1 is faulted

        async def saga(s: Saga) -> None:
            await s.step(do, undo, name="a")
            raise Boom()

        await run_failing(executor, saga)
        (mid,) = seen
        assert mid.status is SagaStatus.COMPENSATING
        assert mid.steps[0].undo is not None
        assert mid.steps[0].undo.status is UndoStatus.RUNNING

    async def test_parallel_undos_are_all_running_at_once(self) -> None:
        """In parallel mode, a report taken while every undo is in flight shows them all RUNNING."""
        executor = InMemoryExecutor(options(parallel_compensation=True))
        barrier = asyncio.Barrier(3)
        seen: list[SagaReport] = []

        async def do(n: int) -> int:
            return n

        async def undo(n: int) -> None:
            await barrier.wait()
            seen.append(executor.last_report)

        async def saga(s: Saga) -> None:
            for n in (1, 2, 3):
                await s.step(do, undo, n)
            raise Boom()

        await asyncio.wait_for(run_failing(executor, saga), timeout=5)
        assert len(seen) == 3
        first = seen[0]
        assert first.status is SagaStatus.COMPENSATING
        assert [s.undo.status for s in first.steps if s.undo] == [UndoStatus.RUNNING] * 3
        assert executor.last_report.status is SagaStatus.COMPENSATED

    async def test_a_cancelled_saga_compensating_shows_running(self) -> None:
        """While a cancelled saga unwinds, its running undo is RUNNING and the saga COMPENSATING."""
        executor = InMemoryExecutor(options())
        seen: list[SagaReport] = []
        started = asyncio.Event()

        async def wait() -> None:
            started.set()
            await asyncio.Event().wait()

        async def undo() -> None:
            seen.append(executor.last_report)

        async def saga(s: Saga) -> None:
            await s.step(wait, undo)

        task = asyncio.create_task(executor.run(saga))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (mid,) = seen
        assert mid.status is SagaStatus.COMPENSATING
        assert mid.steps[0].status is StepStatus.CANCELLED
        assert mid.steps[0].undo is not None
        assert mid.steps[0].undo.status is UndoStatus.RUNNING
