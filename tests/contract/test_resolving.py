"""API.md §8: what a decision on a parked undo must be, and who may take it, on every backend.

Every decision is checked before it is delivered (in memory) or written (on
Temporal, in the update's validator): its types and bounds, that the undo
awaits a decision, then `SagaOptions.resolve_check`, the operators' own rule.
A refusal raises `SagaStateError` and leaves the undo parked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sagakit import ParkedUndo, SagaStateError, SagaStatus, UndoStatus

from ._runner import Backend, options
from ._shared import Plan, steps

PARK = {"on_undo_failure": "park"}


class TestEveryFieldIsChecked:
    @pytest.mark.parametrize(
        ("seq", "action", "reason", "by", "says"),
        [
            (2.0, "skip", None, "ana", "seq must be a step's number, an int"),
            (True, "skip", None, "ana", "seq must be a step's number, an int"),
            ("2", "skip", None, "ana", "seq must be a step's number, an int"),
            (2, ["skip"], None, "ana", "unknown action"),
            (2, "skip", 42, "ana", "reason must be a string or None, not int 42"),
            (2, "skip", "x" * 1_000_000, "ana", r"reason is 1000000 bytes; at most 4096 \(4 KiB"),
            (2, "skip", "é" * 2049, "ana", "reason is 4098 bytes"),  # bytes, not characters
            (2, "skip", None, 42, "by must be a string or None, not int 42"),
            (2, "skip", None, "b" * 201, "by is 201 characters; at most 200"),
        ],
        ids=[
            "float-seq",
            "bool-seq",
            "str-seq",
            "list-action",
            "int-reason",
            "1MB-reason",
            "4098-byte-reason",
            "int-by",
            "201-char-by",
        ],
    )
    async def test_a_wrong_type_or_size_is_refused_and_the_undo_stays_parked(
        self, backend: Backend, seq: Any, action: Any, reason: Any, by: Any, says: str
    ) -> None:
        """Refused with `SagaStateError` naming the fix; the next good decision is taken."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            with pytest.raises(SagaStateError, match=says):
                await run.resolve(seq, action, reason=reason, by=by)
            [still] = await run.wait_parked()
            assert still.seq == 2
            await run.resolve(2, "skip", reason="r" * 4096, by="b" * 200)  # the bounds are in
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert [(r.action, r.by) for r in undo.resolutions] == [("skip", "b" * 200)]


class TestConcurrentDecisions:
    async def test_of_five_skips_one_wins_the_others_get_saga_state_error(
        self, backend: Backend
    ) -> None:
        """Five operators skip the same parked undo at once: one wins, four are told they lost."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        async with backend.start(steps, plan, options=options(**PARK)) as run:
            await run.wait_parked()
            outcomes = await asyncio.gather(
                *(run.resolve(2, "skip", by=f"operator {i}") for i in range(5)),
                return_exceptions=True,
            )
            outcome = await run.outcome()
        assert outcomes.count(None) == 1, outcomes
        losers = [o for o in outcomes if o is not None]
        assert all(isinstance(o, SagaStateError) for o in losers), losers
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert len(undo.resolutions) == 1


SEEN: list[tuple[Any, list[int]]] = []
"""What `only_named_operators_skip` was called with."""


def only_named_operators_skip(request: Any, parked: list[ParkedUndo]) -> None:
    """An operators' rule: a skip needs a reason and an `ops-` name; retries are free."""
    SEEN.append((request, [p.seq for p in parked]))
    if request.action == "skip" and not (request.by or "").startswith("ops-"):
        raise PermissionError(f"only the ops team skips an undo; {request.by!r} may retry")
    if request.action == "skip" and not request.reason:
        raise ValueError("a skip needs a reason (the ticket of the refund done by hand)")


class TestResolveCheck:
    async def test_the_operators_rule_refuses_before_anything_is_delivered(
        self, backend: Backend
    ) -> None:
        """`resolve_check` sees the request and the parked undos; its refusal changes nothing."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        opts = options(**PARK, resolve_check=only_named_operators_skip)
        SEEN.clear()
        async with backend.start(steps, plan, options=opts) as run:
            await run.wait_parked()
            with pytest.raises(SagaStateError, match="only the ops team skips an undo"):
                await run.resolve(2, "skip", reason="refunded", by="intern")
            with pytest.raises(SagaStateError, match=r"refused by SagaOptions\.resolve_check"):
                await run.resolve(2, "skip", by="ops-ana")
            [still] = await run.wait_parked()
            assert still.seq == 2
            await run.resolve(2, "skip", reason="ticket PAY-311", by="ops-ana")
            outcome = await run.outcome()
        assert outcome.report.status is SagaStatus.COMPENSATED
        undo = outcome.report.step("do_b").undo
        assert undo is not None
        assert undo.status is UndoStatus.DONE_BY_HAND
        assert [(r.action, r.reason, r.by) for r in undo.resolutions] == [
            ("skip", "ticket PAY-311", "ops-ana")
        ]
        assert [(r.by, r.action, seqs) for r, seqs in SEEN] == [
            ("intern", "skip", [2]),
            ("ops-ana", "skip", [2]),
            ("ops-ana", "skip", [2]),
        ]
        assert {r.saga_id for r, _ in SEEN} == {outcome.report.saga_id}

    async def test_it_sees_only_what_passed_sagakits_own_checks(self, backend: Backend) -> None:
        """A wrong seq is refused by sagakit first: the rule is not asked."""
        plan = Plan(fail=["c"], fail_undo=["b"])
        SEEN.clear()
        opts = options(**PARK, resolve_check=only_named_operators_skip)
        async with backend.start(steps, plan, options=opts) as run:
            await run.wait_parked()
            with pytest.raises(SagaStateError, match="no parked undo"):
                await run.resolve(1, "retry", by="ops-ana")
            await run.resolve(2, "skip", reason="ticket 9", by="ops-ana")
            await run.outcome()
        assert [(r.seq, r.action) for r, _ in SEEN] == [(2, "skip")]
