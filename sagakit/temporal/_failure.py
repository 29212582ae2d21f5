"""The report a failed saga leaves in its workflow's failure, and reading it back.

`TemporalExecutor.run` fails the run with an `ApplicationError` of type
`SagaFailed` whose `details[0]` is `encode(report)`: every step and every undo,
as positional rows, up to `SIZE_CAP` bytes. `report_from_failure` reads it back.

Format, version 3 (keys of the dict):

- `v`: 3; `s`: the saga status code; `t`: `started_at`, epoch milliseconds;
  `d`: `ended_at - started_at`, milliseconds (left out while running);
  `n`: how many steps the saga registered; `dl`: the deadline, milliseconds
  from `t`, and `dx`: 1 if it passed (both left out without a deadline); `e`: the saga's error,
  `[type, message]`, or the `seq` of the step whose error it is (that step's
  error is then null when the failure's cause holds it); `x`: 1 if cancelled;
  `st`: the steps, one row each, in `seq` order; past the cap only, `o`: the
  `seq`s left out, as `[first, last]` ranges, and `u`: how many of them per
  undo status code. No saga id: it is the workflow's own `workflow_id/run_id`.
- a step row: `[seq, name, codes, undo_order, undo_name, attempts, error,
  undo_attempts, undo_error, result, resolutions]`, trailing nulls left out.
  `codes` is the do's status code, the undo's status code (`n` for no undo),
  then the kind code unless the step is compensatable: `"sc"` a do that
  succeeded and an undo that compensated, `"snp"` a pivot that succeeded.
  `undo_name` is null when it is the step's name; an error is `[type,
  message]`, messages cut at 200 characters (ending in `...`); `result` is the
  do's result (`SagaOptions(record_values=True)` only); `resolutions` the
  operators' decisions on a parked undo, `[[action, reason, by, at], ...]`,
  `at` in milliseconds from `t`, trailing nulls left out. Three trailing
  fields came later in version 3 (rows without them read as `None`): `sub`,
  the index in `sb` of the sub-saga the step belongs to; `carried`, for a
  step an undo plan carried from another run, the idempotency key its do saw,
  as `[index in cr, seq]` (or the key itself when it is not `saga_id#seq`);
  `after`, the undo's `UndoReport.after` when it ran before the saga's last
  step was registered (a failed sub-saga's undo), else left out (read as `n`
  for an undo that started).
- `sb`: the sub-saga paths the rows name (`"hotels"`, `"hotels/rooms"`), each
  once; `cr`: the saga ids of the runs carried steps come from, each once
  (both left out when no row needs them).
- status codes: saga `r` running, `s` succeeded, `g` compensating, `c`
  compensated, `f` compensation failed, `m` committed and failed, `w` parked;
  do `r` running, `s` succeeded, `f` failed, `x` cancelled; undo `n` none,
  `p` pending, `r` running, `c` compensated, `f` failed, `k` skipped, `u` not
  needed, `w` parked, `h` done by hand; kind `p` pivot, `r` retriable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import temporalio.exceptions

from sagakit._exceptions import cut, describe
from sagakit._report import (
    ErrorInfo,
    OmittedSteps,
    Resolution,
    SagaReport,
    SagaStatus,
    StepKind,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
)
from sagakit._status import runs

__all__ = [
    "FORMAT_VERSION",
    "MESSAGE_CAP",
    "SAGA_FAILED_TYPE",
    "SIZE_CAP",
    "STEP_FAILURES",
    "decode",
    "encode",
    "explain",
    "report_from_failure",
]

SAGA_FAILED_TYPE: Final = "SagaFailed"
"""`ApplicationError.type` of the failure a failed saga ends its workflow run with."""

# How an activity or child workflow step fails; the error inside is its cause.
STEP_FAILURES = (temporalio.exceptions.ActivityError, temporalio.exceptions.ChildWorkflowError)


def explain(exc: BaseException) -> tuple[str, str]:
    """(type, message) of an error, seen through `ActivityError` / `ChildWorkflowError`.

    The same in the workflow and, from the failure in the history, in a client.
    """
    inner = exc
    while isinstance(inner, STEP_FAILURES) and inner.cause is not None:
        inner = inner.cause
    if isinstance(inner, temporalio.exceptions.TimeoutError):
        return "TimeoutError", f"{inner.type.name if inner.type else 'unknown'} timeout"
    return describe(inner)


FORMAT_VERSION: Final = 3
"""Version `encode` writes; `decode` also reads 1 and 2."""

MESSAGE_CAP: Final = 200
"""Longest error message kept, in characters."""

SIZE_CAP: Final = 512 * 1024
"""Most bytes of JSON the encoded report may take before steps are left out.

