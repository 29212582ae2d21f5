"""API.md §3: unwinding, on every backend."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable

import pytest

from sagakit import DoOutcome, Saga, SagaReport, SagaStatus, StepStatus, UndoStatus

from ._runner import Backend, options
from ._shared import (
    DO,
    STEPS,
    UNDO,
    Plan,
    SagaFn,
    attempts,
    journal,
    most_concurrent_undos,
    ran,
    steps,
)


async def one_fails_while_another_runs(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan)
    b, c = await saga.gather(
        saga.step(DO["b"], UNDO["b"], plan), saga.step(DO["c"], UNDO["c"], plan)
    )
    return [a, b, c]


async def one_fails_while_another_runs_in_asyncio_gather(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan)
    # asyncio.gather raises the first error and leaves its other awaitables running.
    b, c = await asyncio.gather(
        saga.step(DO["b"], UNDO["b"], plan), saga.step(DO["c"], UNDO["c"], plan)
    )
    return [a, b, c]


async def all_at_once(saga: Saga, plan: Plan) -> list[str]:
    return await saga.gather(*(saga.step(DO[n], UNDO[n], plan) for n in plan.steps))


async def all_at_once_then_raises(saga: Saga, plan: Plan) -> None:
    await saga.gather(*(saga.step(DO[n], UNDO[n], plan) for n in plan.steps))
    raise ValueError("the body changed its mind")


async def body_raises_after_its_steps(saga: Saga, plan: Plan) -> None:
    for n in plan.steps:
        await saga.step(DO[n], UNDO[n], plan)
    raise ValueError("the body changed its mind")


def undo_statuses(report: SagaReport, names: Iterable[str]) -> dict[str, UndoStatus | None]:
    """How each named step's undo ended, by step letter."""
    return {n: (u.status if (u := report.step(f"do_{n}").undo) else None) for n in names}


class TestInFlightStepsStopFirst:
    @pytest.mark.parametrize(
        "saga_fn",
        [one_fails_while_another_runs, one_fails_while_another_runs_in_asyncio_gather],
        ids=["saga.gather", "asyncio.gather"],
    )
    async def test_a_step_in_flight_is_cancelled_and_awaited_before_any_undo(
        self, backend: Backend, saga_fn: SagaFn
    ) -> None:
        """When a gathered step fails, its sibling in flight is stopped before any undo starts.

        So too with `asyncio.gather`, which leaves the sibling running when it raises.
        """
        plan = Plan(hang=["b"], fail=["c"], wait_for={"c": "do:b"})
        outcome = await backend.run(saga_fn, plan, options=options())
        events = [f"{e.event}:{e.phase}:{e.name}" for e in journal(plan) if e.event != "ended"]
        assert events == [
            "ran:do:a",
            "ran:do:b",
            "ran:do:c",
            "cancelled:do:b",
            "ran:undo:c",
            "ran:undo:b",
            "ran:undo:a",
        ]
        assert outcome.report.step("do_b").status is StepStatus.CANCELLED
        [undo_b] = attempts(plan, "undo", "b")
        assert undo_b.step.do_outcome is DoOutcome.UNKNOWN


class TestConcurrentSteps:
    async def test_gather_returns_results_in_argument_order(self, backend: Backend) -> None:
        """`saga.gather` returns its steps' results in argument order, not completion order."""
        plan = Plan(wait_for={"a": "do:c"})
        outcome = await backend.run(all_at_once, plan, options=options())
        assert ran(plan).index("do:a") > ran(plan).index("do:c")  # a ended last
        assert outcome.result == ["did a", "did b", "did c"]

    async def test_concurrent_steps_unwind_last_registered_first(self, backend: Backend) -> None:
        """Steps run at once are undone by the order `saga.step` registered them, reversed."""
        plan = Plan(wait_for={"a": "do:c"})
        outcome = await backend.run(all_at_once_then_raises, plan, options=options())
        assert ran(plan).index("do:a") > ran(plan).index("do:c")  # a ended last
        assert ran(plan)[3:] == ["undo:c", "undo:b", "undo:a"]
        assert [s.name for s in outcome.report.steps] == ["do_a", "do_b", "do_c"]
        assert outcome.report.compensation_order == ["do_c", "do_b", "do_a"]


