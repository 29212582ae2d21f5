"""The "park" policy: an undo that finally failed waits for an operator's decision.

With `SagaOptions(on_undo_failure="park")` the unwind goes on past such an
undo (in sequential and parallel mode alike); once every undo ran, the saga
waits until each parked undo is resolved, "retry" (run it again by its retry
policy; it may park again) or "skip" (done by hand, the reason kept), or until
`park_timeout` runs out (the undos still parked then fail the saga as with
"fail"). Executors check a decision with `check_resolution` (types, bounds,
state, then `SagaOptions.resolve_check`; on Temporal in the update's
validator, so a refusal writes nothing) and deliver it with `resolve`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Final

from sagakit._exceptions import SagaStateError, cut
from sagakit._record import Record
from sagakit._report import ParkedUndo, Resolution, ResolveRequest, UndoStatus, to_datetime
from sagakit._unwind import UndoFailurePolicy, Unwind

__all__ = ["BY_LIMIT", "REASON_LIMIT", "Park", "check_request", "parking", "parking_or_refuse"]


class Park(UndoFailurePolicy):
    """Hold each undo that finally failed until an operator resolves it, or time runs out."""

    def __init__(self, timeout: timedelta | None = None) -> None:
        super().__init__()
        self._timeout = timeout
        self._held: dict[int, tuple[Record, Exception]] = {}  # by seq, until decided
        self._decisions: list[tuple[Record, Resolution]] = []
        self._wake: asyncio.Event | None = None  # set while decisions are taken

    def hold(self, record: Record, error: Exception) -> bool:
        """Park it: the unwind goes on, and the saga waits for a decision once it ran every undo."""
        self._held[record.seq] = (record, error)
        return True

    async def settle(self, unwind: Unwind, errors: list[Exception]) -> list[Exception]:
        """Alert, then wait for operators; the undos still parked then add their errors."""
        if self._held:
            self._wake = asyncio.Event()  # decisions are taken from here on, hook or not
        if errors or self._held:
            await self.alert()
        if self._held:
            errors += await self._wait(unwind)
        return errors

    def interrupt(self) -> None:
        """A cancel ends the wait: the decisions already delivered are still carried out."""
        if self._wake is not None:
            self._wake.set()

    async def _wait(self, unwind: Unwind) -> list[Exception]:
        run = self.run
        backend = run.backend
        wake = self._wake
        assert wake is not None
        deadline = None if self._timeout is None else backend.time() + self._timeout.total_seconds()
        while True:
            if self._decisions:
                record, resolution = self._decisions.pop(0)
                record.resolutions = (*record.resolutions, resolution)
                self._held.pop(record.seq, None)
                if resolution.action == "skip":
                    record.undo_status = UndoStatus.DONE_BY_HAND
                else:
                    await unwind.undo(record)  # may park again
                continue
            # Given up (no new decision taken), or nothing parked.
            if self._wake is None or not self._held:
                break
            left = None if deadline is None else max(deadline - backend.time(), 0.0)
            wake.clear()
            woke = not run.cancelled and await backend.wait(wake, left)
            if not woke or run.cancelled:
                # Out of time, or cancelled: no new decision is taken, but the ones
                # already delivered (their senders were told so) are still honoured.
                self._wake = None
        self._wake = None
        errors = []
        for seq in sorted(self._held):
            record, error = self._held.pop(seq)
            record.undo_status = UndoStatus.FAILED
            errors.append(error)
        return errors

    @property
    def waiting(self) -> bool:
        """Whether the saga waits for operators now (decisions are taken)."""
        return self._wake is not None

    def parked(self) -> list[ParkedUndo]:
        """The parked undos an operator can resolve now ("retry" or "skip"), in step order.

        Empty until the unwind has run every undo once and the saga waits; an
        undo whose decision has arrived but is not yet acted on is left out.
        """
        if self._wake is None:
            return []
        saga_id = self.run.saga_id
        return [ParkedUndo.of(saga_id, r.to_report(record_values=False)) for r in self._undecided()]

    def _undecided(self) -> list[Record]:
        decided = {r.seq for r, _ in self._decisions}
        return [r for seq, (r, _) in sorted(self._held.items()) if seq not in decided]

    def check_resolution(
        self, seq: Any, action: Any, reason: Any = None, by: Any = None
    ) -> ResolveRequest:
        """Refuse a decision that cannot be taken now, changing nothing; else the request.

        The one check of a decision, on every backend (in memory before it is
        delivered, on Temporal in the update's validator): its types and
        bounds (`check_request`), that step `seq` has an undo awaiting a
        decision, then `SagaOptions.resolve_check`.

        Raises:
            SagaStateError: naming what is wrong and how to send it right.
        """
        request = check_request(self.run.saga_id, seq, action, reason, by)
        self._check_parked(request.seq)
        rule = self.run.options.resolve_check
        if rule is not None:
            try:
                rule(request, self.parked())
            except Exception as e:  # the operators' rule refuses by raising
                why = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                raise SagaStateError(
                    f"step {request.seq} of saga {self.run.saga_id}: the decision "
                    f"{request.action!r} by {request.by!r} was refused by "
                    f"SagaOptions.resolve_check: {cut(why, 500)}"
                ) from None
        return request

    def _check_parked(self, seq: int) -> None:
        waiting = [r.seq for r in self._undecided()]
        if self._wake is not None and seq in waiting:
            return
        if self._wake is None:
            what = (
                "the unwind is still running other undos; resolve it once the saga waits"
                if waiting
                else "nothing is parked"
            )
        elif waiting:
            what = f"undos await a decision at steps {waiting}"
        else:
            what = "no undo awaits a decision now (a retry may be running)"
        raise SagaStateError(f"step {seq!r} of saga {self.run.saga_id} has no parked undo: {what}")

    def resolve(
        self, seq: int, action: str, *, reason: str | None = None, by: str | None = None
    ) -> None:
        """Deliver a decision `check_resolution` accepted on the parked undo of step `seq`.

        Returns once delivered; the saga acts on it in order ("retry" runs the
        undo again, and it may park again; "skip" records it as done by hand).
        Only whether the undo still awaits a decision is checked again: on
        Temporal this runs in the update's handler, also in replay, where the
        validator does not run and an accepted decision must be taken as it was.

        Raises:
            SagaStateError: step `seq` has no undo awaiting a decision.
        """
        self._check_parked(seq)
        record, _ = self._held[seq]
        at = to_datetime(self.run.backend.time())
        resolution = Resolution(action=action, reason=reason, by=by, at=at)  # type: ignore[arg-type]
        self._decisions.append((record, resolution))
        assert self._wake is not None
        self._wake.set()


REASON_LIMIT: Final = 4096
"""Most bytes (UTF-8) a decision's `reason` may take: it is kept in the report and,
on Temporal, in the history twice (the update and the saga's failure)."""

BY_LIMIT: Final = 200
"""Most characters a decision's `by` may take: a person's or a service's name."""


def check_request(saga_id: str, seq: Any, action: Any, reason: Any, by: Any) -> ResolveRequest:
    """A decision's fields, checked for type and size before anything is written.

    Raises:
        SagaStateError: `seq` is not an int (a bool or a float is not),
            `action` not "retry" or "skip", `reason` or `by` neither a string
            nor `None`, or longer than `REASON_LIMIT` bytes / `BY_LIMIT` characters.
    """
    # A bool or a float (2.0) compares equal to an int seq, then fails where it indexes.
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise SagaStateError(
            f"seq must be a step's number, an int (ParkedUndo.seq), not "
            f"{type(seq).__name__} {cut(repr(seq), 60)}"
        )
    if not isinstance(action, str) or action not in ("retry", "skip"):
        raise SagaStateError(
            f"unknown action {cut(repr(action), 60)} for a parked undo: 'retry' runs it "
            f"again by its retry policy, 'skip' records that it was undone by hand"
        )
    if reason is not None:
        size = _utf8_size("reason", reason)
        if size > REASON_LIMIT:
            raise SagaStateError(
                f"reason is {size} bytes; at most {REASON_LIMIT} (4 KiB, UTF-8) are taken, as "
                f"it is kept in the report and the history: shorten it, or point to a "
                f"ticket that holds the rest"
            )
    if by is not None:
        _utf8_size("by", by)
        if len(by) > BY_LIMIT:
            raise SagaStateError(
                f"by is {len(by)} characters; at most {BY_LIMIT} are taken: name who "
                f"decides (a person's or a service's id)"
            )
    # Plain values (an IntEnum or StrEnum member passes as its value), for the report.
    return ResolveRequest(
        saga_id=saga_id,
        seq=int(seq),
        action=str(action),  # type: ignore[arg-type]
        reason=None if reason is None else str(reason),
        by=None if by is None else str(by),
    )


def _utf8_size(field: str, value: Any) -> int:
    """The size of a `reason` or `by` in UTF-8, refusing what is not text."""
    if not isinstance(value, str):
        raise SagaStateError(
            f"{field} must be a string or None, not {type(value).__name__} {cut(repr(value), 60)}"
        )
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: no JSON encoder would carry it on
        raise SagaStateError(
            f"{field} is not valid text (it holds a lone surrogate): send it as UTF-8"
        ) from None


def parking(policy: UndoFailurePolicy) -> Park | None:
    """The run's parking policy, or `None` if its undos do not park."""
    return policy if isinstance(policy, Park) else None


def parking_or_refuse(policy: UndoFailurePolicy, seq: Any) -> Park:
    """The run's parking policy, for a decision on step `seq`.

    Raises:
        SagaStateError: the run's undos do not park, so it has nothing to resolve.
    """
    if isinstance(policy, Park):
        return policy
    raise SagaStateError(
        f"step {cut(repr(seq), 60)} of saga {policy.run.saga_id} has no parked undo: its "
        f"undos do not park (SagaOptions(on_undo_failure='park') makes them wait for a decision)"
    )
