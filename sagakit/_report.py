"""What a saga run did: the report models and their renderings.

The core keeps cheap slotted records while the saga runs and builds these
pydantic models only when asked (`Saga.report()`, a failure, a query), so the
fast path copies nothing.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ErrorInfo",
    "SagaReport",
    "SagaStatus",
    "StepReport",
    "StepStatus",
    "UndoReport",
    "UndoStatus",
]


class SagaStatus(StrEnum):
    """Where a saga run stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    """It failed and every registered undo succeeded."""
    COMPENSATION_FAILED = "compensation_failed"
    """It failed and at least one undo finally failed or was skipped."""


class StepStatus(StrEnum):
    """How a step's do ended."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Cancelled in flight (a sibling failed, or the saga was cancelled): outcome unknown."""


class UndoStatus(StrEnum):
    """How a step's undo ended."""

    NONE = "none"
    """The step registered no undo."""
    PENDING = "pending"
    """Registered, not run: the saga has not failed (yet)."""
    RUNNING = "running"
    COMPENSATED = "compensated"
    FAILED = "failed"
    """It failed after its last retry."""
    SKIPPED = "skipped"
    """Not run, because an earlier undo failed and `continue_on_compensation_error` is off."""


class ErrorInfo(BaseModel):
    """An error as it travels in a report: its type name and message, never its traceback."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str


class _Timed(BaseModel):
    status: Any
    attempts: int | None = None
    """Attempts made, where the backend can know (on Temporal only for some failures)."""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: ErrorInfo | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or `None` while running."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class UndoReport(_Timed):
    """The undo of one step."""

    status: UndoStatus
    name: str
    order: int | None = None
    """1 for the first undo the unwind ran, 2 for the next, ..."""


class StepReport(_Timed):
    """One step: its do, and its undo if it registered one."""

    seq: int
    """Registration number, from 1."""
    name: str
    status: StepStatus
    result: Any = None
    """The do's result, only with `SagaOptions(record_values=True)`."""
    undo: UndoReport | None = None


class SagaReport(BaseModel):
    """Everything a saga run did, in registration order; serialises to JSON and back."""

    saga_id: str
    status: SagaStatus
    started_at: datetime
    ended_at: datetime | None = None
    error: ErrorInfo | None = None
    """The error that made the saga unwind."""
    cancelled: bool = False
    """The saga's task (or workflow) was cancelled, and unwound."""
    steps: list[StepReport] = []

    @property
    def compensation_order(self) -> list[str]:
        """Names of the steps whose undo ran, in the order the undos started."""
        ran = [s for s in self.steps if s.undo is not None and s.undo.order is not None]
        return [s.name for s in sorted(ran, key=lambda s: s.undo.order or 0)]  # type: ignore[union-attr]

    @property
    def failed_undos(self) -> list[StepReport]:
        """Steps whose undo finally failed."""
        return [s for s in self.steps if s.undo is not None and s.undo.status is UndoStatus.FAILED]

    def step(self, name: str) -> StepReport:
        """The first step of that name.

        Raises:
            KeyError: no step has that name.
        """
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"no step named {name!r}; steps: {[s.name for s in self.steps]}")

    def timeline(self, *, color: bool | None = None) -> str:
        """The run as text: each do and each undo in the order they started.

        Args:
            color: ANSI colours; `None` colours only when stdout is a TTY and
                `NO_COLOR` is unset.
        """
        from sagakit._render import render_timeline

        if color is None:
            color = _stdout_is_tty() and "NO_COLOR" not in os.environ
        return render_timeline(self, color=color)

    def mermaid(self) -> str:
        """The run as a Mermaid sequence diagram, for docs and pull requests."""
        from sagakit._render import render_mermaid

        return render_mermaid(self)


def _stdout_is_tty() -> bool:
    import sys

    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def to_datetime(t: float | None) -> datetime | None:
    """A backend clock reading as an aware UTC datetime."""
    return None if t is None else datetime.fromtimestamp(t, UTC)
