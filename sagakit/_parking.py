"""The "park" policy: an undo that finally failed waits for an operator's decision.

With `SagaOptions(on_undo_failure="park")` the unwind goes on past such an
undo (in sequential and parallel mode alike); once every undo ran, the saga
waits until each parked undo is resolved, "retry" (run it again by its retry
policy; it may park again) or "skip" (done by hand, the reason kept), or until
`park_timeout` runs out (the undos still parked then fail the saga as with
"fail"). Executors deliver decisions through `check` (an update's validator:
refuses, changing nothing) and `resolve`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sagakit._exceptions import SagaStateError
from sagakit._record import Record
from sagakit._report import ParkedUndo, Resolution, UndoStatus, to_datetime
from sagakit._unwind import UndoFailurePolicy, Unwind

__all__ = ["Park", "parking", "parking_or_refuse"]


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

    def check_resolution(self, seq: Any, action: Any) -> None:
        """Refuse a decision `resolve` would refuse, changing nothing (an update's validator).

        Raises:
            SagaStateError: `action` is not "retry" or "skip", or step `seq`
                has no parked undo awaiting a decision.
        """
        if action not in ("retry", "skip"):
            raise SagaStateError(
                f"unknown action {action!r} for a parked undo: 'retry' runs it again by "
                f"its retry policy, 'skip' records that it was undone by hand"
            )
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
        """Deliver an operator's decision on the parked undo of step `seq`.

        Returns once delivered; the saga acts on it in order ("retry" runs the
        undo again, and it may park again; "skip" records it as done by hand).

        Raises:
            SagaStateError: as `check_resolution`.
        """
        self.check_resolution(seq, action)
        record, _ = self._held[seq]
        at = to_datetime(self.run.backend.time())
        resolution = Resolution(action=action, reason=reason, by=by, at=at)  # type: ignore[arg-type]
        self._decisions.append((record, resolution))
        assert self._wake is not None
        self._wake.set()


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
        f"step {seq!r} of saga {policy.run.saga_id} has no parked undo: its undos do not "
        f"park (SagaOptions(on_undo_failure='park') makes them wait for a decision)"
    )
