"""The duties of a `Backend` (sagakit/_backend.py), each checked on every backend.

A backend has seven members: `saga_id`, `time`, `check`, `call` and `wait`,
and two with defaults, `describe_error` and `passes_through`. What each must
do is in its docstring; each duty is a rule here, run in memory and on a
Temporal dev server. Two are stated elsewhere in this suite and named here:
`wait` ending on time (`test_parking.py::test_park_timeout_ends_it_as_compensation_failed`)
and on its event (`test_parking.py::test_it_parks_after_the_others_ran_and_the_saga_waits`);
`passes_through` is Temporal's alone (an evicted workflow: tests/temporal `TestEviction`).
"""

from __future__ import annotations

from sagakit import Saga, SagaStatus, StepStatus, UndoStatus

from ._runner import Backend, options
from ._shared import DO, UNDO, Plan, charge, journal, ran, refund, steps, until

TOO_BIG = 3 * 2**20
"""Bytes of an arg over the 2 MiB payload limit both backends hold to."""


async def second_step_cannot_travel(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(charge, refund, plan, "x" * TOO_BIG, 1)


async def second_step_has_a_blank_activity_name(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan)
    await saga.step("  ", None, plan)


class TestSagaId:
    async def test_it_names_the_run_every_key_derives_from(self, backend: Backend) -> None:
        """`saga_id`: every step's key is the report's saga id and its seq; a new run, a new id."""
        plan = Plan()
        first = await backend.run(steps, plan, options=options())
        keys = [e.key for e in journal(plan)]
        assert keys == [f"{first.report.saga_id}#{seq}" for seq in (1, 2, 3)]
        second = await backend.run(steps, plan, options=options())
        assert second.report.saga_id != first.report.saga_id


class TestTime:
    async def test_the_report_reads_one_clock_that_runs_forward(self, backend: Backend) -> None:
        """`time`: each do starts after the saga, ends after it started; undos follow their dos."""
        plan = Plan(fail=["c"])
        report = (await backend.run(steps, plan, options=options())).report
        assert report.ended_at is not None
        last = report.started_at
        for s in report.steps:
            assert s.started_at is not None
            assert s.ended_at is not None
            assert last <= s.started_at <= s.ended_at <= report.ended_at
            last = s.started_at
        for s in report.steps:
            assert s.undo is not None
            assert s.undo.started_at is not None
            assert s.undo.ended_at is not None
            assert s.ended_at is not None
            assert s.ended_at <= s.undo.started_at <= s.undo.ended_at <= report.ended_at


class TestCheck:
    async def test_a_step_the_backend_cannot_run_is_refused_before_it_runs(
        self, backend: Backend
    ) -> None:
        """`check`: the refused step never runs nor registers; the steps before it are undone."""
        plan = Plan()
        outcome = await backend.run(second_step_has_a_blank_activity_name, plan, options=options())
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "StepDefinitionError"
        assert "activity name" in outcome.cause.message
        assert ran(plan) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert [s.name for s in outcome.report.steps] == ["do_a", "do_b"]


class TestCall:
    async def test_a_call_refused_before_it_started_has_no_undo_run(self, backend: Backend) -> None:
        """`call` sets attempts to 0 when the args cannot travel: that step's undo is not run."""
        backend.require("payload_limit")
        plan = Plan()
        outcome = await backend.run(second_step_cannot_travel, plan, options=options())
        assert outcome.cause is not None
        assert outcome.cause.type == "PayloadTooLargeError"
        assert ran(plan) == ["do:a", "undo:a"]
        charged = outcome.report.step("charge")
        assert charged.attempts == 0
        assert charged.undo is not None
        assert charged.undo.status is UndoStatus.NOT_NEEDED
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_cancelled_call_has_stopped_before_its_undo_starts(
        self, backend: Backend
    ) -> None:
        """`call` returns from a cancel only once the do stopped, however many cancels came."""
        backend.require("cancel")
        plan = Plan(hang=["b"])
        async with backend.start(steps, plan, options=options()) as run:
            assert await until(lambda: "do:b" in ran(plan), seconds=10)
            await run.cancel()
            await run.cancel()
            outcome = await run.outcome()
        assert outcome.cancelled
        events = [f"{e.event}:{e.phase}:{e.name}" for e in journal(plan) if e.event != "ended"]
        assert events == ["ran:do:a", "ran:do:b", "cancelled:do:b", "ran:undo:b", "ran:undo:a"]
        assert outcome.report.step("do_b").status is StepStatus.CANCELLED


class TestDescribeError:
    async def test_an_application_error_reads_by_its_type_and_message(
        self, backend: Backend
    ) -> None:
        """`describe_error`: a step's `ApplicationError` is its `type` and `message` everywhere."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(steps, plan, options=options())
        failed = outcome.report.step("do_b")
        assert failed.error is not None
        assert (failed.error.type, failed.error.message) == ("Boom", "do b failed")
        assert outcome.report.error == failed.error
