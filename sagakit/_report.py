"""What a saga run did: the report models.

The core keeps cheap slotted records while the saga runs and builds these
pydantic models only when asked (`Saga.report()`, a failure, a query), so the
steps themselves make no model. Their renderings (timeline, Mermaid) are in
`sagakit._render`; the form a report takes in a Temporal failure is in
`sagakit.temporal._failure`. The status enums are in `sagakit._status`, below
both, and re-exported here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from sagakit._render import render_mermaid, render_timeline, use_color
from sagakit._status import SagaStatus, StepKind, StepStatus, UndoStatus

__all__ = [
    "ErrorInfo",
    "OmittedSteps",
    "ParkedUndo",
    "Resolution",
    "ResolveRequest",
    "SagaReport",
    "SagaStatus",
    "StepKind",
    "StepReport",
    "StepStatus",
    "UndoReport",
    "UndoStatus",
]


class ErrorInfo(BaseModel):
    """An error as it travels in a report: its type name and message, never its traceback."""

    model_config = ConfigDict(frozen=True)

    type: str
    """The error's type name (an `ApplicationError`'s `type`, else its class name)."""
    message: str
    """The error's message."""


class _Timed(BaseModel):
    status: Any
    attempts: int | None = None
    """Attempts made, where the backend can know (on Temporal only for some failures)."""
    started_at: datetime | None = None
    """When it started, on the backend's clock (virtual in memory, `workflow.now()` on Temporal)."""
    ended_at: datetime | None = None
    """When it ended, or `None` while it runs."""
    error: ErrorInfo | None = None
    """Its final error, if it failed."""

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, or `None` while running."""
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


class Resolution(BaseModel):
    """An operator's decision on a parked undo."""

    model_config = ConfigDict(frozen=True)

    action: Literal["retry", "skip"]
    """Either "retry" (run the undo again by its retry policy) or "skip" (undone by hand)."""
    reason: str | None = None
    """Why, in the operator's words."""
    by: str | None = None
    """Who decided (on Temporal, the resolving client's identity unless given)."""
    at: datetime | None = None
    """When the saga received it, on the backend's clock."""


class ResolveRequest(BaseModel):
    """An operator's decision on a parked undo, as a `SagaOptions.resolve_check` sees it.

    Checked already: `seq` an int, `action` "retry" or "skip", `reason` and
    `by` strings (or `None`) within their bounds.
    """

    model_config = ConfigDict(frozen=True)

    saga_id: str
    """The saga the decision is for."""
    seq: int
    """The step whose parked undo it resolves (`ParkedUndo.seq`)."""
    action: Literal["retry", "skip"]
    """"retry" (run the undo again) or "skip" (undone by hand)."""
    reason: str | None = None
    """Why, in the operator's words."""
    by: str | None = None
    """Who says they decide: chosen by the sender (on Temporal, the client's
    identity unless given), so not proof of who sent it."""


class UndoReport(_Timed):
    """The undo of one step."""

    status: UndoStatus
    """How the undo ended."""
    name: str
    """The undo's name (its function's)."""
    order: int | None = None
    """1 for the first undo the run started, 2 for the next, ... (a failed
    sub-saga's undos, which ran first, included)."""
    after: int | None = None
    """How many steps the run had registered when the undo first started: the
    steps after that one came later (a failed sub-saga's undos run before the
    saga goes on). What orders a timeline whose times are equal, or unknown."""
    resolutions: list[Resolution] = []
    """Operators' decisions on this undo while it was parked, oldest first."""


class ParkedUndo(BaseModel):
    """An undo that finally failed and waits for an operator's "retry" or "skip"."""

    model_config = ConfigDict(frozen=True)

    saga_id: str
    """The saga it belongs to."""
    seq: int
    """The step's number: what `resolve(saga_id, seq, ...)` takes."""
    name: str
    """The step's name."""
    undo: str
    """The undo's name."""
    error: ErrorInfo | None = None
    """Its last error."""
    attempts: int | None = None
    """Attempts of its last run, where the backend knows them."""
    parked_at: datetime | None = None
    """When it (last) parked, on the backend's clock."""

    @classmethod
    def of(cls, saga_id: str, step: StepReport) -> ParkedUndo:
        """The parked undo of `step` (a step of saga `saga_id` whose undo has parked)."""
        undo = step.undo
        assert undo is not None
        return cls(
            saga_id=saga_id,
            seq=step.seq,
            name=step.name,
            undo=undo.name,
            error=undo.error,
            attempts=undo.attempts,
            parked_at=undo.ended_at,
        )