class TestUndoOrder:
    @pytest.mark.parametrize("failing", ["a", "c", "e"])
    async def test_undos_run_last_registered_first(self, backend: Backend, failing: str) -> None:
        """Wherever a step fails, its undo and every earlier one run, one at a time, LIFO."""
        plan = Plan(steps=list(STEPS), fail=[failing], undo_delay=0.02)
        outcome = await backend.run(steps, plan, options=options())
        registered = STEPS[: STEPS.index(failing) + 1]
        assert ran(plan) == [
            *(f"do:{n}" for n in registered),
            *(f"undo:{n}" for n in reversed(registered)),
        ]
        assert outcome.report.compensation_order == [f"do_{n}" for n in reversed(registered)]
        assert most_concurrent_undos(plan) == 1

    async def test_each_undo_runs_once(self, backend: Backend) -> None:
        """Each registered undo runs exactly once."""
        plan = Plan(steps=list(STEPS), fail=["c"])
        await backend.run(steps, plan, options=options())
        assert Counter(e.name for e in journal(plan) if e.phase == "undo" and e.event == "ran") == {
            "a": 1,
            "b": 1,
            "c": 1,
        }

    async def test_a_saga_body_that_raises_unwinds_every_step(self, backend: Backend) -> None:
        """An error raised by the saga function itself unwinds the steps it registered."""
        plan = Plan()
        outcome = await backend.run(body_raises_after_its_steps, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "ValueError"
        assert [s.status for s in outcome.report.steps] == [StepStatus.SUCCEEDED] * 3
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestUndoRetries:
    async def test_an_undo_that_fails_once_is_retried_until_it_succeeds(
        self, backend: Backend
    ) -> None:
        """An undo is retried by its retry policy, with the same key, and then counts as done."""
        plan = Plan(fail=["c"], flaky_undo={"b": 1})
        outcome = await backend.run(steps, plan, options=options())
        tries = attempts(plan, "undo", "b")
        assert [e.attempt for e in tries] == [1, 2]
        assert tries[0].key == tries[1].key
        assert ran(plan)[3:] == ["undo:c", "undo:b", "undo:b", "undo:a"]
        assert undo_statuses(outcome.report, "abc") == dict.fromkeys("abc", UndoStatus.COMPENSATED)
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestSagaFailed:
    async def test_a_failed_saga_raises_saga_failed_caused_by_the_original_error(
        self, backend: Backend
    ) -> None:
        """The run ends in SagaFailed whose cause is the failing do's own error."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(steps, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert (outcome.cause.type, outcome.cause.message) == ("Boom", "do b failed")
        assert outcome.report.error == outcome.cause

    async def test_the_report_says_what_ran_and_that_it_was_compensated(
        self, backend: Backend
    ) -> None:
        """After every undo succeeded the report's status is COMPENSATED, step by step."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(steps, plan, options=options())
        report = outcome.report
        assert report.status is SagaStatus.COMPENSATED
        assert [(s.name, s.status) for s in report.steps] == [
            ("do_a", StepStatus.SUCCEEDED),
            ("do_b", StepStatus.FAILED),
        ]
        assert undo_statuses(report, "ab") == dict.fromkeys("ab", UndoStatus.COMPENSATED)
        assert report.failed_undos == []

    async def test_the_report_says_which_undo_failed_to_compensate(self, backend: Backend) -> None:
        """An undo that finally failed makes the status COMPENSATION_FAILED and is named."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        outcome = await backend.run(steps, plan, options=options())
        report = outcome.report
        assert report.status is SagaStatus.COMPENSATION_FAILED
        assert [s.name for s in report.failed_undos] == ["do_b"]
        undo_b = report.step("do_b").undo
        assert undo_b is not None
        assert undo_b.error is not None
        assert (undo_b.error.type, undo_b.error.message) == ("UndoBoom", "undo b failed")
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"  # still the do's error, not the undo's


class TestParallelCompensation:
    async def test_parallel_compensation_runs_the_undos_concurrently(
        self, backend: Backend
    ) -> None:
        """With parallel_compensation=True every undo runs at the same time as the others."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], rendezvous=4)
        outcome = await backend.run(steps, plan, options=options(parallel_compensation=True))
        assert most_concurrent_undos(plan) == 4
        assert sorted(ran(plan)[4:]) == ["undo:a", "undo:b", "undo:c", "undo:d"]
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_parallel_compensation_runs_every_undo_and_reports_every_failure(
        self, backend: Backend
    ) -> None:
        """In parallel, undos that finally fail stop none of the others; each is reported."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], fail_undo=["a", "c"])
        outcome = await backend.run(steps, plan, options=options(parallel_compensation=True))
        assert sorted(ran(plan)[4:]) == ["undo:a", "undo:b", "undo:c", "undo:d"]
        assert [s.name for s in outcome.report.failed_undos] == ["do_a", "do_c"]
        assert undo_statuses(outcome.report, "abcd") == {
            "a": UndoStatus.FAILED,
            "b": UndoStatus.COMPENSATED,
            "c": UndoStatus.FAILED,
            "d": UndoStatus.COMPENSATED,
        }
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"  # still the do's error, not an undo's


class TestContinueOnCompensationError:
    async def test_false_stops_at_the_first_failing_undo(self, backend: Backend) -> None:
        """With continue_on_compensation_error=False the unwind stops; later undos are SKIPPED."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], fail_undo=["c"])
        outcome = await backend.run(
            steps, plan, options=options(continue_on_compensation_error=False)
        )
        assert ran(plan)[4:] == ["undo:d", "undo:c"]
        assert undo_statuses(outcome.report, "abcd") == {
            "a": UndoStatus.SKIPPED,
            "b": UndoStatus.SKIPPED,
            "c": UndoStatus.FAILED,
            "d": UndoStatus.COMPENSATED,
        }
        assert outcome.report.compensation_order == ["do_d", "do_c"]
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED

    async def test_true_runs_every_undo_and_collects_every_failure(self, backend: Backend) -> None:
        """With continue_on_compensation_error=True every undo runs and each failure is reported."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], fail_undo=["c", "a"])
        outcome = await backend.run(
            steps, plan, options=options(continue_on_compensation_error=True)
        )
        assert ran(plan)[4:] == ["undo:d", "undo:c", "undo:b", "undo:a"]
        assert [s.name for s in outcome.report.failed_undos] == ["do_a", "do_c"]
        assert undo_statuses(outcome.report, "bd") == dict.fromkeys("bd", UndoStatus.COMPENSATED)
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED
