"""What the core keeps of a run while it goes: the `Run`, and one slotted `Record` per step.

The builder (`_saga.py`) writes them, the unwind (`_unwind.py`) and its
policy read and update them. The pydantic report (`SagaReport`) is built from
them only when asked (a query, a failure, `executor.last_report`), so a step
makes no model. An undo plan (`sagakit._plan`) is read off the records
(`take`) and put back as records of another run (`carry`); the one-line
failure message is read off them too (`failure_message`).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

from pydantic_core import to_jsonable_python

from sagakit._backend import Backend, StepCall
from sagakit._checks import default_name
from sagakit._context import DoOutcome, Phase, StepContext
from sagakit._exceptions import SagaStateError
from sagakit._options import SagaOptions, StepOptions
from sagakit._plan import PlannedUndo, UndoPlan
from sagakit._report import (
    ErrorInfo,
    Resolution,
    SagaReport,
    SagaStatus,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
    to_datetime,
)

__all__ = [
    "OUTCOME",
    "Record",
    "Run",
    "State",
    "carry",
    "failure_message",
    "take",
    "unwound_status",
]

# What an undo is told of its do, by how the do ended (or had not, when the unwind began).
OUTCOME = {
    StepStatus.SUCCEEDED: DoOutcome.SUCCEEDED,
    StepStatus.FAILED: DoOutcome.FAILED,
    StepStatus.CANCELLED: DoOutcome.UNKNOWN,
    StepStatus.RUNNING: DoOutcome.UNKNOWN,
}


class Record:
    """A registered step: its do's call, its undo, and how each has gone so far.

    Errors are kept described (`ErrorInfo`), never as exceptions: an exception's
    traceback holds the frames that hold the saga, and a kept run would keep
    them all (guarded by the `TestMemory` tests of the in-memory executor).
    """

    __slots__ = (
        "call",
        "ended",
        "error",
        "resolutions",
        "result",
        "started",
        "status",
        "stopped",
        "sub",
        "task",
        "undo",
        "undo_after",
        "undo_call",
        "undo_ended",
        "undo_error",
        "undo_order",
        "undo_started",
        "undo_status",
    )

    def __init__(
        self, call: StepCall, undo: Any, started: float | None, task: Any, sub: str | None = None
    ) -> None:
        self.call = call
        self.undo = undo
        self.started = started
        self.sub = sub
        """The sub-saga the step belongs to (its path), or `None`."""
        self.task: asyncio.Task[Any] | None = task
        """The task the do runs in: the unwind cancels it if the do is still in flight."""
        self.status = StepStatus.RUNNING
        self.ended: float | None = None
        self.error: ErrorInfo | None = None
        self.result: Any = None
        self.stopped: asyncio.Future[None] | None = None
        """Made by the unwind when it must wait for this do to stop; set when it has."""
        self.undo_status = UndoStatus.PENDING if undo is not None else UndoStatus.NONE
        self.undo_call: StepCall | None = None
        self.undo_order: int | None = None
        self.undo_after: int | None = None
        self.undo_started: float | None = None
        self.undo_ended: float | None = None
        self.undo_error: ErrorInfo | None = None
        self.resolutions: tuple[Resolution, ...] = ()

    @property
    def seq(self) -> int:
        """The step's registration number, from 1."""
        return self.call.context.seq

    @property
    def name(self) -> str:
        """The step's name."""
        return self.call.context.name

    def to_report(self, record_values: bool) -> StepReport:
        """This step as the report shows it."""
        undo = None
        if self.undo is not None:
            undo = UndoReport(
                name=default_name(self.undo),
                status=self.undo_status,
                attempts=self.undo_call.attempts if self.undo_call is not None else None,
                started_at=to_datetime(self.undo_started),
                ended_at=to_datetime(self.undo_ended),
                error=self.undo_error,
                order=self.undo_order,
                after=self.undo_after,
                resolutions=list(self.resolutions),
            )
        result = to_jsonable_python(self.result, fallback=repr) if record_values else None
        return StepReport(
            seq=self.seq,
            name=self.name,
            status=self.status,
            kind=self.call.options.kind,
            attempts=self.call.attempts,
            started_at=to_datetime(self.started),
            ended_at=to_datetime(self.ended),
            error=self.error,
            result=result,
            undo=undo,
            sub=self.sub,
            carried=self.call.context.key or None,
        )


class State(enum.Enum):
    """Where the saga function stands: open to steps, unwinding, or ended."""

    OPEN = "open"
    UNWINDING = "unwinding"
    CLOSED = "closed"


