"""API.md §4: one saga function, executors of the same shape, options in Temporal's words."""

from __future__ import annotations

from datetime import timedelta

from sagakit import Phase, Saga, SagaStatus, StepStatus, UndoStatus

from ._runner import FAST_RETRY, ONE_ATTEMPT, Backend, options
from ._shared import DO, UNDO, Plan, attempts, journal, ran, steps, until


async def named_step(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan, name="reserve")
    await saga.step(DO["b"], UNDO["b"], plan)


async def own_policy_then_saga_default(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan, retry_policy=FAST_RETRY)
    b = await saga.step(DO["b"], UNDO["b"], plan)
    return [a, b]


async def own_timeout_then_saga_default(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan, start_to_close_timeout=timedelta(seconds=10))
    b = await saga.step(DO["b"], UNDO["b"], plan)
    return [a, b]


async def unknown_option(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan, start_to_close=timedelta(seconds=1))


class TestOneSagaFunction:
    async def test_the_same_function_runs_unchanged(self, backend: Backend) -> None:
        """A plain saga function runs as it is and returns its result on this backend."""
        plan = Plan(steps=["a", "b"])
        outcome = await backend.run(steps, plan, options=options())
        assert outcome.result == ["did a", "did b"]
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert [s.name for s in outcome.report.steps] == ["do_a", "do_b"]


class TestStepOptions:
    async def test_name_names_the_step(self, backend: Backend) -> None:
        """`name=` is the step's name in the report and in `current_step()` of do and undo."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(named_step, plan, options=options())
        assert [s.name for s in outcome.report.steps] == ["reserve", "do_b"]
        assert [
            (e.step.name, e.step.phase) for e in journal(plan) if e.name == "a" and e.event == "ran"
        ] == [
            ("reserve", Phase.DO),
            ("reserve", Phase.UNDO),
        ]
        assert outcome.report.compensation_order == ["do_b", "reserve"]

    async def test_a_step_retry_policy_wins_over_the_saga_default(self, backend: Backend) -> None:
        """A step's `retry_policy=` applies to it; a step that sets none takes the saga's."""
        plan = Plan(steps=["a", "b"], flaky={"a": 1, "b": 1})
        outcome = await backend.run(
            own_policy_then_saga_default, plan, options=options(retry_policy=ONE_ATTEMPT)
        )
        assert [e.attempt for e in attempts(plan, "do", "a")] == [1, 2]
        assert [e.attempt for e in attempts(plan, "do", "b")] == [1]
        assert outcome.report.step("do_b").status is StepStatus.FAILED
        assert outcome.cause is not None
        assert outcome.cause.type == "Flaky"

    async def test_a_step_timeout_wins_over_the_saga_default(self, backend: Backend) -> None:
        """A step's `start_to_close_timeout=` applies to it; one that sets none takes the saga's."""
        plan = Plan(steps=["a", "b"], hang=["b"])
        outcome = await backend.run(
            own_timeout_then_saga_default,
            plan,
            options=options(
                start_to_close_timeout=timedelta(milliseconds=500), retry_policy=ONE_ATTEMPT
            ),
        )
        assert ran(plan) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert outcome.cause is not None
        assert outcome.cause.type == backend.timeout_error
        assert outcome.report.step("do_a").status is StepStatus.SUCCEEDED
        assert outcome.report.step("do_b").status is StepStatus.FAILED

    async def test_an_unknown_option_is_refused(self, backend: Backend) -> None:
        """A keyword that is no step option fails the saga with OptionsError before the do runs."""
        plan = Plan()
        outcome = await backend.run(unknown_option, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "OptionsError"
        assert "start_to_close" in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]


class TestCancellation:
    async def test_cancelling_the_run_compensates_then_ends_cancelled(
        self, backend: Backend
    ) -> None:
        """A cancelled run stops its step in flight, runs every undo, and ends cancelled."""
        backend.require("cancel")
        plan = Plan(hang=["c"])
        async with backend.start(steps, plan, options=options()) as run:
            assert await until(lambda: "do:c" in ran(plan), seconds=10)
            await run.cancel()
            outcome = await run.outcome()
        assert outcome.cancelled
        assert outcome.error is None
        events = [f"{e.event}:{e.phase}:{e.name}" for e in journal(plan) if e.event != "ended"]
        assert events == [
            "ran:do:a",
            "ran:do:b",
            "ran:do:c",
            "cancelled:do:c",
            "ran:undo:c",
            "ran:undo:b",
            "ran:undo:a",
        ]
        report = outcome.report
        assert report.cancelled
        assert report.status is SagaStatus.COMPENSATED
        assert report.step("do_c").status is StepStatus.CANCELLED
        assert all(
            s.undo is not None and s.undo.status is UndoStatus.COMPENSATED for s in report.steps
        )
