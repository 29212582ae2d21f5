"""API.md §9: mistakes that used to pass silently fail loudly, on every backend."""

from __future__ import annotations

import asyncio
import gc
import warnings
from datetime import timedelta

import pytest
import temporalio.common

from sagakit import OptionsError, Saga, SagaOptions, SagaStatus

from ._runner import Backend, Outcome, Refused, options
from ._shared import DO, UNDO, Plan, SagaFn, attempts, ran, steps

TEMPORAL_TWO_ATTEMPTS = temporalio.common.RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
)
"""temporalio's own RetryPolicy: two attempts, 100 ms apart."""


async def forgets_an_await(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    saga.step(DO["b"], UNDO["b"], plan)  # the mistake: never awaited


async def a_task_that_never_started(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    # The mistake: a task of a step, left behind before it ever ran.
    asyncio.ensure_future(saga.step(DO["b"], UNDO["b"], plan))  # noqa: RUF006


async def takes_nothing() -> None:
    pass


async def takes_the_plan_only(plan: Plan) -> None:
    pass


async def misspells_an_option(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan, start_to_close_timout=timedelta(seconds=1))


async def temporal_policy_per_step(saga: Saga, plan: Plan) -> None:
    for n in plan.steps:
        await saga.step(DO[n], UNDO[n], plan, retry_policy=TEMPORAL_TWO_ATTEMPTS)


async def temporal_undo_policy(saga: Saga, plan: Plan) -> None:
    for n in plan.steps:
        await saga.step(DO[n], UNDO[n], plan, undo_retry_policy=TEMPORAL_TWO_ATTEMPTS)


async def run_recording_warnings(
    backend: Backend, saga_fn: SagaFn, plan: Plan
) -> tuple[Outcome, list[str]]:
    """Run `saga_fn` to its end; the run's outcome and every warning it gave, as text."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = await backend.run(saga_fn, plan, options=options())
        await asyncio.sleep(0.2)  # a task left behind would run (and warn) by now
        gc.collect()  # a coroutine dropped unawaited warns when it is collected
    return outcome, [f"{w.category.__name__}: {w.message}" for w in caught]


class TestNeverAwaitedStep:
    async def test_a_step_never_awaited_fails_the_saga_naming_it(self, backend: Backend) -> None:
        """A saga.step(...) never awaited when the saga returns is a SagaStateError naming it."""
        plan = Plan()
        outcome, caught = await run_recording_warnings(backend, forgets_an_await, plan)
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "SagaStateError"
        assert "do_b" in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert caught == []  # no "coroutine ... was never awaited"

    async def test_a_task_of_a_step_that_never_started_fails_the_saga_naming_it(
        self, backend: Backend
    ) -> None:
        """A task made of a saga.step(...) that never started is a SagaStateError; it never runs."""
        plan = Plan()
        outcome, caught = await run_recording_warnings(backend, a_task_that_never_started, plan)
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "SagaStateError"
        assert "do_b" in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert caught == []


class TestSagaFunctionWithoutSaga:
    @pytest.mark.parametrize(
        "saga_fn",
        [
            pytest.param(takes_nothing, id="no-params"),
            pytest.param(takes_the_plan_only, id="args-only"),
        ],
    )
    async def test_a_saga_function_not_taking_the_saga_is_refused(
        self, backend: Backend, saga_fn: SagaFn
    ) -> None:
        """A saga function without the Saga first is refused, saying so, before anything runs."""
        plan = Plan()
        with pytest.raises(Refused) as refused:
            await backend.run(saga_fn, plan, options=options())
        assert refused.value.error.type == "StepDefinitionError"
        assert "takes the Saga first" in refused.value.error.message
        assert ran(plan) == []


class TestDidYouMean:
    async def test_a_misspelt_step_option_gets_did_you_mean(self, backend: Backend) -> None:
        """A misspelt step option is an OptionsError that names the option meant."""
        plan = Plan()
        outcome = await backend.run(misspells_an_option, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "OptionsError"
        assert "did you mean 'start_to_close_timeout'" in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]

    def test_a_misspelt_saga_option_gets_did_you_mean(self) -> None:
        """A misspelt SagaOptions field is an OptionsError that names the field meant."""
        with pytest.raises(OptionsError, match="did you mean 'retry_policy'"):
            SagaOptions(retry_polcy=TEMPORAL_TWO_ATTEMPTS)  # type: ignore[call-arg]


class TestTemporalRetryPolicy:
    async def test_a_step_takes_temporalios_retry_policy(self, backend: Backend) -> None:
        """A step's retry_policy may be temporalio's RetryPolicy; it applies as sagakit's would."""
        plan = Plan(steps=["a", "b"], flaky={"a": 1, "b": 2})
        outcome = await backend.run(temporal_policy_per_step, plan, options=options())
        assert [e.attempt for e in attempts(plan, "do", "a")] == [1, 2]
        assert [e.attempt for e in attempts(plan, "do", "b")] == [1, 2]
        assert outcome.cause is not None
        assert outcome.cause.type == "Flaky"
        assert ran(plan)[-2:] == ["undo:b", "undo:a"]

    async def test_undo_retry_policy_takes_temporalios_retry_policy(self, backend: Backend) -> None:
        """undo_retry_policy=temporalio.common.RetryPolicy(...) limits the undo's attempts."""
        plan = Plan(steps=["a", "b"], fail=["b"], flaky_undo={"a": 2, "b": 1})
        outcome = await backend.run(temporal_undo_policy, plan, options=options())
        assert [e.attempt for e in attempts(plan, "undo", "b")] == [1, 2]
        assert [e.attempt for e in attempts(plan, "undo", "a")] == [1, 2]
        assert [s.name for s in outcome.report.failed_undos] == ["do_a"]
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED

    async def test_saga_options_take_temporalios_retry_policy(self, backend: Backend) -> None:
        """SagaOptions(retry_policy=temporalio.common.RetryPolicy(...)) is every step's default."""
        plan = Plan(steps=["a", "b"], flaky={"a": 1, "b": 2})
        outcome = await backend.run(
            steps, plan, options=options(retry_policy=TEMPORAL_TWO_ATTEMPTS)
        )
        assert [e.attempt for e in attempts(plan, "do", "a")] == [1, 2]
        assert [e.attempt for e in attempts(plan, "do", "b")] == [1, 2]
        assert outcome.cause is not None
        assert outcome.cause.type == "Flaky"
