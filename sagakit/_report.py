"""What a saga run did: the report models, their compact form and their renderings.

The core keeps cheap slotted records while the saga runs and builds these
pydantic models only when asked (`Saga.report()`, a failure, a query), so the
steps themselves make no model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "ErrorInfo",
    "OmittedSteps",
    "ParkedUndo",
    "Resolution",
    "SagaReport",
    "SagaStatus",
    "StepKind",
    "StepReport",
    "StepStatus",
    "UndoReport",
    "UndoStatus",
]


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
    (`SagaOptions(on_undo_failure="park")`): resolve it with "retry" or "skip"."""


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


class UndoReport(_Timed):
    """The undo of one step."""

    status: UndoStatus
    """How the undo ended."""
    name: str
    """The undo's name (its function's)."""
    order: int | None = None
    """1 for the first undo the unwind ran, 2 for the next, ..."""
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


class OmittedSteps(BaseModel):
    """The steps a report read back from its compact form counts but does not list.

    The compact form (`SagaReport.to_compact`) lists only the steps where
    something unusual happened; each step it leaves out had its do succeed,
    and its undo compensated, pending, or none.
    """

    model_config = ConfigDict(frozen=True)

    count: int = 0
    """How many steps are not listed."""
    undos: dict[UndoStatus, int] = {}
    """How their undos stand: how many per status (`none` for no undo)."""


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
    steps: list[StepReport] = []
    """Every registered step, in registration order (see `omitted`)."""
    omitted: OmittedSteps | None = None
    """Set only on a report read back from its compact form (`from_compact`):
    the steps it counts but does not list, which `steps`, `step()` and
    `compensation_order` then leave out. `None` on every other report."""

    @property
    def compensation_order(self) -> list[str]:
        """Names of the steps whose undo ran, in the order the undos started."""
        ran = [s for s in self.steps if s.undo is not None and s.undo.order is not None]
        return [s.name for s in sorted(ran, key=lambda s: s.undo.order or 0)]  # type: ignore[union-attr]

    @property
    def parked(self) -> list[ParkedUndo]:
        """The undos that wait for an operator, in registration order, while the saga waits.

        Empty unless `status` is `PARKED`: an undo may park while the unwind
        still runs others (or an operator's retry of another), and is listed
        once the saga waits.
        """
        if self.status is not SagaStatus.PARKED:
            return []
        return [
            ParkedUndo(
                saga_id=self.saga_id,
                seq=s.seq,
                name=s.name,
                undo=s.undo.name,
                error=s.undo.error,
                attempts=s.undo.attempts,
                parked_at=s.undo.ended_at,
            )
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

    def to_compact(self, *, saga_id: bool = True, error: bool = True) -> dict[str, Any]:
        """The report as a small JSON-able dict, for a workflow failure's details.

        It lists only the steps where something unusual happened: a do that
        failed, was cancelled or still runs; an undo that failed, was skipped,
        still runs, is parked or was resolved by an operator; and the pivot.
        Of the others (do succeeded; undo compensated, pending or none) it
        keeps how many there are, by undo status. Of the timestamps it keeps
        only the saga's start, in whole epoch seconds; error messages longer
        than 200 characters are cut, ending in `...`. `from_compact` reads it
        back (and version 1, which listed every step). The format (version 2;
        `"v"`):

        - `v`: 2; `id`: the saga id (left out with `saga_id=False`);
          `s`: the saga status code; `t`: `started_at`, epoch seconds;
          `n`: how many steps the saga registered;
          `e`: the saga's error, `[type, message]`, or the `seq` of the listed
          step whose error it is (that step's error is then null with
          `error=False`); `x`: 1 if cancelled;
          `st`: the listed steps; `u`: the other steps, `{undo status code:
          how many}` (`st` and `u` left out when empty).
        - a listed step: `[seq, name, status, undo_name, undo_status,
          undo_order, attempts, error_type, error_message, undo_attempts,
          undo_error_type, undo_error_message, result, kind, resolutions]`,
          trailing nulls left out; `undo_name` is null when it is the step's
          name, `undo_status` null when the step has no undo; `resolutions`
          the operators' decisions on a parked undo, `[[action, reason], ...]`
          (`reason` left out when none given).
        - status codes: saga `r` running, `s` succeeded, `g` compensating,
          `c` compensated, `f` compensation failed, `m` committed and
          failed, `w` parked; step kind null compensatable, `p` pivot, `r`
          retriable; step `r` running, `s` succeeded, `f` failed, `x`
          cancelled; undo `n` none, `p` pending, `r` running, `c`
          compensated, `f` failed, `k` skipped, `u` not needed, `w` parked,
          `h` done by hand.

        Args:
            saga_id: Keep the saga id; on Temporal it is the workflow's own
                `workflow_id/run_id`, which the history already holds.
            error: Keep the error of the step the saga failed at. On Temporal
                it is the failure's cause, which the history already holds;
                `from_compact(..., error=)` puts it back.
        """
        out: dict[str, Any] = {
            "v": COMPACT_VERSION,
            "s": _SAGA_CODES[self.status],
            "t": int(self.started_at.timestamp() // 1),
            "n": len(self.steps),
        }
        if saga_id:
            out["id"] = self.saga_id
        listed: list[list[Any]] = []
        others: dict[str, int] = {}
        for s in self.steps:
            if _goes_without_saying(s):
                code = "n" if s.undo is None else _UNDO_CODES[s.undo.status]
                others[code] = others.get(code, 0) + 1
            else:
                listed.append(_compact_step(s))
        if self.error is not None:
            saga_error = _compact_error(self.error)
            # Usually the saga failed with a step's error: name the step, not the error again.
            same = next((s for s in listed if s[7:9] == saga_error), None)
            if same is None:
                out["e"] = saga_error
            else:
                out["e"] = same[0]
                if not error:
                    same[7:9] = [None, None]
                    _trim(same)
        if self.cancelled:
            out["x"] = 1
        if listed:
            out["st"] = listed
        if others:
            out["u"] = others
        return out

    @classmethod
    def from_compact(
        cls,
        data: Mapping[str, Any],
        *,
        saga_id: str | None = None,
        error: ErrorInfo | None = None,
    ) -> SagaReport:
        """Read back what `to_compact` made (version 2, or version 1).

        Only the steps the compact form lists are in `steps`; `omitted` counts
        the others. Timestamps other than `started_at` (whole seconds) are
        `None`, error messages stay as cut, and a resolution keeps only its
        action and reason.

        Args:
            data: The compact dict, e.g. a `SagaFailed` failure's `details[0]`.
            saga_id: The saga id, where `data` holds none (else `""`).
            error: The error of the step the saga failed at, where `data`
                leaves it out (`to_compact(error=False)`; on Temporal, the
                failure's cause); its message is cut as the others. Else
                that step's error and the saga's are `None`.

        Raises:
            ValueError: `data` is not a compact report of a version this
                sagakit reads.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"a compact report is a dict, not {type(data).__name__}")
        version = data.get("v")
        if version not in (1, COMPACT_VERSION):
            raise ValueError(
                f"unsupported compact report version {version!r} "
                f"(this sagakit reads versions 1 and {COMPACT_VERSION})"
            )
        try:
            steps = [_step_from_compact(s) for s in data.get("st", ())]
            saga_error: ErrorInfo | None = None
            raw = data.get("e")
            if isinstance(raw, list):
                saga_error = ErrorInfo(type=raw[0], message=raw[1])
            elif isinstance(raw, int) and not isinstance(raw, bool):
                at = next(i for i, s in enumerate(steps) if s.seq == raw)
                saga_error = steps[at].error
                if saga_error is None and error is not None:  # left out: given back here
                    saga_error = ErrorInfo(type=error.type, message=_cut(error.message))
                    steps[at] = steps[at].model_copy(update={"error": saga_error})
            elif raw is not None:
                raise ValueError(f"'e' is neither [type, message] nor a step's seq: {raw!r}")
            omitted = OmittedSteps()  # version 1 listed every step
            if version != 1:
                undos = {_UNDO_STATUSES[k]: int(v) for k, v in data.get("u", {}).items()}
                if any(n < 1 for n in undos.values()):
                    raise ValueError(f"'u' counts steps, each at least 1: {data['u']!r}")
                omitted = OmittedSteps(count=sum(undos.values()), undos=undos)
                if omitted.count + len(steps) != data["n"]:
                    raise ValueError(
                        f"{data['n']} steps, but {len(steps)} listed and {omitted.count} counted"
                    )
            return cls(
                saga_id=data.get("id", saga_id if saga_id is not None else ""),
                status=_SAGA_STATUSES[data["s"]],
                started_at=datetime.fromtimestamp(data["t"], UTC),
                error=saga_error,
                cancelled=bool(data.get("x", 0)),
                steps=steps,
                omitted=omitted,
            )
        except (KeyError, IndexError, TypeError, StopIteration, ValueError) as e:
            raise ValueError(f"malformed compact report: {e!r}") from e

    def timeline(self, *, color: bool | None = None) -> str:
        """The run as text: each do and each undo in the order they started.

        Args:
            color: ANSI colours; `None` colours only when stdout is a TTY and
                `NO_COLOR` is unset.
        """
        if color is None:
            color = _stdout_is_tty() and "NO_COLOR" not in os.environ
        return render_timeline(self, color=color)

    def mermaid(self) -> str:
        """The run as a Mermaid sequence diagram, for docs and pull requests."""
        return render_mermaid(self)


COMPACT_VERSION: Final = 2
"""Format version of `SagaReport.to_compact` (`from_compact` also reads version 1)."""

MESSAGE_CAP: Final = 200
"""Longest error message `SagaReport.to_compact` keeps, in characters."""

_SAGA_CODES: Final = {
    SagaStatus.RUNNING: "r",
    SagaStatus.SUCCEEDED: "s",
    SagaStatus.COMPENSATING: "g",
    SagaStatus.COMPENSATED: "c",
    SagaStatus.COMPENSATION_FAILED: "f",
    SagaStatus.COMMITTED_FAILED: "m",
    SagaStatus.PARKED: "w",
}
_KIND_CODES: Final = {StepKind.PIVOT: "p", StepKind.RETRIABLE: "r"}
_KINDS: Final = {v: k for k, v in _KIND_CODES.items()}
_STEP_CODES: Final = {
    StepStatus.RUNNING: "r",
    StepStatus.SUCCEEDED: "s",
    StepStatus.FAILED: "f",
    StepStatus.CANCELLED: "x",
}
_UNDO_CODES: Final = {
    UndoStatus.NONE: "n",
    UndoStatus.PENDING: "p",
    UndoStatus.RUNNING: "r",
    UndoStatus.COMPENSATED: "c",
    UndoStatus.FAILED: "f",
    UndoStatus.SKIPPED: "k",
    UndoStatus.NOT_NEEDED: "u",
    UndoStatus.PARKED: "w",
    UndoStatus.DONE_BY_HAND: "h",
}
_SAGA_STATUSES: Final = {v: k for k, v in _SAGA_CODES.items()}
_STEP_STATUSES: Final = {v: k for k, v in _STEP_CODES.items()}
_UNDO_STATUSES: Final = {v: k for k, v in _UNDO_CODES.items()}


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_CAP else message[: MESSAGE_CAP - 3] + "..."


def _compact_error(error: ErrorInfo) -> list[Any]:
    return [error.type, _cut(error.message)]


# The undo statuses of a step that goes without saying, when its do succeeded.
_USUAL_UNDOS: Final = (UndoStatus.NONE, UndoStatus.PENDING, UndoStatus.COMPENSATED)


def _goes_without_saying(step: StepReport) -> bool:
    """Whether the compact form may count `step` instead of listing it."""
    undo = step.undo
    return (
        step.status is StepStatus.SUCCEEDED
        and step.error is None
        and step.kind is not StepKind.PIVOT
        and (
            undo is None
            or (undo.status in _USUAL_UNDOS and undo.error is None and not undo.resolutions)
        )
    )


def _compact_step(step: StepReport) -> list[Any]:
    # What every step has comes first, what failures have last: trimming the
    # trailing nulls then leaves most steps at six short items.
    undo = step.undo
    row: list[Any] = [step.seq, step.name, _STEP_CODES[step.status]]
    if undo is None:
        row += [None, None, None]
    else:
        row += [None if undo.name == step.name else undo.name, _UNDO_CODES[undo.status], undo.order]
    row.append(step.attempts)
    row += [None, None] if step.error is None else _compact_error(step.error)
    if undo is None:
        row += [None, None, None]
    else:
        row.append(undo.attempts)
        row += [None, None] if undo.error is None else _compact_error(undo.error)
    row.append(step.result)
    row.append(_KIND_CODES.get(step.kind))
    resolutions = None if undo is None else undo.resolutions
    row.append(
        [[r.action] if r.reason is None else [r.action, r.reason] for r in resolutions]
        if resolutions
        else None
    )
    return _trim(row)


def _trim(row: list[Any]) -> list[Any]:
    """`row` without its trailing nulls (a listed step's first item, its seq, is never null)."""
    while row[-1] is None:
        row.pop()
    return row


def _step_from_compact(row: list[Any]) -> StepReport:
    row = [*row, *[None] * (15 - len(row))]
    (seq, name, status, u_name, u_status, u_order) = row[:6]
    (attempts, e_type, e_msg, u_attempts, u_type, u_msg, result, kind, resolved) = row[6:15]
    undo = None
    if u_status is not None:
        undo = UndoReport(
            name=name if u_name is None else u_name,
            status=_UNDO_STATUSES[u_status],
            order=u_order,
            attempts=u_attempts,
            error=None if u_type is None else ErrorInfo(type=u_type, message=u_msg),
            resolutions=[
                Resolution(action=r[0], reason=r[1] if len(r) > 1 else None) for r in resolved or ()
            ],
        )
    return StepReport(
        seq=seq,
        name=name,
        status=_STEP_STATUSES[status],
        kind=StepKind.COMPENSATABLE if kind is None else _KINDS[kind],
        attempts=attempts,
        error=None if e_type is None else ErrorInfo(type=e_type, message=e_msg),
        result=result,
        undo=undo,
    )


def _stdout_is_tty() -> bool:
    import sys

    return bool(getattr(sys.stdout, "isatty", lambda: False)())


def to_datetime(t: float | None) -> datetime | None:
    """A backend clock reading as an aware UTC datetime."""
    return None if t is None else datetime.fromtimestamp(t, UTC)


# -- renderings: a terminal timeline and a Mermaid diagram ---------------------

_GREEN, _RED, _YELLOW, _DIM, _BOLD, _RESET = (
    "\033[32m",
    "\033[31m",
    "\033[33m",
    "\033[2m",
    "\033[1m",
    "\033[0m",
)

_MARK = {
    StepStatus.SUCCEEDED: ("✔", _GREEN),
    StepStatus.FAILED: ("✘", _RED),
    StepStatus.CANCELLED: ("⊘", _YELLOW),
    StepStatus.RUNNING: ("…", _YELLOW),
    UndoStatus.COMPENSATED: ("↺", _GREEN),
    UndoStatus.FAILED: ("✘", _RED),
    UndoStatus.SKIPPED: ("⊘", _YELLOW),
    UndoStatus.NOT_NEEDED: ("·", _DIM),
    UndoStatus.RUNNING: ("…", _YELLOW),
    UndoStatus.PARKED: ("‖", _RED),
    UndoStatus.DONE_BY_HAND: ("✓", _YELLOW),
}

_SAGA_COLOUR = {
    SagaStatus.SUCCEEDED: _GREEN,
    SagaStatus.COMPENSATED: _YELLOW,
    SagaStatus.COMPENSATION_FAILED: _RED,
    SagaStatus.COMMITTED_FAILED: _RED,
    SagaStatus.PARKED: _RED,
}


def _secs(a: datetime | None, b: datetime | None) -> str:
    if a is None or b is None:
        return "   -   "
    d = (b - a).total_seconds()
    return f"{d * 1000:6.0f}ms" if d < 1 else f"{d:6.2f}s "


def _attempts(n: int | None) -> str:
    return "" if n is None or n == 1 else f" ({n} attempts)"


def render_timeline(report: SagaReport, *, color: bool = False) -> str:
    """Each do and each undo, in the order they started, with status, attempts and duration.

    A report read back from its compact form has no step times: its rows are
    in step order, then undo order, without time columns, followed by the
    steps it counts but does not list, and a line saying what it does not
    carry. Nothing it does not know is shown as if it did.
    """

    def paint(text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if color else text

    t0 = report.started_at
    timed = any(s.started_at is not None for s in report.steps)

    def when(start: datetime | None, end: datetime | None) -> tuple[str, str]:
        # (offset column, duration column); neither when the report carries no times.
        if not timed:
            return "  ", ""
        return f"{_offset(t0, start or t0)}  ", _secs(start, end)

    width = max(
        [24]
        + [len(_kind_label(s)) for s in report.steps]
        + [len(_undo_label(s.name, s.undo.name)) for s in report.steps if s.undo is not None]
    )
    rows: list[tuple[datetime, int, str]] = []
    for s in report.steps:
        mark, colour = _MARK.get(s.status, ("?", ""))
        err = f"  {s.error.type}: {s.error.message}" if s.error else ""
        start = s.started_at or t0
        offset, duration = when(s.started_at, s.ended_at)
        line = (
            f"{offset}{paint(mark, colour)} do   "
            f"{s.seq:>3}. {_kind_label(s):<{width}} {paint(f'{s.status.value:<11}', colour)} "
            f"{duration}{_attempts(s.attempts)}"
            f"{paint(err, _RED) if err else ''}"
        )
        rows.append((start, 2 * s.seq, line.rstrip()))
        u = s.undo
        if u is None or u.status in (UndoStatus.PENDING, UndoStatus.NONE):
            continue
        mark, colour = _MARK.get(u.status, ("?", ""))
        err = f"  {u.error.type}: {u.error.message}" if u.error else ""
        ustart = u.started_at or report.ended_at or start
        offset, duration = when(u.started_at or ustart, u.ended_at)
        line = (
            f"{offset}{paint(mark, colour)} undo "
            f"{s.seq:>3}. {_undo_label(s.name, u.name):<{width}} "
            f"{paint(f'{u.status.value:<11}', colour)} "
            f"{duration}{_attempts(u.attempts)}"
            f"{paint(err, _RED) if err else ''}"
        )
        # Skipped undos never started: list them after the ones that ran.
        order = 10**9 + 2 * (u.order or 10**6)
        rows.append((ustart, order, line.rstrip()))
        # Each time it parked and an operator decided, at the time the decision arrived.
        for r in u.resolutions:
            at = r.at or ustart
            offset, _ = when(at, None)
            what = paint(f"parked, then {r.action}", _YELLOW)
            line = (
                f"{offset}{paint('‖', _YELLOW)} undo {s.seq:>3}. "
                f"{_undo_label(s.name, u.name):<{width}} {what}"
                + (f" by {r.by}" if r.by else "")
                + (f": {r.reason}" if r.reason else "")
            )
            rows.append((at, order - 1, line))
    rows.sort(key=lambda r: (r[0], r[1]))
    status = paint(report.status.value.upper(), _SAGA_COLOUR.get(report.status, ""))
    head = f"saga {report.saga_id}  {status}" if report.saga_id else f"saga  {status}"
    if report.cancelled:
        head += paint("  (cancelled)", _YELLOW)
    if report.ended_at is not None:
        head += f"  in {_secs(report.started_at, report.ended_at).strip()}"
    lines = [paint(head, _BOLD) if not color else head]
    if report.error is not None:
        lines.append(paint(f"  cause: {report.error.type}: {report.error.message}", _DIM))
    lines += [r[2] for r in rows]
    omitted = report.omitted
    if omitted is not None and omitted.count:
        counts = ", ".join(
            f"{n} {_OMITTED_LABEL.get(status, status.value)}"
            for status, n in sorted(omitted.undos.items(), key=lambda kv: -kv[1])
        )
        many = "s" if omitted.count > 1 else ""
        lines.append(
            paint(
                f"  … {omitted.count} more step{many} not listed, each do succeeded: {counts}", _DIM
            )
        )
    if omitted is not None:
        missing = [
            *([] if report.saga_id else ["no saga id"]),
            *([] if timed else ["no step times"]),
            *(["steps that went as planned only counted"] if omitted and omitted.count else []),
        ]
        if missing:
            lines.append(paint(f"  (from a compact report: {'; '.join(missing)})", _DIM))
    return "\n".join(lines)


_OMITTED_LABEL = {
    UndoStatus.COMPENSATED: "compensated",
    UndoStatus.PENDING: "with its undo pending",
    UndoStatus.NONE: "with no undo",
}


def _kind_label(step: StepReport) -> str:
    return step.name if step.kind is StepKind.COMPENSATABLE else f"{step.name} [{step.kind.value}]"


def _undo_label(step: str, undo: str) -> str:
    return step if undo == step else f"{step} ({undo})"


def _offset(t0: datetime, t: datetime) -> str:
    d = (t - t0).total_seconds()
    return f"+{d:8.3f}s"


def _id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "step"


def render_mermaid(report: SagaReport) -> str:
    """A Mermaid sequence diagram: the saga calling each do, then each undo that ran."""
    lines = ["sequenceDiagram", "    participant S as Saga"]
    seen: set[str] = set()
    for s in report.steps:
        pid = _id(s.name)
        if pid not in seen:
            seen.add(pid)
            lines.append(f"    participant {pid} as {s.name}")
    for s in report.steps:
        pid = _id(s.name)
        kind = "" if s.kind is StepKind.COMPENSATABLE else f" ({s.kind.value})"
        lines.append(f"    S->>{pid}: do #{s.seq}{kind}")
        if s.status is StepStatus.SUCCEEDED:
            lines.append(f"    {pid}-->>S: ok{_attempts(s.attempts)}")
        else:
            err = f" {s.error.type}" if s.error else ""
            lines.append(f"    {pid}--xS: {s.status.value}{err}")
    undone = sorted(
        (s for s in report.steps if s.undo is not None and s.undo.order is not None),
        key=lambda s: s.undo.order or 0,  # type: ignore[union-attr]
    )
    if undone:
        lines.append(f"    Note over S: unwinding ({report.status.value})")
    for s in undone:
        pid = _id(s.name)
        u = s.undo
        assert u is not None
        lines.append(f"    S->>{pid}: undo {u.name}")
        if u.status is UndoStatus.COMPENSATED:
            lines.append(f"    {pid}-->>S: compensated{_attempts(u.attempts)}")
        else:
            err = f" {u.error.type}" if u.error else ""
            lines.append(f"    {pid}--xS: {u.status.value}{err}")
    return "\n".join(lines)
