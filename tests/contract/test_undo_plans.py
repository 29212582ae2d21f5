"""API.md §11: undo plans — a run resumed with the undos an earlier run left — on every backend.

A saga function here returns `saga.undo_plan()`; the test hands that result
to the next run's `resume=`. On Temporal the plan travels as the workflow's
result and the next workflow's input, through `pydantic_data_converter`, as
it would through `workflow.continue_as_new`.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from sagakit import DoOutcome, Saga, SagaStatus, StepStatus, UndoPlan, UndoStatus

from ._runner import Backend, Refused, options
from ._shared import (
    DO,
    UNDO,
    Account,
    Ledger,
    Plan,
    attempts,
    charge,
    close_account,
    close_ledger,
    journal,
    open_account,
    open_ledger,
    ran,
    refund,
    until,
)

DEADLINE = timedelta(seconds=3)


async def steps_then_plan(saga: Saga, plan: Plan) -> UndoPlan:
    """`plan.steps`, then the undos still pending, for the next run."""
    for n in plan.steps:
        await saga.step(DO[n], UNDO[n], plan)
    return saga.undo_plan()


async def open_both_then_plan(saga: Saga, plan: Plan) -> UndoPlan:
    await saga.step(open_account, close_account, plan, "ada", pass_result=True)
    await saga.step(open_ledger, close_ledger, plan, "ada", pass_result=True)
    return saga.undo_plan()


async def plan_while_b_runs(saga: Saga, plan: Plan) -> UndoPlan:
    await saga.step(DO["a"], UNDO["a"], plan)
    b = asyncio.ensure_future(saga.step(DO["b"], UNDO["b"], plan))
    await asyncio.sleep(0)  # b's task starts: b is registered before c (no timer on Temporal)
    await saga.step(DO["c"], UNDO["c"], plan)  # plan.wait_for: c ends once b's do has begun
    assert not b.done()
    # Refused: the unwind cancels b and awaits it (returning, b would be a stray step).
    return saga.undo_plan()


async def charge_then_fail(saga: Saga, plan: Plan) -> None:
    """Another shape: its own args after the plan, and no letters."""
    await saga.step(charge, refund, plan, "acct-9", 500)
    raise ValueError("charge went through, then the saga gave up")


async def _first(backend: Backend, plan: Plan, saga_fn: Any = steps_then_plan, **opts: Any) -> Any:
    """Run `saga_fn` (which returns its undo plan) to its success; the plan, for `resume=`."""
    outcome = await backend.run(saga_fn, plan, options=options(**opts))
    assert outcome.error is None, outcome.cause
    assert outcome.report.status is SagaStatus.SUCCEEDED
    return outcome.result


def keys_of(plan: Plan, phase: str) -> dict[str, str]:
    """Step letter -> the idempotency key its `phase` saw (first attempt)."""
    keys: dict[str, str] = {}
    for e in journal(plan):
        if e.phase == phase and e.event == "ran":
            keys.setdefault(e.name, e.key)
    return keys


class TestAResumedRunThatFails:
    async def test_unwinds_its_own_steps_then_the_plans_lifo_with_the_original_keys(
        self, backend: Backend
    ) -> None:
        """c, d of run 2 are undone, then b, a of run 1: each undo with the key its do saw."""
        backend = backend.with_pydantic_converter()
        first = Plan(steps=["a", "b"])
        undo_plan = await _first(backend, first)
        second = Plan(run=first.run, steps=["c", "d"], fail=["d"])
        outcome = await backend.run(steps_then_plan, second, options=options(), resume=undo_plan)

        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"
        assert ran(first) == [
            "do:a",
            "do:b",
            "do:c",
            "do:d",
            "undo:d",
            "undo:c",
            "undo:b",
            "undo:a",
        ]
        dos, undos = keys_of(first, "do"), keys_of(first, "undo")
        assert undos == dos  # a and b kept the keys of run 1; c and d have run 2's
        assert len(set(dos.values())) == 4
        for n in ("a", "b"):
            [undo] = attempts(first, "undo", n)
            assert undo.step.do_outcome is DoOutcome.SUCCEEDED
        # Fresh seqs of this run: the carried steps first, below its own.
        report = outcome.report
        assert report.status is SagaStatus.COMPENSATED
        assert [(s.seq, s.name) for s in report.steps] == [
            (1, "do_a"),
            (2, "do_b"),
            (3, "do_c"),
            (4, "do_d"),
        ]
        assert [s.carried for s in report.steps] == [dos["a"], dos["b"], None, None]
        assert [attempts(first, "undo", n)[0].step.seq for n in "abcd"] == [1, 2, 3, 4]
        assert all(
            s.undo is not None and s.undo.status is UndoStatus.COMPENSATED for s in report.steps
        )
        assert [s.undo.order for s in report.steps if s.undo is not None] == [4, 3, 2, 1]

    async def test_a_plan_given_to_a_saga_function_of_another_shape_still_unwinds(
        self, backend: Backend
    ) -> None:
        """The plan is only undos: another saga function's failure undoes them as well."""
        backend = backend.with_pydantic_converter()
        plan = Plan(steps=["a", "b"])
        undo_plan = await _first(backend, plan)
        outcome = await backend.run(charge_then_fail, plan, options=options(), resume=undo_plan)
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "ValueError"
        assert ran(plan) == ["do:a", "do:b", "do:charge", "undo:refund", "undo:b", "undo:a"]
        [refunded] = attempts(plan, "undo", "refund")
        assert refunded.args == ("acct-9", 500)
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestAResumedRunThatSucceeds:
    async def test_leaves_the_plan_undone_and_hands_it_on(self, backend: Backend) -> None:
        """Run 2 succeeds: nothing is undone; its plan holds a, b and c, and run 3 undoes them."""
        backend = backend.with_pydantic_converter()
        plan = Plan(steps=["a", "b"])
        undo_plan = await _first(backend, plan)
        second = await backend.run(
            steps_then_plan, Plan(run=plan.run, steps=["c"]), options=options(), resume=undo_plan
        )
        assert second.report.status is SagaStatus.SUCCEEDED
        assert ran(plan) == ["do:a", "do:b", "do:c"]
        assert [s.undo.status for s in second.report.steps if s.undo] == [UndoStatus.PENDING] * 3

        third = await backend.run(
            steps_then_plan,
            Plan(run=plan.run, steps=["e"], fail=["e"]),
            options=options(),
            resume=second.result,
        )
        assert third.error == "SagaFailed"
        assert ran(plan)[3:] == ["do:e", "undo:e", "undo:c", "undo:b", "undo:a"]
        assert keys_of(plan, "undo") == keys_of(plan, "do")  # a, b: run 1's keys, c: run 2's
        assert [s.seq for s in third.report.steps] == [1, 2, 3, 4]


