"""Where a saga, a step and an undo stand: the status enums of a report (and `runs`).

They sit below the report models (`sagakit._report`) and their renderings
(`sagakit._render`), which both read them; both modules import this one and
nothing imports back.
"""

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["SagaStatus", "StepKind", "StepStatus", "UndoStatus", "runs"]


class SagaStatus(StrEnum):
    """Where a saga run stands."""

    RUNNING = "running"
    """The saga function is still running."""
    SUCCEEDED = "succeeded"
    """The saga function returned; no undo ran."""
    COMPENSATING = "compensating"
    """It failed and its undos are running."""
    COMPENSATED = "compensated"
    """It failed and every registered undo succeeded."""
    COMPENSATION_FAILED = "compensation_failed"
    """It failed and at least one undo finally failed or was skipped."""
    COMMITTED_FAILED = "committed_failed"
    """It failed after its pivot step succeeded: committed, so no undo ran."""
    PARKED = "parked"
    """It failed, and an undo that finally failed waits for an operator
    (`SagaOptions(on_undo_failure="park")`): resolve it with "retry" or "skip".
    Also while an operator's retry of another parked undo runs."""


class StepKind(StrEnum):
    """What a step is to the unwind (Richardson's compensatable, pivot and retriable)."""

    COMPENSATABLE = "compensatable"
    """Has an undo (or `None`), which runs if the saga fails before it is committed."""
    PIVOT = "pivot"
    """The go/no-go step: no undo; once it succeeds the saga is committed."""
    RETRIABLE = "retriable"
    """After the pivot: no undo, retried until it succeeds."""


class StepStatus(StrEnum):
    """How a step's do ended."""

    RUNNING = "running"
    """The do has not ended."""
    SUCCEEDED = "succeeded"
    """The do returned."""
    FAILED = "failed"
    """The do raised after its last retry."""
    CANCELLED = "cancelled"
    """Cancelled in flight (a sibling failed, or the saga was cancelled): outcome unknown."""


class UndoStatus(StrEnum):
    """How a step's undo ended."""

    NONE = "none"
    """The step registered no undo."""
    PENDING = "pending"
    """Registered, not run: the saga has not failed (yet)."""
    RUNNING = "running"
    """The undo is running."""
    COMPENSATED = "compensated"
    """The undo returned."""
    FAILED = "failed"
    """It failed after its last retry."""
    SKIPPED = "skipped"
    """Not run, because an earlier undo failed and `continue_on_compensation_error` is off."""
    NOT_NEEDED = "not_needed"
    """Not run: the backend never started the do (its args could not be sent), so
    nothing took effect."""
    PARKED = "parked"
    """It finally failed and waits for an operator's "retry" or "skip"
    (`SagaOptions(on_undo_failure="park")`)."""
    DONE_BY_HAND = "done_by_hand"
    """It was parked, and an operator resolved it with "skip": they undid the
    effect by hand (who and why are in `UndoReport.resolutions`)."""


def runs(seqs: Iterable[int]) -> list[list[int]]:
    """Ascending step numbers as `[first, last]` runs: `[1, 2, 3, 7]` -> `[[1, 3], [7, 7]]`."""
    out: list[list[int]] = []
    for n in seqs:
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return out
