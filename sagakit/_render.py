"""How a report reads: a terminal timeline and a Mermaid sequence diagram.

`SagaReport.timeline()` and `SagaReport.mermaid()` call these; the models
(`sagakit._report`) know nothing of colours or layout. This module knows the
models only as the protocols below, which name exactly what it reads, so it
imports nothing of `sagakit` but the statuses (`sagakit._status`) and the
models can import it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from sagakit._status import SagaStatus, StepKind, StepStatus, UndoStatus, runs

# Read-only properties where the models' field is a nested model, a container,
# a Literal or frozen: a property member matches covariantly (a `list[StepReport]`
# is a `Sequence[StepView]`), where a plain attribute would have to match exactly.


class ErrorView(Protocol):
    """An error as a rendering reads it (`ErrorInfo`)."""

    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...


class ResolutionView(Protocol):
    """An operator's decision on a parked undo as a rendering reads it (`Resolution`)."""

    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def by(self) -> str | None: ...
    @property
    def at(self) -> datetime | None: ...


class UndoView(Protocol):
    """A step's undo as a rendering reads it (`UndoReport`)."""

    status: UndoStatus
    name: str
    order: int | None
    after: int | None
    attempts: int | None
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def error(self) -> ErrorView | None: ...
    @property
    def resolutions(self) -> Sequence[ResolutionView]: ...


class StepView(Protocol):
    """A step as a rendering reads it (`StepReport`)."""

    seq: int
    name: str
    status: StepStatus
    kind: StepKind
    attempts: int | None
    started_at: datetime | None
    ended_at: datetime | None
    sub: str | None
    carried: str | None

    @property
    def error(self) -> ErrorView | None: ...
    @property
    def undo(self) -> UndoView | None: ...


class OmittedView(Protocol):
    """The steps a report counts but does not list, as a rendering reads them (`OmittedSteps`)."""

    @property
    def count(self) -> int: ...
    @property
    def undos(self) -> Mapping[UndoStatus, int]: ...
    @property
    def seqs(self) -> Sequence[int]: ...


class ReportView(Protocol):
    """A saga run as a rendering reads it (`SagaReport`)."""

    saga_id: str
    status: SagaStatus
    started_at: datetime
    ended_at: datetime | None
    cancelled: bool
    deadline: datetime | None
    deadline_passed: bool

    @property
    def error(self) -> ErrorView | None: ...
    @property
    def steps(self) -> Sequence[StepView]: ...
    @property
    def omitted(self) -> OmittedView | None: ...


def use_color(color: bool | None) -> bool:
    """`color` as given, or (`None`) whether stdout is a TTY and `NO_COLOR` is unset."""
    if color is not None:
        return color
    return bool(getattr(sys.stdout, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ


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


def render_timeline(report: ReportView, *, color: bool = False) -> str:
    """Each do and each undo, in the order they started, with status, attempts and duration.

    A report read back from a workflow failure has no step times: its rows are
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
        + [len(_undo_label(s)) for s in report.steps if s.undo is not None]
    )
    # Sorted by start, then by place in the run: a do by its seq; an undo after the
    # do of the last step registered when it started (a failed sub-saga's undos come
    # before the steps after it), in undo order; skipped undos, which never started,
    # after the ones that ran.
    rows: list[tuple[datetime, int, int, str]] = []
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
            f"{paint(f'  carried: {s.carried}', _DIM) if s.carried else ''}"
        )
        rows.append((start, 2 * s.seq, 0, line.rstrip()))
        u = s.undo
        if u is None or u.status in (UndoStatus.PENDING, UndoStatus.NONE):
            continue
        mark, colour = _MARK.get(u.status, ("?", ""))
        err = f"  {u.error.type}: {u.error.message}" if u.error else ""
        # Untimed (read back from a failure), every row is at t0 and sorts by its place.
        ustart = u.started_at or (t0 if not timed else report.ended_at or start)
        offset, duration = when(u.started_at or ustart, u.ended_at)
        line = (
            f"{offset}{paint(mark, colour)} undo "
            f"{s.seq:>3}. {_undo_label(s):<{width}} "
            f"{paint(f'{u.status.value:<11}', colour)} "
            f"{duration}{_attempts(u.attempts)}"
            f"{paint(err, _RED) if err else ''}"
        )
        place = 2 * u.after + 1 if u.after is not None else 10**9
        order = 2 * (u.order or 10**6)
        rows.append((ustart, place, order, line.rstrip()))
        # Each time it parked and an operator decided, at the time the decision arrived.
        for r in u.resolutions:
            # Untimed (read back from a failure), a decision still goes next to its undo.
            at = r.at if timed and r.at is not None else ustart
            offset, _ = when(at, None)
            what = paint(f"parked, then {r.action}", _YELLOW)
            line = (
                f"{offset}{paint('‖', _YELLOW)} undo {s.seq:>3}. "
                f"{_undo_label(s):<{width}} {what}"
                + (f" by {r.by}" if r.by else "")
                + (f": {r.reason}" if r.reason else "")
            )
            rows.append((at, place, order - 1, line))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    status = paint(report.status.value.upper(), _SAGA_COLOUR.get(report.status, ""))
    head = f"saga {report.saga_id}  {status}" if report.saga_id else f"saga  {status}"
    if report.cancelled:
        head += paint("  (cancelled)", _YELLOW)
    if report.ended_at is not None:
        head += f"  in {_secs(report.started_at, report.ended_at).strip()}"
    if report.deadline is not None:
        due = _secs(report.started_at, report.deadline).strip()
        if report.deadline_passed:
            head += paint(f"  (deadline passed at +{due})", _RED)
        else:
            head += f"  (deadline +{due})"
    lines = [paint(head, _BOLD) if not color else head]
    if report.error is not None:
        lines.append(paint(f"  cause: {report.error.type}: {report.error.message}", _DIM))
    lines += [r[3] for r in rows]
    omitted = report.omitted
    if omitted is not None and omitted.count:
        counts = ", ".join(
            f"{n} {_OMITTED_LABEL.get(status, status.value)}"
            for status, n in sorted(omitted.undos.items(), key=lambda kv: -kv[1])
        )
        many = "s" if omitted.count > 1 else ""
        if omitted.seqs:  # cut at the failure's size cap
            what = f"steps {_ranges(omitted.seqs)}, past the failure's size cap"
        else:  # an earlier build's failure, which listed only the unusual steps
            what = "each do succeeded"
        lines.append(
            paint(f"  … {omitted.count} more step{many} not listed ({what}): {counts}", _DIM)
        )
    if omitted is not None:
        missing = [
            *([] if report.saga_id else ["no saga id"]),
            *([] if timed else ["no step times"]),
            *(
                [f"{omitted.count} step{'s' if omitted.count > 1 else ''} left out"]
                if omitted.count
                else []
            ),
        ]
        if missing:
            lines.append(
                paint(f"  (read back from a workflow failure: {'; '.join(missing)})", _DIM)
            )
    return "\n".join(lines)


def _ranges(seqs: Sequence[int]) -> str:
    """`[1, 2, 3, 7]` as `1-3, 7`."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs(seqs))


_OMITTED_LABEL = {
    UndoStatus.COMPENSATED: "compensated",
    UndoStatus.PENDING: "with its undo pending",
    UndoStatus.NONE: "with no undo",
}


def _sub_label(step: StepView) -> str:
    """A sub-saga's step indented by its depth and named by its sub-saga (`  hotels: `)."""
    if step.sub is None:
        return ""
    return "  " * step.sub.count("/") + f"  {step.sub.rpartition('/')[2]}: "


def _kind_label(step: StepView) -> str:
    label = _sub_label(step) + step.name
    return label if step.kind is StepKind.COMPENSATABLE else f"{label} [{step.kind.value}]"


def _undo_label(step: StepView) -> str:
    assert step.undo is not None
    label = _sub_label(step) + step.name
    return label if step.undo.name == step.name else f"{label} ({step.undo.name})"


def _offset(t0: datetime, t: datetime) -> str:
    d = (t - t0).total_seconds()
    return f"+{d:8.3f}s"


def _id(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name) or "step"


def render_mermaid(report: ReportView) -> str:
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
