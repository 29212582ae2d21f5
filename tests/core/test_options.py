"""Step options and saga-wide defaults: names, precedence, and what memory ignores."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sagakit import (
    OptionsError,
    RetryPolicy,
    Saga,
    SagaFailed,
    SagaOptions,
    StepOptions,
    StepTimeoutError,
)
from sagakit.inmemory import Fault, InMemoryExecutor

from ._support import Journal, options

HOUR = timedelta(hours=1)


class Boom(Exception):
    pass


class TestPrecedence:
    async def test_saga_default_applies_to_every_step(self, journal: Journal) -> None:
        """A saga-wide start_to_close_timeout bounds steps that set none."""
        executor = InMemoryExecutor(
            options(start_to_close_timeout=timedelta(minutes=1)), faults=[Fault.delay("a", HOUR)]
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, StepTimeoutError)

    async def test_step_option_overrides_the_saga_default(self, journal: Journal) -> None:
        """A step's own keyword wins over the saga-wide default of the same name."""
        executor = InMemoryExecutor(
            options(start_to_close_timeout=timedelta(minutes=1)), faults=[Fault.delay("a", HOUR)]
        )

        async def saga(s: Saga) -> str:
            return await s.step(*journal.step("a"), start_to_close_timeout=2 * HOUR)

        assert await executor.run(saga) == "a"

    async def test_step_retry_policy_overrides_the_saga_policy(self, journal: Journal) -> None:
        """retry_policy= on a step replaces the saga's policy for that step only."""
        executor = InMemoryExecutor(options(), faults=[Fault.fail("a"), Fault.fail("b")])

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"), retry_policy=RetryPolicy(maximum_attempts=2))
            await s.step(*journal.step("b"))

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert [(s.name, s.attempts) for s in info.value.report.steps] == [("a", 2), ("b", 1)]

    async def test_undo_uses_the_do_policy_unless_it_has_its_own(self, journal: Journal) -> None:
        """Without undo_retry_policy the undo is retried by the step's retry_policy."""
        executor = InMemoryExecutor(
            options(retry_policy=RetryPolicy(maximum_attempts=3)),
            faults=[Fault.fail("a", undo=True, attempts=[1, 2]), Fault.fail("b", undo=True)],
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))
            await s.step(*journal.step("b"), undo_retry_policy=RetryPolicy(maximum_attempts=1))
            raise Boom()

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        r = info.value.report
        assert r.step("a").undo.attempts == 3  # type: ignore[union-attr]
        assert r.step("b").undo.attempts == 1  # type: ignore[union-attr]
        assert [s.name for s in r.failed_undos] == ["b"]

    async def test_default_retry_policy_of_the_executor(self, journal: Journal) -> None:
        """Steps with no policy anywhere use the executor's default_retry_policy."""
        executor = InMemoryExecutor(
            default_retry_policy=RetryPolicy(maximum_attempts=2),
            faults=[Fault.fail("a", attempts="always")],
        )

        async def saga(s: Saga) -> None:
            await s.step(*journal.step("a"))

        with pytest.raises(SagaFailed):
            await executor.run(saga)
        assert len(executor.attempts_of("a")) == 2


class TestOptionNames:
    def test_the_typed_keywords_are_the_step_options(self) -> None:
        """StepOptionsKw, what type checkers see, names every step option (pass_result apart)."""
        from sagakit._options import StepOptionsKw

        assert set(StepOptionsKw.__annotations__) == set(StepOptions.model_fields) - {
            "pass_result"  # an explicit keyword of saga.step, so the overloads can tell it
        }

    def test_step_options_use_temporal_names(self) -> None:
        """Step options take temporalio's names, plus sagakit's own: name, kind, pass_result, ..."""
        assert set(StepOptions.model_fields) == {
            "start_to_close_timeout",
            "schedule_to_close_timeout",
            "heartbeat_timeout",
            "retry_policy",
            "undo_retry_policy",
            "task_queue",
            "name",
            "local",
            "summary",
            "kind",
            "pass_result",
            "inline",
        }

    def test_inline_is_a_step_option_only(self) -> None:
        """Workflow code is said inline step by step: no saga-wide default would say which."""
        assert StepOptions(inline=True).inline is True
        assert StepOptions().inline is False
        with pytest.raises(OptionsError, match="unknown option 'inline'"):
            SagaOptions(inline=True)  # type: ignore[call-arg]

    def test_saga_options_have_the_two_unwind_knobs(self) -> None:
        """SagaOptions defaults: LIFO compensation that continues past a failed undo."""
        o = SagaOptions()
        assert o.parallel_compensation is False
        assert o.continue_on_compensation_error is True
        assert o.record_values is False

    def test_retry_policy_defaults_match_temporal(self) -> None:
        """RetryPolicy defaults are Temporal's: 1s, x2, cap 100x initial, unlimited attempts."""
        p = RetryPolicy()
        assert p.initial_interval == timedelta(seconds=1)
        assert p.backoff_coefficient == 2.0
        assert p.effective_maximum_interval == timedelta(seconds=100)
        assert p.maximum_attempts == 0

    def test_options_are_frozen(self) -> None:
        """Options cannot be changed after they are made (they are shared by runs)."""
        o = SagaOptions()
        with pytest.raises(ValueError, match="frozen"):
            o.parallel_compensation = True  # type: ignore[misc]

    async def test_temporal_only_options_are_accepted_and_ignored_in_memory(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """task_queue, heartbeat_timeout, local and summary are accepted and change nothing."""

        async def saga(s: Saga) -> str:
            return await s.step(
                *journal.step("a"),
                task_queue="payments",
                heartbeat_timeout=timedelta(seconds=1),
                local=True,
                summary="charge the card",
            )

        assert await executor.run(saga) == "a"
