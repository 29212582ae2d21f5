"""Bad input is refused with a clear error before anything runs, never a hang."""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow

from sagakit import (
    OptionsError,
    RetryPolicy,
    Saga,
    SagaDefinitionError,
    SagaFailed,
    SagaOptions,
    SagaStateError,
    StepDefinitionError,
)
from sagakit.inmemory import InMemoryExecutor

from ._support import Journal


async def one_arg(x: int) -> None: ...


async def no_args() -> None: ...


async def kw_only(x: int, *, token: str) -> None: ...


@workflow.defn
class ChildWorkflow:
    @workflow.run
    async def run(self, x: int) -> None: ...


def step_call_raises(journal: Journal, do: Any, undo: Any, *args: Any, **options: Any) -> Any:
    """A saga whose second step is the bad one; it records what `saga.step` raised."""
    raised: list[BaseException] = []
    good_do, good_undo = journal.step("good")

    async def saga(s: Saga) -> None:
        await s.step(good_do, good_undo)
        try:
            await s.step(do, undo, *args, **options)
        except BaseException as e:
            raised.append(e)
            raise

    return saga, raised


async def refused(
    executor: InMemoryExecutor, journal: Journal, do: Any, undo: Any, *args: Any, **options: Any
) -> BaseException:
    """Run the bad step after a good one: assert it raised at once and the saga unwound."""
    saga, raised = step_call_raises(journal, do, undo, *args, **options)
    with pytest.raises(SagaFailed) as info:
        await executor.run(saga)
    assert info.value.__cause__ is raised[0]
    assert isinstance(raised[0], SagaDefinitionError)
    assert journal.done == ["good"]  # the bad step's do never ran
    assert journal.undone == ["good"]  # what did run is still compensated
    assert [s.name for s in info.value.report.steps] == ["good"]  # the bad one never registered
    return raised[0]


