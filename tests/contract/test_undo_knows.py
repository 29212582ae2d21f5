"""API.md §6: what an undo knows — with `pass_result=True`, the do's result — on every backend."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sagakit import DoOutcome, Saga, SagaStatus

from ._runner import Backend, options
from ._shared import (
    DO,
    UNDO,
    UNDO_SEEING_RESULT,
    Account,
    Ledger,
    Plan,
    attempts,
    close_account,
    close_ledger,
    journal,
    open_account,
    open_ledger,
    ran,
    steps,
)


async def steps_passing_results(saga: Saga, plan: Plan) -> list[str]:
    return [
        await saga.step(DO[n], UNDO_SEEING_RESULT[n], plan, pass_result=True) for n in plan.steps
    ]


async def open_account_then_fail(saga: Saga, plan: Plan) -> None:
    await saga.step(open_account, close_account, plan, "ada", pass_result=True)
    await saga.step(DO["b"], UNDO["b"], plan)


async def open_ledger_then_fail(saga: Saga, plan: Plan) -> None:
    await saga.step(open_ledger, close_ledger, plan, "ada", pass_result=True)
    await saga.step(DO["b"], UNDO["b"], plan)


async def one_fails_while_another_runs(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO_SEEING_RESULT["a"], plan, pass_result=True)
    await saga.gather(
        saga.step(DO["b"], UNDO_SEEING_RESULT["b"], plan, pass_result=True),
        saga.step(DO["c"], UNDO_SEEING_RESULT["c"], plan, pass_result=True),
    )


async def nothing_to_undo_with_pass_result(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO_SEEING_RESULT["a"], plan, pass_result=True)
    b = await saga.step(DO["b"], None, plan, pass_result=True)
    c = await saga.step(DO["c"], UNDO_SEEING_RESULT["c"], plan, pass_result=True)
    return [a, b, c]


async def undo_without_room_for_the_result(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan, pass_result=True)


def results_seen(plan: Plan) -> dict[str, object]:
    """What each undo was given as the result, by step letter."""
    return {e.name: e.args[-1] for e in journal(plan) if e.phase == "undo" and e.event == "ran"}


class TestUndoReceivesTheResult:
    async def test_the_undo_gets_the_args_then_what_its_do_returned(self, backend: Backend) -> None:
        """With pass_result=True an undo is called with the do's args and then the do's result."""
        plan = Plan(steps=["a", "b", "c"], fail=["c"])
        outcome = await backend.run(steps_passing_results, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        [undo_b] = attempts(plan, "undo", "b")
        assert undo_b.args == ("did b",)
        assert undo_b.step.do_outcome is DoOutcome.SUCCEEDED
        assert results_seen(plan)["a"] == "did a"
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_dataclass_result_arrives_as_that_dataclass(self, backend: Backend) -> None:
        """A result the undo's parameter is annotated with arrives as that type, equal to it."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(open_account_then_fail, plan, options=options())
        [undo] = attempts(plan, "undo", "close_account")
        owner, account = undo.args
        assert owner == "ada"
        assert isinstance(account, Account)
        assert account == Account(number="acct-of-ada", owner="ada")
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_pydantic_result_arrives_as_that_model(self, backend: Backend) -> None:
        """With the pydantic data converter a model result reaches the undo as that model."""
        plan = Plan(fail=["b"])
        await backend.with_pydantic_converter().run(open_ledger_then_fail, plan, options=options())
        [undo] = attempts(plan, "undo", "close_ledger")
        owner, ledger = undo.args
        assert owner == "ada"
        assert isinstance(ledger, Ledger)
        assert ledger == Ledger(owner="ada", opened=date(2026, 12, 1), balance=Decimal("10.50"))

    async def test_a_result_of_a_retried_do_is_its_successful_attempts(
        self, backend: Backend
    ) -> None:
        """A do that failed once, then succeeded, hands its undo the successful attempt's result."""
        plan = Plan(steps=["a", "b"], flaky={"a": 1}, fail=["b"])
        await backend.run(steps_passing_results, plan, options=options())
        assert [e.attempt for e in attempts(plan, "do", "a")] == [1, 2]
        assert results_seen(plan) == {"b": None, "a": "did a"}

    async def test_without_pass_result_the_undo_gets_the_args_only(self, backend: Backend) -> None:
        """Without pass_result an undo gets exactly the do's args, nothing of the result."""
        plan = Plan(fail=["c"])
        await backend.run(steps, plan, options=options())
        assert all(e.args == () for e in journal(plan) if e.phase == "undo")


class TestUndoReceivesNone:
    async def test_none_when_the_do_failed(self, backend: Backend) -> None:
        """The undo of a do that failed is given None as the result, and do_outcome FAILED."""
        plan = Plan(steps=["a", "b", "c"], fail=["c"])
        await backend.run(steps_passing_results, plan, options=options())
        [undo_c] = attempts(plan, "undo", "c")
        assert undo_c.args == (None,)
        assert undo_c.step.do_outcome is DoOutcome.FAILED

    async def test_none_when_a_typed_do_failed(self, backend: Backend) -> None:
        """The undo of a failed do whose result would be a dataclass is given None."""
        plan = Plan(fail=["open_account"])
        outcome = await backend.run(open_account_then_fail, plan, options=options())
        [undo] = attempts(plan, "undo", "close_account")
        assert undo.args == ("ada", None)
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"

    async def test_none_when_the_do_was_cancelled_in_flight(self, backend: Backend) -> None:
        """The undo of a do cancelled in flight (a gathered sibling failed) is given None."""
        plan = Plan(hang=["b"], fail=["c"], wait_for={"c": "do:b"})
        outcome = await backend.run(one_fails_while_another_runs, plan, options=options())
        assert "cancelled:do:b" in [f"{e.event}:{e.phase}:{e.name}" for e in journal(plan)]
        [undo_b] = attempts(plan, "undo", "b")
        assert undo_b.args == (None,)
        assert undo_b.step.do_outcome is DoOutcome.UNKNOWN
        assert results_seen(plan) == {"c": None, "b": None, "a": "did a"}
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestPassResultWithoutAnUndo:
    async def test_undo_none_with_pass_result_is_allowed(self, backend: Backend) -> None:
        """A step with undo=None and pass_result=True runs, returns its result, and has no undo."""
        plan = Plan()
        outcome = await backend.run(nothing_to_undo_with_pass_result, plan, options=options())
        assert outcome.error is None
        assert outcome.result == ["did a", "did b", "did c"]
        assert outcome.report.step("do_b").undo is None

    async def test_undo_none_with_pass_result_is_skipped_by_the_unwind(
        self, backend: Backend
    ) -> None:
        """When the saga fails, a step with undo=None and pass_result=True has nothing to undo."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(nothing_to_undo_with_pass_result, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:a"]
        assert results_seen(plan) == {"c": None, "a": "did a"}
        assert outcome.report.compensation_order == ["do_c", "do_a"]


class TestPassResultArity:
    async def test_an_undo_with_no_room_for_the_result_is_refused(self, backend: Backend) -> None:
        """With pass_result=True an undo that cannot take one more arg is refused before the do."""
        plan = Plan()
        outcome = await backend.run(undo_without_room_for_the_result, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "StepDefinitionError"
        assert "undo_b" in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]
