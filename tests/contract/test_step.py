"""API.md §2: `await saga.step(do, undo, *args, **options)`, on every backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import sagakit
from sagakit import DoOutcome, Phase, Saga, SagaStatus, StepStatus, UndoStatus

from ._runner import ONE_ATTEMPT, Backend, options
from ._shared import DO, UNDO, Plan, attempts, charge, journal, ran, refund, steps, undo_nothing


async def charge_then_fail(saga: Saga, plan: Plan) -> None:
    await saga.step(charge, refund, plan, "acct-7", 250)
    await saga.step(DO["b"], UNDO["b"], plan)


async def a_then_nothing_to_undo(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan)
    b = await saga.step(DO["b"], None, plan)
    c = await saga.step(DO["c"], UNDO["c"], plan)
    return [a, b, c]


async def hangs_past_its_timeout(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(
        DO["b"],
        UNDO["b"],
        plan,
        start_to_close_timeout=timedelta(milliseconds=500),
        retry_policy=ONE_ATTEMPT,
    )


async def do_not_callable(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(42, None, plan)


async def undo_cannot_take_the_args(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], undo_nothing, plan)


async def tally(plan: Plan, n: int) -> str:
    """Workflow code, not an activity: on Temporal it runs in the workflow itself."""
    step = sagakit.current_step()
    return f"{step.name} {step.seq} {step.phase.value} {n}"


async def forget_a(plan: Plan) -> None:
    """An undo that is workflow code (on Temporal it could wait for a signal)."""


async def inline_steps(saga: Saga, plan: Plan) -> list[str]:
    # An activity do with an inline undo, then an inline do with no undo.
    a = await saga.step(DO["a"], forget_a, plan, inline=True)
    t = await saga.step(tally, None, plan, 3, inline=True)
    b = await saga.step(DO["b"], UNDO["b"], plan)
    return [a, t, b]


class TestRegisteredBeforeDo:
    async def test_a_do_that_fails_is_compensated_too(self, backend: Backend) -> None:
        """The undo of a do that failed runs, since it was registered before the do started."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(steps, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        step_c = outcome.report.step("do_c")
        assert step_c.status is StepStatus.FAILED
        assert step_c.undo is not None
        assert step_c.undo.status is UndoStatus.COMPENSATED

    async def test_a_do_that_times_out_after_its_effect_is_compensated(
        self, backend: Backend
    ) -> None:
        """A do that took effect and then ran past its timeout fails, and its undo runs."""
        plan = Plan(steps=["a", "b"], hang=["b"])
        outcome = await backend.run(hangs_past_its_timeout, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == backend.timeout_error
        assert outcome.report.step("do_b").status is StepStatus.FAILED
        [undo_b] = attempts(plan, "undo", "b")
        assert undo_b.step.do_outcome is DoOutcome.FAILED

    async def test_undo_none_registers_a_step_with_nothing_to_undo(self, backend: Backend) -> None:
        """A step with `undo=None` runs and is reported without an undo; the others still unwind."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(a_then_nothing_to_undo, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:a"]
        assert outcome.report.step("do_b").undo is None
        assert outcome.report.compensation_order == ["do_c", "do_a"]
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestResultAndArgs:
    async def test_step_returns_the_result_of_the_do(self, backend: Backend) -> None:
        """`saga.step` returns what the do returned, and a saga that succeeds runs no undo."""
        plan = Plan()
        outcome = await backend.run(a_then_nothing_to_undo, plan, options=options())
        assert outcome.error is None
        assert outcome.result == ["did a", "did b", "did c"]
        assert ran(plan) == ["do:a", "do:b", "do:c"]
        assert outcome.report.status is SagaStatus.SUCCEEDED

    async def test_undo_is_called_with_the_args_of_the_do(self, backend: Backend) -> None:
        """The undo gets exactly the positional args the do got."""
        plan = Plan(fail=["b"])
        await backend.run(charge_then_fail, plan, options=options())
        [did] = attempts(plan, "do", "charge")
        [undid] = attempts(plan, "undo", "refund")
        assert did.args == undid.args == ("acct-7", 250)


class TestIdempotencyKey:
    async def test_do_and_undo_of_a_step_read_the_same_key(self, backend: Backend) -> None:
        """`idempotency_key()` answers the same inside a step's do and inside its undo."""
        plan = Plan(fail=["c"])
        await backend.run(steps, plan, options=options())
        for name in ("a", "b", "c"):
            [do] = attempts(plan, "do", name)
            [undo] = attempts(plan, "undo", name)
            assert do.key == undo.key

    async def test_each_step_has_its_own_key(self, backend: Backend) -> None:
        """No two steps of a saga run share a key."""
        plan = Plan(steps=["a", "b", "c", "d", "e"])
        await backend.run(steps, plan, options=options())
        assert len({e.key for e in journal(plan)}) == 5

    async def test_each_saga_run_has_its_own_keys(self, backend: Backend) -> None:
        """The same saga run twice gives its steps keys the first run never had."""
        plan = Plan()
        await backend.run(steps, plan, options=options())
        first = {e.key for e in journal(plan)}
        await backend.run(steps, plan, options=options())
        second = {e.key for e in journal(plan)} - first
        assert len(first) == len(second) == 3

    async def test_the_key_is_stable_across_retries(self, backend: Backend) -> None:
        """A do failing once then succeeding reads one key on both attempts, as does its undo."""
        plan = Plan(flaky={"b": 1}, fail=["c"])
        await backend.run(steps, plan, options=options())
        tries = attempts(plan, "do", "b")
        assert [e.attempt for e in tries] == [1, 2]
        [undo] = attempts(plan, "undo", "b")
        assert tries[0].key == tries[1].key == undo.key


class TestCurrentStep:
    async def test_a_do_sees_its_own_step(self, backend: Backend) -> None:
        """Inside a do, `current_step()` names the saga run, the step's seq and name, phase DO."""
        plan = Plan()
        outcome = await backend.run(steps, plan, options=options())
        seen = [(e.step.seq, e.step.name, e.step.phase, e.step.do_outcome) for e in journal(plan)]
        assert seen == [
            (1, "do_a", Phase.DO, DoOutcome.PENDING),
            (2, "do_b", Phase.DO, DoOutcome.PENDING),
            (3, "do_c", Phase.DO, DoOutcome.PENDING),
        ]
        assert {e.step.saga_id for e in journal(plan)} == {outcome.report.saga_id}
        assert all(e.key == e.step.idempotency_key for e in journal(plan))

    async def test_an_undo_sees_its_step_and_how_its_do_ended(self, backend: Backend) -> None:
        """Inside an undo, `current_step()` is the do's step, phase UNDO, with the do's outcome."""
        plan = Plan(fail=["c"])
        await backend.run(steps, plan, options=options())
        seen = [
            (e.step.seq, e.step.name, e.step.phase, e.step.do_outcome)
            for e in journal(plan)
            if e.phase == "undo" and e.event == "ran"
        ]
        assert seen == [
            (3, "do_c", Phase.UNDO, DoOutcome.FAILED),
            (2, "do_b", Phase.UNDO, DoOutcome.SUCCEEDED),
            (1, "do_a", Phase.UNDO, DoOutcome.SUCCEEDED),
        ]


class TestInline:
    async def test_steps_said_inline_run_on_every_backend(self, backend: Backend) -> None:
        """`inline=True` runs workflow code inline on Temporal; in memory it changes nothing."""
        plan = Plan()
        outcome = await backend.run(inline_steps, plan, options=options())
        assert outcome.error is None
        assert outcome.result == ["did a", "tally 2 do 3", "did b"]
        assert ran(plan) == ["do:a", "do:b"]
        assert outcome.report.status is SagaStatus.SUCCEEDED

    async def test_an_inline_undo_of_an_activity_do_runs_in_the_unwind(
        self, backend: Backend
    ) -> None:
        """The undo said inline runs when the saga unwinds, in its LIFO place."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(inline_steps, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"
        assert ran(plan) == ["do:a", "do:b", "undo:b"]
        undo_a = outcome.report.step("do_a").undo
        assert undo_a is not None
        assert undo_a.name == "forget_a"
        assert undo_a.status is UndoStatus.COMPENSATED
        assert outcome.report.compensation_order == ["do_b", "do_a"]


class TestRefusedBeforeAnythingRuns:
    @pytest.mark.parametrize(
        ("saga_fn", "message"),
        [
            pytest.param(do_not_callable, "must be a function", id="do-not-callable"),
            pytest.param(
                undo_cannot_take_the_args, "takes 0 positional args", id="undo-wrong-arity"
            ),
        ],
    )
    async def test_a_bad_step_is_refused_with_step_definition_error(
        self, backend: Backend, saga_fn: Any, message: str
    ) -> None:
        """A do or undo that cannot run is refused with StepDefinitionError before the do starts."""
        plan = Plan()
        outcome = await backend.run(saga_fn, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "StepDefinitionError"
        assert message in outcome.cause.message
        assert ran(plan) == ["do:a", "undo:a"]  # the bad step never ran; the good one is undone
        assert [s.name for s in outcome.report.steps] == ["do_a"]