A quarter of the 2 MiB Temporal allows the failure (its message, cause and
stack traces travel with it). A 1,000-step saga fits whole even when every
do and undo failed with a 200-character message (about 0.5 KB a step); a
usual one, each step succeeded and compensated, takes 20-50 bytes a step.
"""

_SAGA_CODES: Final = {
    SagaStatus.RUNNING: "r",
    SagaStatus.SUCCEEDED: "s",
    SagaStatus.COMPENSATING: "g",
    SagaStatus.COMPENSATED: "c",
    SagaStatus.COMPENSATION_FAILED: "f",
    SagaStatus.COMMITTED_FAILED: "m",
    SagaStatus.PARKED: "w",
}
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
_KIND_CODES: Final = {StepKind.COMPENSATABLE: "", StepKind.PIVOT: "p", StepKind.RETRIABLE: "r"}
_SAGA_STATUSES: Final = {v: k for k, v in _SAGA_CODES.items()}
_STEP_STATUSES: Final = {v: k for k, v in _STEP_CODES.items()}
_UNDO_STATUSES: Final = {v: k for k, v in _UNDO_CODES.items()}
_KINDS: Final = {v: k for k, v in _KIND_CODES.items()}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

# The undo statuses of a step that went as planned, when its do succeeded.
_USUAL_UNDOS: Final = (UndoStatus.NONE, UndoStatus.PENDING, UndoStatus.COMPENSATED)


def encode(report: SagaReport, *, cause_tells: bool = False, cap: int = SIZE_CAP) -> dict[str, Any]:
    """`report` as a failure's `details[0]`: every step, unless past `cap` (see the module).

    Args:
        report: The saga's report.
        cause_tells: The failure's cause is the error of the step the saga
            failed at (an `ActivityError` or `ChildWorkflowError`): that
            step's error is left out, and `decode(..., error=)` puts it back.
        cap: Most bytes of JSON; past it the steps that went as planned are
            left out first, from the last, then the others, and `o` and `u`
            say which and how many.
    """
    t0 = _ms(report.started_at)
    out: dict[str, Any] = {"v": FORMAT_VERSION, "s": _SAGA_CODES[report.status], "t": t0}
    if report.ended_at is not None:
        out["d"] = _ms(report.ended_at) - t0
    out["n"] = len(report.steps)
    subs: dict[str, int] = {}
    runs_: dict[str, int] = {}
    rows = [_row(s, t0, subs, runs_, len(report.steps)) for s in report.steps]
    failed_at = None
    if report.error is not None:
        saga_error = _error(report.error)
        # Usually the saga failed with a step's error: name the step, not the error again.
        failed_at = next((i for i, r in enumerate(rows) if r[6] == saga_error), None)
        if failed_at is None:
            out["e"] = saga_error
        else:
            out["e"] = rows[failed_at][0]
            if cause_tells:
                rows[failed_at][6] = None
    if report.cancelled:
        out["x"] = 1
    if report.deadline is not None:
        out["dl"] = _ms(report.deadline) - t0
        if report.deadline_passed:
            out["dx"] = 1
    if subs:
        out["sb"] = list(subs)
    if runs_:
        out["cr"] = list(runs_)
    rows = [_trim(r) for r in rows]
    if rows:
        out["st"] = rows
    if _size(out) > cap:
        _cut_rows(out, report, rows, failed_at, cap)
    return out


def _cut_rows(
    out: dict[str, Any],
    report: SagaReport,
    rows: list[list[Any]],
    failed_at: int | None,
    cap: int,
) -> None:
    """Keep the rows that fit in `cap`: the failed step's, the unusual, then the usual ones."""
    steps = report.steps
    order = sorted(range(len(rows)), key=lambda i: (i != failed_at, _went_as_planned(steps[i]), i))
    sizes = [_size(r) + 1 for r in rows]  # each with its comma
    room = cap - _size({k: v for k, v in out.items() if k != "st"}) - 64
    while True:
        left_room, kept = room, set()
        for i in order:
            if sizes[i] <= left_room:
                kept.add(i)
                left_room -= sizes[i]
        out["st"] = [rows[i] for i in sorted(kept)]
        left = [i for i in range(len(rows)) if i not in kept]
        out["o"] = runs(steps[i].seq for i in left)
        undos: dict[str, int] = {}
        for i in left:
            undo = steps[i].undo
            code = "n" if undo is None else _UNDO_CODES[undo.status]
            undos[code] = undos.get(code, 0) + 1
        out["u"] = undos
        if failed_at is not None and failed_at not in kept:
            # `e` named a step left out: the saga's error itself, then.
            out["e"] = _error(report.error)
        excess = _size(out) - cap
        if excess <= 0 or not kept:
            break
        room -= excess  # `o` and `u` took more than reserved: keep less
    if not out["st"]:
        del out["st"]


