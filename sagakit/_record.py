"""What the core keeps of a run while it goes: one slotted `Record` per step.

The pydantic report (`SagaReport`) is built from these only when asked (a
query, a failure, `executor.last_report`), so a step makes no model.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_core import to_jsonable_python

from sagakit._backend import StepCall
from sagakit._checks import default_name
from sagakit._context import DoOutcome
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

__all__ = ["OUTCOME", "Record", "build_report", "status_of"]

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
        "task",
        "undo",
        "undo_call",
        "undo_ended",
        "undo_error",
        "undo_order",
        "undo_started",
        "undo_status",
    )

    def __init__(self, call: StepCall, undo: Any, started: float, task: Any) -> None:
        self.call = call
        self.undo = undo
        self.started = started
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
        )


def status_of(
    records: list[Record], *, running: bool, error: bool, committed: bool, unwound: bool
) -> SagaStatus:
    """Where a run stands, from its records and four facts the core knows.

    Args:
        records: The run's steps.
        running: The saga function has not ended.
        error: It ended by raising.
        committed: Its pivot succeeded.
        unwound: It raised, and the unwind pass has run every undo once.
    """
    if running:
        return SagaStatus.RUNNING
    if not error:
        return SagaStatus.SUCCEEDED
    if committed:
        return SagaStatus.COMMITTED_FAILED
    undos = {r.undo_status for r in records}
    if not unwound or UndoStatus.RUNNING in undos:
        return SagaStatus.COMPENSATING
    if UndoStatus.PARKED in undos:
        return SagaStatus.PARKED
    if UndoStatus.FAILED in undos or UndoStatus.SKIPPED in undos:
        return SagaStatus.COMPENSATION_FAILED
    return SagaStatus.COMPENSATED


def build_report(
    saga_id: str,
    records: list[Record],
    *,
    status: SagaStatus,
    started: float,
    ended: float | None,
    error: ErrorInfo | None,
    cancelled: bool,
    record_values: bool,
) -> SagaReport:
    """The pydantic report of a run, every step in registration order."""
    return SagaReport(
        saga_id=saga_id,
        status=status,
        started_at=to_datetime(started),  # type: ignore[arg-type]
        ended_at=to_datetime(ended),
        error=error,
        cancelled=cancelled,
        steps=[r.to_report(record_values) for r in records],
    )
