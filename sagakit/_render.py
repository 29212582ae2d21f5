"""Renderings of a `SagaReport`: a terminal timeline and a Mermaid diagram."""

from __future__ import annotations

from datetime import datetime

from sagakit._report import SagaReport, SagaStatus, StepStatus, UndoStatus

__all__ = ["render_mermaid", "render_timeline"]

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
    UndoStatus.RUNNING: ("…", _YELLOW),
}

_SAGA_COLOUR = {
    SagaStatus.SUCCEEDED: _GREEN,
    SagaStatus.COMPENSATED: _YELLOW,
    SagaStatus.COMPENSATION_FAILED: _RED,
}


def _secs(a: datetime | None, b: datetime | None) -> str:
    if a is None or b is None:
        return "   -   "
    d = (b - a).total_seconds()
    return f"{d * 1000:6.0f}ms" if d < 1 else f"{d:6.2f}s "


def _attempts(n: int | None) -> str:
    return "" if n is None or n == 1 else f" ({n} attempts)"


def render_timeline(report: SagaReport, *, color: bool = False) -> str:
    """Each do and each undo, in the order they started, with status, attempts and duration."""

    def paint(text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if color else text

    t0 = report.started_at
    width = max(
        [24]
        + [len(s.name) for s in report.steps]
        + [len(_undo_label(s.name, s.undo.name)) for s in report.steps if s.undo is not None]
    )
    rows: list[tuple[datetime, int, str]] = []
    for s in report.steps:
        mark, colour = _MARK.get(s.status, ("?", ""))
        err = f"  {s.error.type}: {s.error.message}" if s.error else ""
        start = s.started_at or t0
        line = (
            f"{_offset(t0, start)}  {paint(mark, colour)} do   "
            f"{s.seq:>3}. {s.name:<{width}} {paint(f'{s.status.value:<11}', colour)} "
            f"{_secs(s.started_at, s.ended_at)}{_attempts(s.attempts)}"
            f"{paint(err, _RED) if err else ''}"
        )
        rows.append((start, 2 * s.seq, line))
        u = s.undo
        if u is None or u.status in (UndoStatus.PENDING, UndoStatus.NONE):
            continue
        mark, colour = _MARK.get(u.status, ("?", ""))
        err = f"  {u.error.type}: {u.error.message}" if u.error else ""
        ustart = u.started_at or report.ended_at or start
        line = (
            f"{_offset(t0, ustart)}  {paint(mark, colour)} undo "
            f"{s.seq:>3}. {_undo_label(s.name, u.name):<{width}} "
            f"{paint(f'{u.status.value:<11}', colour)} "
            f"{_secs(u.started_at, u.ended_at)}{_attempts(u.attempts)}"
            f"{paint(err, _RED) if err else ''}"
        )
        # Skipped undos never started: list them after the ones that ran.
        rows.append((ustart, 10**9 + (u.order or 10**6), line))
    rows.sort(key=lambda r: (r[0], r[1]))
    status = paint(report.status.value.upper(), _SAGA_COLOUR.get(report.status, ""))
    head = f"saga {report.saga_id}  {status}"
    if report.cancelled:
        head += paint("  (cancelled)", _YELLOW)
    if report.ended_at is not None:
        head += f"  in {_secs(report.started_at, report.ended_at).strip()}"
    lines = [paint(head, _BOLD) if not color else head]
    if report.error is not None:
        lines.append(paint(f"  cause: {report.error.type}: {report.error.message}", _DIM))
    lines += [r[2] for r in rows]
    return "\n".join(lines)


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
        lines.append(f"    S->>{pid}: do #{s.seq}")
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