class OmittedSteps(BaseModel):
    """The steps a report read back from a workflow failure counts but does not list.

    On Temporal a failed saga's failure carries its report, every step of it,
    up to a size cap (`sagakit.temporal.report_from_failure`); past the cap the
    report lists what fits and counts the rest here. Failures written by
    sagakit 0.x builds before that (format version 2) listed only the steps
    where something unusual happened; they read back with the others counted
    here, and `seqs` empty.
    """

    model_config = ConfigDict(frozen=True)

    count: int = 0
    """How many steps are not listed."""
    undos: dict[UndoStatus, int] = {}
    """How their undos stand: how many per status (`none` for no undo)."""
    seqs: list[int] = []
    """Their `seq`s, in order; empty where the failure did not say (version 2)."""


class StepReport(_Timed):
    """One step: its do, and its undo if it registered one."""

    seq: int
    """Registration number, from 1."""
    name: str
    """The step's name (`name=` or the do's function name)."""
    status: StepStatus
    """How the do ended."""
    kind: StepKind = StepKind.COMPENSATABLE
    """Compensatable, pivot or retriable (`saga.step(..., kind=...)`)."""
    result: Any = None
    """The do's result, only with `SagaOptions(record_values=True)`."""
    undo: UndoReport | None = None
    """The undo, or `None` when the step registered none."""
    sub: str | None = None
    """The sub-saga the step belongs to (`saga.sub(fn, name=...)`), nested ones
    joined by "/" (`"hotels/rooms"`); `None` for a step of the saga itself."""
    carried: str | None = None
    """For a step carried from another run, whose do ran there (an undo plan
    given to `run(..., resume=plan)`, a child workflow's sub-saga): the
    idempotency key its do saw, which its undo sees too. `None` otherwise."""


class SagaReport(BaseModel):
    """Everything a saga run did, in registration order; serialises to JSON and back."""

    saga_id: str
    """Unique per saga run; idempotency keys derive from it."""
    status: SagaStatus
    """Where the run stands."""
    started_at: datetime
    """When the saga started, on the backend's clock."""
    ended_at: datetime | None = None
    """When it ended, or `None` while it runs."""
    error: ErrorInfo | None = None
    """The error that made the saga unwind."""
    cancelled: bool = False
    """The saga's task (or workflow) was cancelled, and unwound."""
    deadline: datetime | None = None
    """When the saga's `SagaOptions.deadline` is (or was) due; `None` without one."""
    deadline_passed: bool = False
    """The deadline passed before the saga function returned: it was unwound
    (`error` is then `SagaDeadlineExceeded`)."""
    steps: list[StepReport] = []
    """Every registered step, in registration order (see `omitted`)."""
    omitted: OmittedSteps | None = None
    """Set only on a report read back from a workflow failure
    (`sagakit.temporal.report_from_failure`): the steps it counts but does not
    list, which `steps`, `step()` and `compensation_order` then leave out
    (none, `count` 0, unless the report was past the size cap). `None` on
    every other report."""

    @property
    def compensation_order(self) -> list[str]:
        """Names of the steps whose undo ran, in the order the undos started."""
        ran = [s for s in self.steps if s.undo is not None and s.undo.order is not None]
        return [s.name for s in sorted(ran, key=lambda s: s.undo.order or 0)]  # type: ignore[union-attr]

    @property
    def parked(self) -> list[ParkedUndo]:
        """The undos that wait for an operator, in registration order, while the saga waits.

        Empty unless `status` is `PARKED`: an undo may park while the unwind
        still runs others, and is listed once the saga waits; it stays listed
        while an operator's retry of another runs.
        """
        if self.status is not SagaStatus.PARKED:
            return []
        return [
            ParkedUndo.of(self.saga_id, s)
            for s in self.steps
            if s.undo is not None and s.undo.status is UndoStatus.PARKED
        ]

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
        return render_timeline(self, color=use_color(color))

    def mermaid(self) -> str:
        """The run as a Mermaid sequence diagram, for docs and pull requests."""
        return render_mermaid(self)


def to_datetime(t: float | None) -> datetime | None:
    """A backend clock reading as an aware UTC datetime."""
    return None if t is None else datetime.fromtimestamp(t, UTC)