class TestBadCallables:
    @pytest.mark.parametrize("bad", [42, None, object()])
    async def test_non_callable_do_is_refused(
        self, journal: Journal, executor: InMemoryExecutor, bad: Any
    ) -> None:
        """A do that is not a function raises StepDefinitionError, also a TypeError."""
        err = await refused(executor, journal, bad, None)
        assert isinstance(err, StepDefinitionError)
        assert isinstance(err, TypeError)
        assert "must be a function" in str(err)

    async def test_non_callable_undo_is_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """An undo that is neither a function nor None is refused before the do runs."""
        err = await refused(executor, journal, one_arg, 42, 1)
        assert "undo must be a function" in str(err)

    async def test_coroutine_object_is_refused_with_the_fix(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Passing book_car(trip) instead of book_car is refused, and the message shows the fix."""
        coro = one_arg(1)
        try:
            err = await refused(executor, journal, coro, None)
        finally:
            coro.close()
        assert isinstance(err, StepDefinitionError)
        assert "awaitable" in str(err)
        assert "saga.step(book_car, cancel_car, trip)" in str(err)

    async def test_args_the_do_cannot_take_are_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """Too many or too few args for the do are refused before it runs."""
        err = await refused(executor, journal, one_arg, None, 1, 2)
        assert "takes 1 positional args but the step passes 2" in str(err)
        journal.events.clear()
        err = await refused(executor, journal, one_arg, None)
        assert "passes 0" in str(err)

    async def test_args_the_undo_cannot_take_are_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """The undo gets the do's args, so an undo that cannot take them is refused up front."""
        err = await refused(executor, journal, one_arg, no_args, 1)
        assert "undo no_args()" in str(err)

    async def test_required_keyword_only_params_are_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A required keyword-only parameter can never be filled by a step, so it is refused."""
        err = await refused(executor, journal, kw_only, None, 1)
        assert "token" in str(err)
        assert "functools.partial" in str(err)

    async def test_partial_that_binds_the_keyword_is_accepted(
        self, executor: InMemoryExecutor
    ) -> None:
        """Binding the keyword-only parameter with functools.partial makes the step valid."""

        async def saga(s: Saga) -> str:
            await s.step(functools.partial(kw_only, token="t"), None, 1)
            return "ran"

        assert await executor.run(saga) == "ran"
        assert executor.last_report.steps[0].name == "kw_only"

    async def test_activity_name_string_is_refused_in_memory(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """In memory a step must be a callable, not an activity's name."""
        err = await refused(executor, journal, "book_car", None)
        assert "activity name" in str(err)

    async def test_workflow_class_is_refused_in_memory(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A child-workflow step runs only on Temporal; in memory it is refused up front."""
        err = await refused(executor, journal, ChildWorkflow, None, 1)
        assert "Temporal workflow" in str(err)


class TestBadOptions:
    @pytest.mark.parametrize(
        ("option", "value", "needle"),
        [
            ("start_to_close_timeout", timedelta(seconds=-1), "positive"),
            ("start_to_close_timeout", timedelta(0), "positive"),
            ("schedule_to_close_timeout", timedelta(seconds=-5), "positive"),
            ("heartbeat_timeout", timedelta(seconds=-5), "positive"),
            ("start_to_close_timeout", "soon", "start_to_close_timeout"),
            ("retry_policy", {"backoff_coefficient": 0.5}, "backoff_coefficient"),
            ("retry_policy", {"maximum_attempts": -1}, "maximum_attempts"),
            ("retry_policy", {"initial_interval": timedelta(0)}, "initial_interval"),
            ("name", "", "name"),
        ],
    )
    async def test_out_of_range_option_is_refused(
        self, journal: Journal, executor: InMemoryExecutor, option: str, value: Any, needle: str
    ) -> None:
        """An out-of-range or ill-typed step option raises OptionsError (a ValueError) naming it."""
        err = await refused(executor, journal, one_arg, None, 1, **{option: value})
        assert isinstance(err, OptionsError)
        assert isinstance(err, ValueError)
        assert needle in str(err)

    async def test_unknown_option_is_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A misspelt option is refused by name, not ignored."""
        err = await refused(executor, journal, one_arg, None, 1, start_to_close=timedelta(1))
        assert isinstance(err, OptionsError)
        assert "unknown option 'start_to_close'" in str(err)

    def test_bad_retry_policy_is_refused_when_built(self) -> None:
        """A RetryPolicy with backoff < 1 or maximum_interval < initial_interval cannot be built."""
        with pytest.raises(ValueError, match="backoff_coefficient"):
            RetryPolicy(backoff_coefficient=0.9)
        with pytest.raises(ValueError, match="maximum_interval"):
            RetryPolicy(
                initial_interval=timedelta(seconds=10), maximum_interval=timedelta(1 / 86400)
            )

    def test_bad_saga_options_are_refused_when_built(self) -> None:
        """Saga-wide defaults are validated like step options, and unknown ones are refused."""
        with pytest.raises(ValueError, match="positive"):
            SagaOptions(start_to_close_timeout=timedelta(seconds=-1))
        with pytest.raises(ValueError, match="paralel_compensation"):
            SagaOptions(paralel_compensation=True)  # type: ignore[call-arg]

    def test_executor_refuses_unlimited_attempts_below_one(self) -> None:
        """InMemoryExecutor(unlimited_attempts=0) is refused."""
        with pytest.raises(ValueError, match="unlimited_attempts"):
            InMemoryExecutor(unlimited_attempts=0)


class TestBadSagaUse:
    async def test_saga_function_must_be_async(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A plain def saga function is refused by executor.run before it is called."""
        called: list[bool] = []

        def not_async(s: Saga) -> None:
            called.append(True)

        with pytest.raises(StepDefinitionError, match="async def"):
            await executor.run(not_async)  # type: ignore[arg-type]
        assert called == []

    async def test_step_after_the_saga_ended_is_refused(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """saga.step on a saga whose function returned raises SagaStateError, running nothing."""
        kept: list[Saga] = []

        async def saga(s: Saga) -> None:
            kept.append(s)
            await s.step(*journal.step("a"))

        await executor.run(saga)
        with pytest.raises(SagaStateError, match="after the saga ended"):
            await kept[0].step(*journal.step("late"))
        assert journal.done == ["a"]

    async def test_step_from_an_undo_is_refused(self, executor: InMemoryExecutor) -> None:
        """saga.step while the saga unwinds raises SagaStateError; that undo counts as failed."""
        kept: list[Saga] = []

        async def undo() -> None:
            await kept[0].step(no_args, None)

        async def saga(s: Saga) -> None:
            kept.append(s)
            await s.step(no_args, undo)
            raise RuntimeError("fail")

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert info.value.compensation_error is not None
        (e,) = info.value.compensation_error.exceptions
        assert isinstance(e, SagaStateError)
        assert "unwinding" in str(e)

    async def test_returning_with_steps_still_running_is_an_error(
        self, journal: Journal, executor: InMemoryExecutor
    ) -> None:
        """A saga that returns while a step it started still runs fails, and that step is undone."""

        async def saga(s: Saga) -> asyncio.Task[Any]:
            task = asyncio.ensure_future(s.step(*journal.step("stray", block=True)))
            await asyncio.sleep(0)  # the step starts, and is left running
            return task

        with pytest.raises(SagaFailed) as info:
            await executor.run(saga)
        assert isinstance(info.value.__cause__, SagaStateError)
        assert "stray" in str(info.value.__cause__)
        journal.assert_no_undo_before_its_do_ended()
        assert journal.undone == ["stray"]


class TestTemporalOnlyStepsInMemory:
    async def test_an_activity_ref_is_refused_before_anything_runs(self) -> None:
        """An ActivityRef (a Temporal activity by name) is refused in memory, never retried."""
        from sagakit.temporal import ActivityRef

        ran: list[str] = []

        async def first() -> None:
            ran.append("first")

        async def saga(s: Saga) -> None:
            await s.step(first, None)
            await s.step(ActivityRef("charge"), None)

        with pytest.raises(SagaFailed) as info:
            await InMemoryExecutor().run(saga)
        assert isinstance(info.value.__cause__, StepDefinitionError)
        assert "runs only on Temporal" in str(info.value.__cause__)
        assert ran == ["first"]