def _went_as_planned(step: StepReport) -> bool:
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


def _row(
    step: StepReport, t0: int, subs: dict[str, int], runs_: dict[str, int], n: int
) -> list[Any]:
    # What every step has first, what failures have last: once the trailing
    # nulls go, a step that went as planned is four short items.
    undo = step.undo
    codes = _STEP_CODES[step.status] + ("n" if undo is None else _UNDO_CODES[undo.status])
    codes += _KIND_CODES[step.kind]
    row: list[Any] = [step.seq, step.name, codes]
    if undo is None:
        row += [None, None, step.attempts, _error(step.error), None, None]
    else:
        row += [
            undo.order,
            None if undo.name == step.name else undo.name,
            step.attempts,
            _error(step.error),
            undo.attempts,
            _error(undo.error),
        ]
    row.append(step.result)
    resolutions = None if undo is None else undo.resolutions
    row.append(
        [
            _trim(
                [r.action, r.reason, r.by, None if r.at is None else _ms(r.at) - t0],
            )
            for r in resolutions
        ]
        if resolutions
        else None
    )
    row.append(None if step.sub is None else subs.setdefault(step.sub, len(subs)))
    row.append(None if step.carried is None else _carried(step.carried, runs_))
    # Only an undo that ran before the last step: the timeline's order after a sub-saga.
    row.append(
        undo.after if undo is not None and undo.after is not None and undo.after < n else None
    )
    return row


def _carried(key: str, runs_: dict[str, int]) -> Any:
    """A carried step's key as `[run index, seq]`: its run's id is long, and shared."""
    origin, _, seq = key.rpartition("#")
    if not origin or not seq.isdigit() or seq.startswith("0"):
        return key
    return [runs_.setdefault(origin, len(runs_)), int(seq)]


