"""API.md §10: sub-sagas, a saga inside a saga, on every backend.

Steps `b` and `c` are the hotel package (`hotels`), `d` the fallback (`hostel`);
`a` and `e` are steps of the saga itself.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from sagakit import Saga, SagaFailed, StepKind, UndoStatus

from ._runner import Backend, Outcome, options
from ._shared import DO, UNDO, Plan, journal, ran, until


async def hotels(saga: Saga, plan: Plan) -> str:
    await saga.step(DO["b"], UNDO["b"], plan)
    await saga.step(DO["c"], UNDO["c"], plan)
    return "hotels"


async def hostel(saga: Saga, plan: Plan) -> str:
    await saga.step(DO["d"], UNDO["d"], plan)
    return "hostel"


async def with_fallback(saga: Saga, plan: Plan) -> dict[str, object]:
    """The hotels, or if they fail the hostel; what the caller saw of the failure."""
    await saga.step(DO["a"], UNDO["a"], plan)
    seen: dict[str, object] = {}
    try:
        stay = await saga.sub(hotels, plan)
    except SagaFailed as e:
        seen = {
            "cause": e.report.error.type if e.report.error else None,
            "undone": e.report.compensation_order,
            "steps": [s.name for s in e.report.steps],
            "status": e.report.status.value,
        }
        stay = await saga.sub(hostel, plan)
    await saga.step(DO["e"], UNDO["e"], plan)
    return {"stay": stay, **seen}


async def uncaught(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.sub(hotels, plan)
    await saga.step(DO["e"], UNDO["e"], plan)


async def twice(saga: Saga, plan: Plan) -> None:
    await saga.sub(hostel, plan)
    await saga.sub(hostel, plan)


async def outer(saga: Saga, plan: Plan) -> str:
    await saga.step(DO["a"], UNDO["a"], plan)
    try:
        await saga.sub(hotels, plan, name="inner")
    except SagaFailed:
        return await saga.sub(hostel, plan)
    return "inner"


async def nested(saga: Saga, plan: Plan) -> None:
    await saga.sub(outer, plan, name="trip")
    await saga.step(DO["e"], UNDO["e"], plan)


async def two_at_once(saga: Saga, plan: Plan) -> None:
    """The hotels and the hostel at once; if either fails, go on without them."""
    await saga.step(DO["a"], UNDO["a"], plan)
    with contextlib.suppress(SagaFailed):
        await saga.gather(saga.sub(hotels, plan), saga.sub(hostel, plan))
    await saga.step(DO["e"], UNDO["e"], plan)


async def pivot_inside(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["b"], None, plan, kind=StepKind.PIVOT)


async def sub_with_a_pivot(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.sub(pivot_inside, plan)


def not_a_saga(saga: Saga, plan: Plan) -> None:
    """Not an `async def`: a mistake `saga.sub` names."""


async def sub_of_a_plain_function(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.sub(not_a_saga, plan)  # type: ignore[arg-type]


class TestAFailedSubSaga:
    async def test_undoes_its_own_steps_first_and_the_caller_falls_back(
        self, backend: Backend
    ) -> None:
        """`c` fails: the hotels' undos run (c, b), then the hostel; `a` is never undone."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(with_fallback, plan, options=options())
        assert outcome.error is None
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "do:d", "do:e"]
        assert outcome.result == {
            "stay": "hostel",
            "cause": "Boom",
            "undone": ["do_c", "do_b"],
            "steps": ["do_b", "do_c"],
            "status": "compensated",
        }

    async def test_those_undos_never_run_again_when_the_saga_unwinds_later(
        self, backend: Backend
    ) -> None:
        """After the fallback, `e` fails: the saga undoes e, d, a; not b and c again."""
        plan = Plan(fail=["c", "e"])
        outcome = await backend.run(with_fallback, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert ran(plan)[5:] == ["do:d", "do:e", "undo:e", "undo:d", "undo:a"]
        assert [u for u in ran(plan) if u.startswith("undo")].count("undo:b") == 1

    async def test_uncaught_the_saga_unwinds_the_rest_with_the_original_cause(
        self, backend: Backend
    ) -> None:
        plan = Plan(fail=["c"])
        outcome = await backend.run(uncaught, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert cause_of(outcome) == "Boom"
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        assert outcome.report.error == outcome.cause
        assert outcome.report.compensation_order == ["do_c", "do_b", "do_a"]


class TestASubSagaThatSucceeded:
    async def test_leaves_its_undos_to_run_lifo_among_the_others(self, backend: Backend) -> None:
        plan = Plan(fail=["e"])
        outcome = await backend.run(with_fallback, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert ran(plan) == ["do:a", "do:b", "do:c", "do:e", "undo:e", "undo:c", "undo:b", "undo:a"]


class TestStepsOfSubSagas:
    async def test_have_their_own_seq_and_key_and_the_report_names_their_sub_saga(
        self, backend: Backend
    ) -> None:
        plan = Plan(fail=["c"])
        outcome = await backend.run(with_fallback, plan, options=options())
        steps = outcome.report.steps
        assert [(s.seq, s.name, s.sub) for s in steps] == [
            (1, "do_a", None),
            (2, "do_b", "hotels"),
            (3, "do_c", "hotels"),
            (4, "do_d", "hostel"),
            (5, "do_e", None),
        ]
        saga_id = outcome.report.saga_id
        keys = {(e.phase, e.name): e.key for e in journal(plan) if e.event == "ran"}
        assert [keys["do", n] for n in "abcde"] == [f"{saga_id}#{i}" for i in range(1, 6)]
        assert [keys["undo", n] for n in "bc"] == [keys["do", n] for n in "bc"]
        assert "hotels: do_b" in outcome.report.timeline(color=False)

    async def test_a_repeated_name_is_numbered(self, backend: Backend) -> None:
        outcome = await backend.run(twice, Plan(), options=options())
        assert [s.sub for s in outcome.report.steps] == ["hostel", "hostel[2]"]


class TestNesting:
    async def test_sub_sagas_nest_and_an_inner_failure_is_caught_by_the_outer(
        self, backend: Backend
    ) -> None:
        plan = Plan(fail=["c"])
        outcome = await backend.run(nested, plan, options=options())
        assert outcome.error is None
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "do:d", "do:e"]
        assert [s.sub for s in outcome.report.steps] == [
            "trip",
            "trip/inner",
            "trip/inner",
            "trip/hostel",
            None,
        ]

    async def test_an_outer_sub_saga_that_fails_undoes_its_inner_ones_too(
        self, backend: Backend
    ) -> None:
        """The hostel (inside `trip`) succeeded; `e` is outside: fail `d` instead."""
        plan = Plan(fail=["c", "d"])
        outcome = await backend.run(nested, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert cause_of(outcome) == "Boom"
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "do:d", "undo:d", "undo:a"]


class TestMistakes:
    async def test_a_pivot_inside_a_sub_saga_is_refused_before_its_do_runs(
        self, backend: Backend
    ) -> None:
        plan = Plan()
        outcome = await backend.run(sub_with_a_pivot, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert cause_of(outcome) == "StepDefinitionError"
        assert "pivot inside sub-saga 'pivot_inside'" in str(outcome.cause)
        assert ran(plan) == ["do:a", "undo:a"]

    async def test_a_sub_saga_that_is_not_an_async_def_says_so(self, backend: Backend) -> None:
        plan = Plan()
        outcome = await backend.run(sub_of_a_plain_function, plan, options=options())
        assert cause_of(outcome) == "StepDefinitionError"
        assert "a sub-saga must be an `async def` that takes the Saga first" in str(outcome.cause)
        assert ran(plan) == ["do:a", "undo:a"]


class TestParkingInASubSaga:
    async def test_saga_sub_raises_once_the_decisions_are_carried_out(
        self, backend: Backend
    ) -> None:
        """The hotels fail at `c`; undo `b` parks; skipped by hand, then the hostel runs."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(
            with_fallback, plan, options=options(on_undo_failure="park")
        ) as run:
            [parked] = await run.wait_parked()
            assert (parked.seq, parked.name) == (2, "do_b")
            assert "do:d" not in ran(plan)  # saga.sub has not returned yet
            await run.resolve(2, "skip", reason="cancelled by phone")
            outcome = await run.outcome()
        assert outcome.error is None
        assert outcome.result["stay"] == "hostel"
        assert outcome.report.step("do_b").undo.status is UndoStatus.DONE_BY_HAND  # type: ignore[union-attr]


class TestCancel:
    async def test_a_sub_saga_cancelled_by_its_siblings_failure_undoes_its_own_steps(
        self, backend: Backend
    ) -> None:
        """In saga.gather, the hotels fail at c while the hostel's d hangs: both undone."""
        plan = Plan(fail=["c"], hang=["d"], wait_for={"c": "do:d"})
        outcome = await backend.run(two_at_once, plan, options=options())
        assert outcome.error is None
        undone = [x for x in ran(plan) if x.startswith("undo")]
        assert sorted(undone) == ["undo:b", "undo:c", "undo:d"]
        assert undone.index("undo:c") < undone.index("undo:b")
        assert ran(plan)[-1] == "do:e"
        assert outcome.report.step("do_d").undo.status is UndoStatus.COMPENSATED  # type: ignore[union-attr]

    async def test_a_deadline_that_passes_in_a_sub_saga_undoes_everything_once(
        self, backend: Backend
    ) -> None:
        plan = Plan(hang=["c"])
        deadline = timedelta(seconds=2)
        async with backend.start(with_fallback, plan, options=options(deadline=deadline)) as run:
            assert await until(lambda: "do:c" in ran(plan), seconds=10)
            await run.pass_time(deadline.total_seconds() + 0.5)
            outcome = await run.outcome()
        assert cause_of(outcome) == "SagaDeadlineExceeded"
        assert [x for x in ran(plan) if x.startswith("undo")] == ["undo:c", "undo:b", "undo:a"]
        assert "do:d" not in ran(plan)  # no fallback: the saga is out of time

    async def test_a_saga_cancelled_in_a_sub_saga_undoes_everything_once(
        self, backend: Backend
    ) -> None:
        backend.require("cancel")
        plan = Plan(hang=["b"])
        async with backend.start(with_fallback, plan, options=options()) as run:
            assert await until(lambda: "do:b" in ran(plan), seconds=10)
            await run.cancel()
            outcome = await run.outcome()
        assert outcome.cancelled
        undone = [x for x in ran(plan) if x.startswith("undo")]
        assert undone == ["undo:b", "undo:a"]


def cause_of(outcome: Outcome) -> str | None:
    """The type name of the run's original error (`SagaFailed.__cause__`)."""
    return outcome.cause.type if outcome.cause is not None else None
