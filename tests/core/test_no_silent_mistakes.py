"""No silent mistakes: what a user gets wrong is named, before anything runs, with the fix."""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import timedelta

import pytest
import temporalio.common

from sagakit import (
    OptionsError,
    PayloadTooLargeError,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaOptions,
    SagaReport,
    SagaStateError,
    SagaStatus,
    StepDefinitionError,
    StepKind,
    UndoStatus,
)
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options


class TestStepsNeverAwaited:
    async def test_a_step_never_awaited_fails_the_saga_and_names_it(self, journal: Journal) -> None:
        """A saga.step(...) left unawaited is a SagaStateError naming it; earlier steps unwind."""
        do_a, undo_a = journal.step("a")
        do_b, undo_b = journal.step("b")

        async def saga(s: Saga) -> None:
            await s.step(do_a, undo_a)
            s.step(do_b, undo_b)  # forgot the await (and no RuntimeWarning may follow)

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        assert isinstance(info.value.__cause__, SagaStateError)
        assert "saga.step(b)" in str(info.value.__cause__)
        assert journal.done == ["a"]
        assert journal.undone == ["a"]

    async def test_a_task_made_of_a_step_that_never_started_counts_too(
        self, journal: Journal
    ) -> None:
        """A step wrapped in a task that had not started when the saga returned is refused."""
        do_a, undo_a = journal.step("a")
        started: list[asyncio.Task[object]] = []

        async def saga(s: Saga) -> None:
            started.append(asyncio.ensure_future(s.step(do_a, undo_a)))

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        assert isinstance(info.value.__cause__, SagaStateError)
        assert journal.done == []
        with pytest.raises(asyncio.CancelledError):  # cancelled: the task never runs the step
            await started[0]

    async def test_the_task_of_a_step_that_never_started_ends_quietly(
        self, journal: Journal, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Its task ends cancelled: no "Task exception was never retrieved" in the log."""
        do_a, undo_a = journal.step("a")
        do_b, undo_b = journal.step("b")
        left: list[asyncio.Task[object]] = []

        async def saga(s: Saga) -> None:
            await s.step(do_a, undo_a)
            left.append(asyncio.create_task(s.step(do_b, undo_b)))

        with caplog.at_level(logging.DEBUG, logger="asyncio"):
            with pytest.raises(SagaFailed) as info:
                await InMemoryExecutor(options()).run(saga)
            await asyncio.sleep(0)  # the task gets its turn
            task = left.pop()
            assert task.cancelled()  # not failed with "cannot reuse already awaited coroutine"
            del task
            gc.collect()  # an unretrieved task error is logged when the task is collected
        assert isinstance(info.value.__cause__, SagaStateError)
        assert "saga.step(b)" in str(info.value.__cause__)
        assert journal.done == ["a"]
        assert journal.undone == ["a"]
        assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


class TestSagaFunctions:
    async def test_a_saga_function_without_the_saga_parameter_says_so(self) -> None:
        """A saga function that cannot take the Saga first is refused with the fix."""

        async def no_saga(order: str) -> None:
            return None

        with pytest.raises(StepDefinitionError, match="takes the Saga first"):
            await InMemoryExecutor(options()).run(no_saga, "order-1")


class TestOptionNames:
    async def test_a_misspelled_step_option_gets_did_you_mean(self) -> None:
        """An unknown step keyword names the option it is closest to."""

        async def reserve() -> None:
            return None

        async def saga(s: Saga) -> None:
            await s.step(reserve, None, start_to_close_timout=timedelta(seconds=1))  # type: ignore[call-overload]

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        assert isinstance(info.value.__cause__, OptionsError)
        assert "did you mean 'start_to_close_timeout'" in str(info.value.__cause__)

    def test_a_misspelled_saga_option_gets_did_you_mean(self) -> None:
        """An unknown SagaOptions field names the field it is closest to."""
        with pytest.raises(OptionsError, match="did you mean 'retry_policy'"):
            SagaOptions(retry_polcy=RetryPolicy())  # type: ignore[call-arg]

    def test_an_option_nothing_is_close_to_gets_no_guess(self) -> None:
        """With nothing close, the message names the unknown option and guesses nothing."""
        with pytest.raises(OptionsError, match="unknown option 'colour'") as info:
            SagaOptions(colour="blue")  # type: ignore[call-arg]
        assert "did you mean" not in str(info.value)

    def test_temporalios_retry_policy_is_accepted(self) -> None:
        """temporalio.common.RetryPolicy, a Temporal user's habit, becomes sagakit's own."""
        theirs = temporalio.common.RetryPolicy(
            initial_interval=timedelta(seconds=2),
            backoff_coefficient=3.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=4,
            non_retryable_error_types=["CardDeclined"],
        )
        ours = SagaOptions(retry_policy=theirs, undo_retry_policy=theirs)
        expected = RetryPolicy(
            initial_interval=timedelta(seconds=2),
            backoff_coefficient=3.0,
            maximum_interval=timedelta(seconds=30),
            maximum_attempts=4,
            non_retryable_error_types=("CardDeclined",),
        )
        assert ours.retry_policy == expected
        assert ours.undo_retry_policy == expected


class TestResultAwareUndoShape:
    async def test_an_undo_without_the_result_parameter_is_refused(self) -> None:
        """With pass_result=True the undo must take the step's args and then the result."""

        async def open_account(customer: str) -> str:
            return "acct-1"

        async def close_account(customer: str) -> None:
            return None

        async def saga(s: Saga) -> None:
            await s.step(open_account, close_account, "ann", pass_result=True)  # type: ignore[arg-type]

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        assert isinstance(info.value.__cause__, StepDefinitionError)
        assert "undo(*args, result)" in str(info.value.__cause__)


class TestKindsInTheReport:
    async def test_kinds_survive_the_json_round_trip_and_show_in_the_timeline(self) -> None:
        """Each step's kind is in the report, its JSON and its timeline."""

        async def charge(order: str) -> None:
            return None

        async def ship(order: str) -> None:
            raise RuntimeError("no truck")

        async def saga(s: Saga) -> None:
            await s.step(charge, None, "o-1", kind="pivot")
            await s.step(ship, None, "o-1", kind="retriable")

        executor = InMemoryExecutor(options(), unlimited_attempts=3)
        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        report = info.value.report
        assert [s.kind for s in report.steps] == [StepKind.PIVOT, StepKind.RETRIABLE]
        again = SagaReport.model_validate_json(report.model_dump_json())
        assert [s.kind for s in again.steps] == [StepKind.PIVOT, StepKind.RETRIABLE]
        assert again.status == report.status
        timeline = report.timeline(color=False)
        assert "charge [pivot]" in timeline
        assert "ship [retriable]" in timeline


class TestPayloads:
    async def test_args_over_the_payload_limit_are_refused_as_on_temporal(
        self, journal: Journal
    ) -> None:
        """Args that Temporal would refuse fail their step unstarted; only earlier steps unwind."""
        do_a, undo_a = journal.step("a")
        do_b, undo_b = journal.step("b")

        async def saga(s: Saga) -> None:
            await s.step(do_a, undo_a, "small")
            await s.step(do_b, undo_b, "x" * 3_000_000)

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor(options()).run(saga)
        cause = info.value.__cause__
        assert isinstance(cause, PayloadTooLargeError)
        assert cause.limit == 2 * 1024 * 1024
        assert "over the payload limit" in str(cause)
        assert journal.done == ["a"]
        assert journal.undone == ["a"]
        step_b = info.value.report.steps[1]
        assert step_b.undo is not None
        assert step_b.undo.status is UndoStatus.NOT_NEEDED
        assert info.value.report.status is SagaStatus.COMPENSATED

    async def test_the_limit_can_be_lifted(self, journal: Journal) -> None:
        """payload_limit=None checks nothing (for sagas that never run on Temporal)."""
        do_a, undo_a = journal.step("a")

        async def saga(s: Saga) -> None:
            await s.step(do_a, undo_a, "x" * 3_000_000)

        await InMemoryExecutor(options(), payload_limit=None).run(saga)
        assert journal.done == ["a"]