def decode(
    data: Any,
    *,
    saga_id: str | None = None,
    error: ErrorInfo | None = None,
) -> SagaReport:
    """Read back what `encode` made.

    Every step is in `steps` unless the report was cut at the size cap; then
    `omitted` says which steps are left out. `omitted` is set (`count` 0 when nothing is left out):
    the report came from a failure, with no step times. Error messages stay
    as cut.

    Args:
        data: A `SagaFailed` failure's `details[0]`.
        saga_id: The saga id, where `data` holds none (else `""`).
        error: The error of the step the saga failed at, where `data` leaves
            it out (the failure's cause holds it); its message is cut as the
            others. Else that step's error and the saga's are `None`.

    Raises:
        ValueError: `data` is not a report of a version this sagakit reads.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a failure report is a dict, not {type(data).__name__}")
    version = data.get("v")
    if version != FORMAT_VERSION:
        # Versions 1 and 2, before sagakit 0.1 was released, kept too little to read back.
        raise ValueError(
            f"unsupported failure report version {version!r} (this sagakit reads version "
            f"{FORMAT_VERSION}; the workflow's sagakit_report query still tells it all)"
        )
    try:
        t0 = _EPOCH + timedelta(milliseconds=data["t"])
        subs, runs_ = list(data.get("sb", ())), list(data.get("cr", ()))
        steps = [_step(row, t0, subs, runs_, data["n"]) for row in data.get("st", ())]
        ended_at = None if "d" not in data else t0 + timedelta(milliseconds=data["d"])
        saga_error: ErrorInfo | None = None
        raw = data.get("e")
        if isinstance(raw, list):
            saga_error = ErrorInfo(type=raw[0], message=raw[1])
        elif isinstance(raw, int) and not isinstance(raw, bool):
            at = next(i for i, s in enumerate(steps) if s.seq == raw)
            saga_error = steps[at].error
            if saga_error is None and error is not None:  # left out: given back here
                saga_error = ErrorInfo(type=error.type, message=cut(error.message, MESSAGE_CAP))
                steps[at] = steps[at].model_copy(update={"error": saga_error})
        elif raw is not None:
            raise ValueError(f"'e' is neither [type, message] nor a step's seq: {raw!r}")
        omitted = _omitted(data, len(steps))
        return SagaReport(
            saga_id=data.get("id", saga_id if saga_id is not None else ""),
            status=_SAGA_STATUSES[data["s"]],
            started_at=t0,
            ended_at=ended_at,
            error=saga_error,
            cancelled=bool(data.get("x", 0)),
            deadline=None if "dl" not in data else t0 + timedelta(milliseconds=data["dl"]),
            deadline_passed=bool(data.get("dx", 0)),
            steps=steps,
            omitted=omitted,
        )
    except (KeyError, IndexError, TypeError, StopIteration, ValueError, OverflowError) as e:
        raise ValueError(f"malformed failure report: {e!r}") from e


def _omitted(data: Mapping[str, Any], listed: int) -> OmittedSteps:
    undos = {_UNDO_STATUSES[k]: int(v) for k, v in data.get("u", {}).items()}
    if any(n < 1 for n in undos.values()):
        raise ValueError(f"'u' counts steps, each at least 1: {data['u']!r}")
    count = sum(undos.values())
    seqs = [n for first, last in data.get("o", ()) for n in range(first, last + 1)]
    if len(seqs) != count:
        raise ValueError(f"'o' names {len(seqs)} steps, 'u' counts {count}")
    if count + listed != data["n"]:
        raise ValueError(f"{data['n']} steps, but {listed} listed and {count} counted")
    return OmittedSteps(count=count, undos=undos, seqs=seqs)


def _step(row: list[Any], t0: datetime, subs: list[str], runs_: list[str], n: int) -> StepReport:
    row = [*row, *[None] * (14 - len(row))]
    seq, name, codes, u_order, u_name, attempts, err, u_attempts, u_err, result, resolved = row[:11]
    sub, carried, after = row[11:14]
    if isinstance(carried, list):
        origin, number = carried
        carried = f"{runs_[origin]}#{int(number)}"
    elif carried is not None and not isinstance(carried, str):
        raise ValueError(f"a carried step's key is [run, seq] or a string, not {carried!r}")
    undo = None
    if codes[1] != "n":
        undo = UndoReport(
            name=name if u_name is None else u_name,
            status=_UNDO_STATUSES[codes[1]],
            order=u_order,
            # Left out: it started once every step was registered (or never started).
            after=after if after is not None else None if u_order is None else n,
            attempts=u_attempts,
            error=_error_info(u_err),
            resolutions=[_resolution(r, t0) for r in resolved or ()],
        )
    return StepReport(
        seq=seq,
        name=name,
        status=_STEP_STATUSES[codes[0]],
        kind=_KINDS[codes[2:]],
        attempts=attempts,
        error=_error_info(err),
        result=result,
        undo=undo,
        sub=None if sub is None else subs[sub],
        carried=carried,
    )


def _resolution(r: list[Any], t0: datetime) -> Resolution:
    padded: list[Any] = [*r, *[None] * (4 - len(r))]
    action, reason, by, at = padded
    return Resolution(
        action=action,
        reason=reason,
        by=by,
        at=None if at is None else t0 + timedelta(milliseconds=at),
    )


def report_from_failure(err: BaseException, *, saga_id: str | None = None) -> SagaReport | None:
    """The report a failed saga put in its workflow's failure, or `None`.

    Follows the cause chain of `err` — a `WorkflowFailureError`, a
    `ChildWorkflowError`, an `ActivityError` or the `ApplicationError` itself
    — to the first `ApplicationError` of type `SagaFailed`, and decodes its
    `details[0]`. It lists every step and every undo: status, kind, order,
    attempts where known, errors (messages over 200 characters cut), the
    operators' resolutions with who and when, and recorded results. It has
    no step times (every history event has its own): `started_at` and
    `ended_at` are the saga's, to the millisecond. `omitted` is set: past the
    size cap (512 KiB of JSON: far beyond a 1,000-step saga) the failure
    keeps what fits, and `omitted` says which steps it left out, as does the
    timeline. The `sagakit_report` query still serves the full report.

    Example:
        ```python
        try:
            await client.execute_workflow(BookTrip.run, trip, id=..., task_queue=...)
        except WorkflowFailureError as e:
            report = report_from_failure(e)
            if report is not None:
                print(report.timeline())
        ```

    Args:
        err: The error a workflow (or child workflow, or step) failed with.
        saga_id: Fills in `SagaReport.saga_id`, which the failure leaves out:
            it is the workflow's `workflow_id/run_id` (plus `/n` for the n-th
            saga of one run). Else the report's `saga_id` is `""`.

    Returns:
        The report; `None` when no `SagaFailed` is in the chain or it carries
        no report (`report_in_failure=False`).

    Raises:
        ValueError: the details are not a report this sagakit can read.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, temporalio.exceptions.ApplicationError)
            and current.type == SAGA_FAILED_TYPE
        ):
            if not current.details:
                return None
            data = current.details[0]
            cause = current.__cause__
            # The failed step's error is left out of the details: it is the cause.
            error = None
            if cause is not None:
                kind, message = explain(cause)
                error = ErrorInfo(type=kind, message=message)
            return decode(data, saga_id=saga_id, error=error)
        current = current.__cause__
    return None


def _ms(t: datetime) -> int:
    return round(t.timestamp() * 1000)


def _error(error: ErrorInfo | None) -> list[str] | None:
    return None if error is None else [error.type, cut(error.message, MESSAGE_CAP)]


def _error_info(raw: list[str] | None) -> ErrorInfo | None:
    return None if raw is None else ErrorInfo(type=raw[0], message=raw[1])


def _trim(row: list[Any]) -> list[Any]:
    """`row` without its trailing nulls (its first item is never null)."""
    while row[-1] is None:
        row.pop()
    return row


def _size(value: Any) -> int:
    # The bytes temporalio's JSON converter writes, near enough: what it encodes
    # its own way (a dataclass result, say) is measured by its str.
    return len(json.dumps(value, separators=(",", ":"), default=str))