class TestWhatAPlanCarries:
    async def test_pass_result_carries_the_dos_result_to_the_undo(self, backend: Backend) -> None:
        """A dataclass and a pydantic result reach their undos, typed, in the next run."""
        backend = backend.with_pydantic_converter()
        plan = Plan()
        undo_plan = await _first(backend, plan, open_both_then_plan)
        outcome = await backend.run(charge_then_fail, plan, options=options(), resume=undo_plan)
        assert outcome.error == "SagaFailed"
        assert ran(plan)[-3:] == ["undo:refund", "undo:close_ledger", "undo:close_account"]
        [ledger] = attempts(plan, "undo", "close_ledger")
        assert ledger.args == (
            "ada",
            Ledger(owner="ada", opened=date(2026, 12, 1), balance=Decimal("10.50")),
        )
        [account] = attempts(plan, "undo", "close_account")
        assert account.args == ("ada", Account(number="acct-of-ada", owner="ada"))

    async def test_the_deadline_counts_from_the_first_runs_start(self, backend: Backend) -> None:
        """Run 2 has no deadline of its own: the plan's passes while b hangs, and all unwinds."""
        backend = backend.with_pydantic_converter()
        plan = Plan(steps=["a"])
        first = await backend.run(steps_then_plan, plan, options=options(deadline=DEADLINE))
        deadline = first.report.started_at + DEADLINE
        second_plan = Plan(run=plan.run, steps=["b"], hang=["b"])
        async with backend.start(
            steps_then_plan, second_plan, options=options(), resume=first.result
        ) as run:
            assert await until(lambda: "do:b" in ran(plan), seconds=10)
            await run.pass_time(DEADLINE.total_seconds() + 0.5)
            outcome = await run.outcome()
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "SagaDeadlineExceeded"
        assert outcome.report.deadline is not None
        assert abs(outcome.report.deadline - deadline) < timedelta(milliseconds=2)
        assert outcome.report.deadline_passed
        assert ran(plan) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert outcome.report.step("do_b").status is StepStatus.CANCELLED  # by the deadline


class TestRefusals:
    async def test_undo_plan_while_a_step_is_in_flight(self, backend: Backend) -> None:
        """Its undo could run while its do still runs: SagaStateError, and the saga unwinds."""
        plan = Plan(hang=["b"], wait_for={"c": "do:b"})
        outcome = await backend.run(plan_while_b_runs, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "SagaStateError"
        assert "in flight" in outcome.cause.message
        assert "do_b" in outcome.cause.message
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        assert outcome.report.step("do_b").status is StepStatus.CANCELLED

    async def test_a_malformed_plan_is_refused_before_any_step_runs(self, backend: Backend) -> None:
        """A hand-edited plan (a seq of 0, a run it does not list): refused; nothing ran."""
        backend = backend.with_pydantic_converter()
        plan = Plan(steps=["a"])
        undo_plan = await _first(backend, plan)
        edited = copy.deepcopy(undo_plan if isinstance(undo_plan, dict) else undo_plan.model_dump())
        edited["undos"][0]["seq"] = 0
        orphan = {"runs": [], "undos": [{"run": 2, "seq": 1, "name": "x", "undo": "undo_a"}]}
        for bad in (edited, orphan, "not a plan"):
            again = Plan(run=plan.run, steps=["b"])
            with pytest.raises(Refused) as refused:
                await backend.run(steps_then_plan, again, options=options(), resume=bad)
            assert refused.value.error.type == "SagaDefinitionError"
            assert "malformed" in refused.value.error.message
        assert ran(plan) == ["do:a"]