class Run:
    """One saga run: what the builder records, the unwind reads, a policy acts on."""

    def __init__(self, backend: Backend, options: SagaOptions) -> None:
        self.backend = backend
        """The backend that runs every call."""
        self.options = options
        """The saga-wide options."""
        self.saga_id = backend.saga_id()
        """The run's name (`Backend.saga_id`)."""
        self.records: list[Record] = []
        """Every registered step, in registration order."""
        self.state = State.OPEN
        self.started = backend.time()
        self.ended: float | None = None
        self.error: ErrorInfo | None = None
        """The error the saga function raised, described."""
        self.cancelled = False
        """The saga was cancelled (before or during its unwind)."""
        self.unwound = False
        """The unwind pass has run every undo once."""
        self.undos_started = 0
        """Undos started so far (by the saga's unwind or a sub-saga's): each one's `order`."""
        self.pivot: Record | None = None
        deadline = options.deadline
        self.deadline = None if deadline is None else self.started + deadline.total_seconds()
        """When the deadline is due, on the backend's clock; `None` without one."""
        self.deadline_passed = False
        """The deadline passed before the saga function returned."""
        # Only with a deadline, which waits on them: an Event weighs 861 B (tracemalloc),
        # two of them a fifth of what a cached workflow's saga adds to its heap
        # (bench/temporal_history.py, heap per cached workflow).
        self.settled = asyncio.Event() if deadline is not None else None
        """Set when the saga function has returned or raised: the deadline's timer
        waits on it besides the time."""
        self.pivot_ended = asyncio.Event() if deadline is not None else None
        """Set when the pivot's do ended: a deadline that passed meanwhile waits on it."""
        self.watch: asyncio.Task[None] | None = None
        """The deadline's task (held here: the loop keeps only weak references)."""
        self.cancels_before = 0
        """The saga function's task's pending cancels when the saga started
        (`Task.cancelling()`): the deadline's own cancel comes on top."""
        self.sub_unwinds = 0
        """Failed sub-sagas being unwound now (while the saga function runs)."""
        self.subs: dict[str, int] | None = None
        """How many sub-sagas of each path began (made at the first): names repeat."""

    def carry_deadline(self, deadline: float) -> None:
        """Take the deadline an undo plan carries: it counts from the first run's start."""
        self.deadline = deadline
        if self.settled is None:
            self.settled = asyncio.Event()
            self.pivot_ended = asyncio.Event()

    @property
    def committed(self) -> bool:
        """Whether the pivot has succeeded: from then on no undo may run."""
        return self.pivot is not None and self.pivot.status is StepStatus.SUCCEEDED

    def describe(self, error: BaseException) -> ErrorInfo:
        """`error` as the report keeps it (`Backend.describe_error`)."""
        kind, message = self.backend.describe_error(error)
        return ErrorInfo(type=kind, message=message)

    @property
    def status(self) -> SagaStatus:
        """Where the run stands now (cheaper than `report().status`)."""
        if self.state is State.OPEN:
            # A failed sub-saga whose undo parked waits for operators, as a saga would.
            if self.sub_unwinds and any(r.undo_status is UndoStatus.PARKED for r in self.records):
                return SagaStatus.PARKED
            return SagaStatus.RUNNING
        if self.error is None:
            return SagaStatus.SUCCEEDED
        if self.committed:
            return SagaStatus.COMMITTED_FAILED
        return unwound_status(self.records, self.unwound)

    def report(self) -> SagaReport:
        """The pydantic report of the run so far, every step in registration order."""
        record_values = self.options.record_values
        return SagaReport(
            saga_id=self.saga_id,
            status=self.status,
            started_at=to_datetime(self.started),  # type: ignore[arg-type]
            ended_at=to_datetime(self.ended),
            error=self.error,
            cancelled=self.cancelled,
            deadline=to_datetime(self.deadline),
            deadline_passed=self.deadline_passed,
            steps=[r.to_report(record_values) for r in self.records],
        )


def unwound_status(records: list[Record], unwound: bool) -> SagaStatus:
    """How the unwind of `records` stands (a saga's or a failed sub-saga's)."""
    undos = {r.undo_status for r in records}
    if not unwound:
        return SagaStatus.COMPENSATING
    # Once every undo ran, one running is an operator's retry: the others parked still wait.
    if UndoStatus.PARKED in undos:
        return SagaStatus.PARKED
    if UndoStatus.RUNNING in undos:
        return SagaStatus.COMPENSATING
    if UndoStatus.FAILED in undos or UndoStatus.SKIPPED in undos:
        return SagaStatus.COMPENSATION_FAILED
    return SagaStatus.COMPENSATED


