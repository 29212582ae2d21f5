"""API.md §8: parked undos, which an operator resolves, on every backend.

With `SagaOptions(on_undo_failure="park")` an undo that finally failed waits
for an operator: "retry" runs it again, "skip" records it as done by hand, and
`park_timeout` ends the wait as if it had failed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from sagakit import SagaStateError, SagaStatus, UndoStatus

from ._runner import Backend, options
from ._shared import Plan, attempts, fix, ran, steps, until

PARK = {"on_undo_failure": "park"}


class TestAnUndoThatFailsForGoodParks:
    async def test_it_parks_after_the_others_ran_and_the_saga_waits(self, backend: Backend) -> None:
        """The unwind goes on past the failed undo; then the saga waits, listing it parked."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            [parked] = await run.wait_parked()
            assert (parked.seq, parked.name, parked.undo) == (2, "do_b", "undo_b")
            assert parked.error is not None
            assert parked.error.type == "UndoBoom"
            assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
            fix(plan, "b")
            await run.resolve(2, "retry", reason="card service is back")
            outcome = await run.outcome()
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "Boom"
        assert outcome.report.status is SagaStatus.COMPENSATED
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert undo.status is UndoStatus.COMPENSATED
        assert [(r.action, r.reason, r.by) for r in undo.resolutions] == [
            ("retry", "card service is back", "tester")
        ]
        assert len(attempts(plan, "undo", "b")) == 2
        assert ran(plan)[-1] == "undo:b"

    async def test_a_skip_is_done_by_hand_and_keeps_the_reason(self, backend: Backend) -> None:
        """A skip: the saga ends compensated, the undo done by hand, the reason in the report."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            await run.resolve(2, "skip", reason="refunded by hand, ticket 42")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert undo.status is UndoStatus.DONE_BY_HAND
        assert [(r.action, r.reason) for r in undo.resolutions] == [
            ("skip", "refunded by hand, ticket 42")
        ]
        assert len(attempts(plan, "undo", "b")) == 1

    async def test_a_retry_that_fails_again_parks_again(self, backend: Backend) -> None:
        """A retried undo that fails again parks again, and waits for the next decision."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            await run.resolve(2, "retry")
            await undo_b_attempted(plan, times=2)
            [again] = await run.wait_parked()
            assert again.seq == 2
            await run.resolve(2, "skip", reason="gave up")
            outcome = await run.outcome()
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert [r.action for r in undo.resolutions] == ["retry", "skip"]
        assert undo.status is UndoStatus.DONE_BY_HAND

    async def test_park_timeout_ends_it_as_compensation_failed(self, backend: Backend) -> None:
        """Past `park_timeout` the undos still parked fail the saga as with "fail"."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        opts = options(**PARK, park_timeout=timedelta(seconds=1))
        async with backend.start(steps, plan, options=opts) as run:
            await run.wait_parked()
            await run.pass_time(1.5)
            outcome = await run.outcome()
        assert outcome.error == "SagaFailed"
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert undo.status is UndoStatus.FAILED
        assert ran(plan) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]

    async def test_the_default_still_fails(self, backend: Backend) -> None:
        """Without "park", a failed undo ends the saga as before: compensation failed."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        outcome = await backend.run(steps, plan, options=options())
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED


class TestTheUnwindGoesOnPastAParkedUndo:
    async def test_even_when_it_would_stop_at_a_failed_one(self, backend: Backend) -> None:
        """`continue_on_compensation_error=False` stops at a failed undo, never a parked one."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        opts = options(**PARK, continue_on_compensation_error=False)
        async with backend.start(steps, plan, options=opts) as run:
            await run.wait_parked()
            assert ran(plan)[-1] == "undo:a"
            await run.resolve(2, "skip")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_in_parallel_mode(self, backend: Backend) -> None:
        """Undos run at once park the same way; the others finish first."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], fail_undo=["a", "c"])
        opts = options(**PARK, parallel_compensation=True)
        async with backend.start(steps, plan, options=opts) as run:
            parked = await run.wait_parked()
            assert [p.seq for p in parked] == [1, 3]
            fix(plan, "a")
            await run.resolve(1, "retry")
            await run.resolve(3, "skip")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert {s.name: s.undo.status for s in outcome.report.steps if s.undo} == {
            "do_a": UndoStatus.COMPENSATED,
            "do_b": UndoStatus.COMPENSATED,
            "do_c": UndoStatus.DONE_BY_HAND,
            "do_d": UndoStatus.COMPENSATED,
        }


class TestADecisionSentWhileARetriedUndoRuns:
    async def test_is_taken_for_another_parked_undo(self, backend: Backend) -> None:
        """While an operator's retry runs, the other parked undo stays listed and resolvable."""
        plan = Plan(steps=["a", "b", "c", "d"], fail=["d"], fail_undo=["a", "c"], undo_delay=0.5)
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            parked = await run.wait_parked()
            assert [p.seq for p in parked] == [1, 3]
            fix(plan, "a")
            await run.resolve(1, "retry")
            assert await until(lambda: len(attempts(plan, "undo", "a")) == 2)  # the retry runs
            assert [p.seq for p in await run.parked()] == [3]
            await run.resolve(3, "skip")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.step("do_a").undo.status is UndoStatus.COMPENSATED  # type: ignore[union-attr]
        assert outcome.report.step("do_c").undo.status is UndoStatus.DONE_BY_HAND  # type: ignore[union-attr]


class TestResolveRefusesMistakes:
    @pytest.mark.parametrize(
        ("seq", "action", "says"),
        [
            (1, "retry", "no parked undo"),  # step 1's undo compensated
            (9, "skip", "no parked undo"),
            (2, "undo", "unknown action"),
        ],
    )
    async def test_a_wrong_seq_or_action_is_refused(
        self, backend: Backend, seq: int, action: str, says: str
    ) -> None:
        """An unknown seq or action is refused (`SagaStateError`); the undo stays parked."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            with pytest.raises(SagaStateError, match=says):
                await run.resolve(seq, action)
            [still] = await run.wait_parked()
            assert still.seq == 2
            await run.resolve(2, "skip")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_second_decision_on_the_same_undo_is_refused(self, backend: Backend) -> None:
        """Once decided, an undo takes no other decision until it parks again."""
        plan = Plan(fail=["c"], fail_undo=["b"], undo_delay=0.2)
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            fix(plan, "b")
            await run.resolve(2, "retry")
            with pytest.raises(SagaStateError, match="no parked undo"):
                await run.resolve(2, "skip")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestCancelWhileParked:
    async def test_a_cancel_ends_the_wait_and_the_undo_counts_as_failed(
        self, backend: Backend
    ) -> None:
        """Cancelling a parked saga gives up on its parked undos: they end failed."""
        backend.require("cancel")
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            await run.cancel()
            outcome = await run.outcome()
        assert outcome.cancelled
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert undo.status is UndoStatus.FAILED
        assert outcome.report.status is SagaStatus.COMPENSATION_FAILED


async def undo_b_attempted(plan: Plan, *, times: int) -> None:
    """Wait until undo b has been attempted `times` times (the retry ran)."""
    async with asyncio.timeout(30):
        while len(attempts(plan, "undo", "b")) < times:  # noqa: ASYNC110 - a journal
            await asyncio.sleep(0.01)