def failure_message(
    run: Run,
    records: list[Record] | None = None,
    error: ErrorInfo | None = None,
    what: str = "",
) -> str:
    """The one-line summary of a failed saga (or of `what`, a sub-saga of it), once unwound."""
    records = run.records if records is None else records
    error = run.error if error is None else error
    # The step whose error failed the saga: the last that failed so (an earlier one's
    # failure may have been caught, by the saga or around a sub-saga).
    failed = next(
        (r for r in reversed(records) if r.status is StepStatus.FAILED and r.error == error), None
    )
    where = f"at step {failed.seq} {failed.name!r}" if failed else "in the saga body"
    why = f"{error.type}: {error.message}" if error is not None else "?"
    if run.committed:
        assert run.pivot is not None
        return (
            f"saga {run.saga_id} failed {where} ({why}) after its pivot "
            f"{run.pivot.name!r} committed it; no undo ran"
        )
    undos = [r.undo_status for r in records if r.undo is not None]
    ok = undos.count(UndoStatus.COMPENSATED)
    total = len(undos) - undos.count(UndoStatus.NOT_NEEDED)
    by_hand = undos.count(UndoStatus.DONE_BY_HAND)
    also = f", {by_hand} done by hand" if by_hand else ""
    return (
        f"{what}saga {run.saga_id} failed {where} ({why}); {ok} of {total} undo(s) succeeded{also}"
    )


_STATUS = {
    DoOutcome.SUCCEEDED: StepStatus.SUCCEEDED,
    DoOutcome.FAILED: StepStatus.FAILED,
    DoOutcome.UNKNOWN: StepStatus.CANCELLED,
}


def take(run: Run) -> UndoPlan:
    """The plan of `run`'s pending undos, as the core holds them (before the backend packs it).

    Raises:
        SagaStateError: a step is in flight (its undo could run while its do still runs).
    """
    running = [r.name for r in run.records if r.status is StepStatus.RUNNING]
    if running:
        raise SagaStateError(
            f"saga.undo_plan() while steps {running} are in flight: await them first "
            f"(an undo in a plan could otherwise run while its do still runs)"
        )
    runs: dict[str, int] = {}
    options: dict[int, int] = {}  # id(StepOptions) -> index: most steps share the defaults
    listed: list[StepOptions] = []
    undos = []
    for r in run.records:
        if r.undo_status is not UndoStatus.PENDING or run.committed or r.call.attempts == 0:
            continue
        ctx = r.call.context
        origin, _, seq = ctx.idempotency_key.rpartition("#")
        opts = r.call.options
        if id(opts) not in options:
            options[id(opts)] = len(listed)
            listed.append(opts)
        args = list(r.call.args)
        undos.append(
            PlannedUndo(
                run=runs.setdefault(origin, len(runs)),
                seq=int(seq),
                name=r.name,
                undo=r.undo,
                args=args,
                options=options[id(opts)],
                outcome=_outcome(r.status),
                result=r.result if opts.pass_result and r.status is StepStatus.SUCCEEDED else None,
                sub=r.sub,
            )
        )
    return UndoPlan(
        runs=list(runs), options=listed, undos=undos, deadline=to_datetime(run.deadline)
    )


def _outcome(status: StepStatus) -> DoOutcome:
    if status is StepStatus.SUCCEEDED:
        return DoOutcome.SUCCEEDED
    return DoOutcome.FAILED if status is StepStatus.FAILED else DoOutcome.UNKNOWN


def carry(run: Run, plan: UndoPlan, unpack: Any, sub: str | None = None) -> None:
    """Register `plan`'s undos in `run`, each under a fresh seq with its original key.

    Args:
        run: The run: a new one, before its saga function starts (`resume=`),
            or one whose child workflow sub-saga `sub` handed its plan back.
        plan: The plan, checked (`check_plan`).
        unpack: `Backend.unpack_undo`, which turns a planned undo back into
            what the backend calls (`(undo, args, result)`).
        sub: The sub-saga the plan's steps belong to now (a child's), its own
            sub-sagas below it; `None` keeps each step's as it was. A child's
            deadline stays the child's; a resumed run keeps the plan's.
    """
    for u in plan.undos:
        undo, args, result = unpack(u)
        opts = plan.options[u.options]
        seq = len(run.records) + 1
        context = StepContext(run.saga_id, seq, u.name, Phase.DO, u.outcome, plan.key(u))
        path = u.sub if sub is None else sub if u.sub is None else f"{sub}/{u.sub}"
        # The do ran in its own run: no function here, and attempts unknown (not 0,
        # which would mean it never started and needs no undo).
        record = Record(StepCall(undo, tuple(args), opts, None, context), undo, None, None, path)
        record.status = _STATUS[u.outcome]
        record.result = result
        run.records.append(record)
    if plan.deadline is not None and sub is None:
        run.carry_deadline(plan.deadline.timestamp())
