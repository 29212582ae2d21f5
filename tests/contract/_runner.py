"""Run one saga function on either backend and read back the same `Outcome`.

`InMemory` runs it with `InMemoryExecutor`; `OnTemporal` runs it in the
generic `ContractSaga` workflow on a real dev server, with an in-process
worker on a fresh task queue; `OnDBOS` in the generic `contract_saga` DBOS
workflow (`_dbos.py`) on the session's SQLite system database. Each turns how
the run ended into an `Outcome`:

* in memory, `SagaFailed` is caught and its `__cause__` described;
* on DBOS, the handle's `get_result()` raises that same `SagaFailed`;
* on Temporal, the workflow fails with an `ApplicationError` of type
  `SagaFailed` whose cause chain keeps the original error (seen through the
  `ActivityError` wrapper), and the report is the `sagakit_report` query's.

So a test asserts `outcome.error == "SagaFailed"` and
`outcome.cause.type == "Boom"` and reads `outcome.report` the same way on both.
A run may take an undo plan (`resume=`): a saga function returns
`saga.undo_plan()` as its result, and the test hands that result to the next
run (in memory the `UndoPlan` itself; on Temporal its JSON, as the client
decodes the workflow's result, validated by the executor).
A saga function the executor refuses before it starts (nothing ran, nothing to
unwind) raises `Refused` on both: in memory `executor.run` raised the
`SagaDefinitionError` itself; on Temporal the workflow failed with an
`ApplicationError` of that type, not `SagaFailed`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.worker import Worker

from sagakit import (
    ErrorInfo,
    ParkedUndo,
    RetryPolicy,
    SagaDefinitionError,
    SagaFailed,
    SagaOptions,
    SagaReport,
    SagaStatus,
)
from sagakit.inmemory import InMemoryExecutor
from sagakit.temporal import REPORT_QUERY, SAGA_FAILED_TYPE, SagakitPlugin, parked, resolve

from ._shared import ACTIVITIES, Plan, SagaCall, SagaFn, register, register_callables
from ._workflow import ContractSaga

__all__ = [
    "FAST_RETRY",
    "ONE_ATTEMPT",
    "Backend",
    "InMemory",
    "OnDBOS",
    "OnTemporal",
    "Outcome",
    "Refused",
    "Run",
    "options",
]

FAST_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(milliseconds=200)
)
"""Retries every 100-200 ms, without limit: a flaky step costs a tenth of a second."""

ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)
"""No retry: the first failure (a timeout included) is final."""


def options(**overrides: Any) -> SagaOptions:
    """Saga options every contract test starts from: timeouts Temporal needs, fast retries."""
    defaults: dict[str, Any] = {
        "start_to_close_timeout": timedelta(seconds=10),
        # A hanging do heartbeats; this is how soon Temporal notices one that stopped.
        "heartbeat_timeout": timedelta(seconds=2),
        "retry_policy": FAST_RETRY,
    }
    return SagaOptions(**{**defaults, **overrides})


@dataclass(frozen=True)
class Outcome:
    """How a saga run ended, the same on every backend."""

    report: SagaReport
    """The run's full report."""
    result: Any = None
    """What the saga function returned, when it succeeded."""
    error: str | None = None
    """`"SagaFailed"` when the run failed and was unwound, else `None`."""
    cause: ErrorInfo | None = None
    """The original error (`SagaFailed.__cause__`): its type name and message."""
    cancelled: bool = False
    """The run was cancelled, and ended cancelled (after its undos ran)."""


class Refused(Exception):
    """The executor refused the saga function before it started: nothing ran or unwound."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.type}: {error.message}")
        self.error = error
        """The refusal: its type name (`StepDefinitionError`, ...) and message."""


_CALLABLE = ("resolve_check",)
"""Options that hold a function: they reach the workflow through `register_callables`,
as JSON cannot carry them."""

_DEFINITION_ERRORS = frozenset(
    c.__name__ for c in (SagaDefinitionError, *SagaDefinitionError.__subclasses__())
)
"""Type names of the errors that refuse a saga before it starts."""


class Run(abc.ABC):
    """A saga run under way."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Cancel the run: the asyncio task in memory, the workflow on Temporal."""

    @abc.abstractmethod
    async def wait_parked(self) -> list[ParkedUndo]:
        """Wait until the saga waits for an operator; its parked undos."""

    @abc.abstractmethod
    async def parked(self) -> list[ParkedUndo]:
        """The parked undos listed now, without waiting: what an operator reads."""

    @abc.abstractmethod
    async def resolve(
        self, seq: Any, action: Any, *, reason: Any = None, by: Any = "tester"
    ) -> None:
        """Resolve a parked undo: `executor.resolve` in memory, the update on Temporal.

        Takes `Any`: the tests send what a careless script would.

        Raises:
            SagaStateError: refused (a wrong seq, action, reason or by; a
                decision that lost a race; `resolve_check`).
        """

    @abc.abstractmethod
    async def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass on the backend's clock (advanced in memory, waited on Temporal)."""

    @abc.abstractmethod
    async def outcome(self) -> Outcome:
        """Wait for the run to end; how it ended.

        Raises:
            Refused: the executor refused the saga function before it started.
            BaseException: it ended other than by succeeding, failing with
                `SagaFailed`, being refused or cancelled: a bug, shown as it is.
        """


class Backend(abc.ABC):
    """Where a contract test runs its saga: one test body, every backend."""

    name: str
    """`inmemory` or `temporal`."""
    timeout_error: str
    """Type name of the error a step timing out fails with (API.md: `StepTimeoutError`
    in memory, temporalio's own `TimeoutError` on Temporal)."""

    cannot: dict[str, str] = {}  # noqa: RUF012 - read only
    """What this backend cannot honour, by rule, and why: the tests of it skip here."""

    def require(self, rule: str) -> None:
        """Skip the calling test, with the reason, where this backend cannot honour `rule`."""
        if rule in self.cannot:
            pytest.skip(f"{self.name}: {self.cannot[rule]}")

    def with_pydantic_converter(self) -> Backend:
        """This backend, with pydantic models travelling as themselves (nothing to do here)."""
        return self

    @abc.abstractmethod
    def start(
        self, saga_fn: SagaFn, plan: Plan, *, options: SagaOptions, resume: Any = None
    ) -> AbstractAsyncContextManager[Run]:
        """Start `saga_fn(saga, plan)`; the run is cleaned up when the block ends.

        `resume`: an undo plan an earlier run returned, given to the executor's
        `run(..., resume=)` as it is (a hand-edited dict included).
        """

    async def run(
        self, saga_fn: SagaFn, plan: Plan, *, options: SagaOptions, resume: Any = None
    ) -> Outcome:
        """Run `saga_fn(saga, plan)` to its end (resuming `resume`, an undo plan)."""
        async with self.start(saga_fn, plan, options=options, resume=resume) as run:
            return await run.outcome()


def _describe(error: BaseException | None) -> ErrorInfo:
    """An error as reports name it: an `ApplicationError` by its type, else by its class."""
    if isinstance(error, ApplicationError):
        return ErrorInfo(type=error.type or "ApplicationError", message=error.message)
    return ErrorInfo(type=type(error).__name__, message=str(error))


class _InMemoryRun(Run):
    def __init__(self, executor: InMemoryExecutor, task: asyncio.Task[Any]) -> None:
        self.executor = executor
        self.task = task

    async def cancel(self) -> None:
        self.task.cancel()

    async def wait_parked(self) -> list[ParkedUndo]:
        async with asyncio.timeout(30):  # generous: a loaded CI machine
            return await self.executor.wait_parked()

    async def parked(self) -> list[ParkedUndo]:
        return self.executor.parked(self.executor.last_report.saga_id)

    async def resolve(
        self, seq: Any, action: Any, *, reason: Any = None, by: Any = "tester"
    ) -> None:
        saga_id = self.executor.last_report.saga_id
        await self.executor.resolve(saga_id, seq, action, reason=reason, by=by)

    async def pass_time(self, seconds: float) -> None:
        self.executor.clock.advance(seconds)
        await asyncio.sleep(0.01)

    async def outcome(self) -> Outcome:
        await asyncio.wait([self.task])
        if self.task.cancelled():
            return Outcome(report=self.executor.last_report, cancelled=True)
        error = self.task.exception()
        if isinstance(error, SagaFailed):
            return Outcome(
                report=error.report, error="SagaFailed", cause=_describe(error.__cause__)
            )
        if isinstance(error, SagaDefinitionError):
            raise Refused(_describe(error)) from error
        if error is not None:
            raise error
        return Outcome(report=self.executor.last_report, result=self.task.result())


class InMemory(Backend):
    """`InMemoryExecutor`: the saga runs in a task of the test's own loop."""

    name = "inmemory"
    timeout_error = "StepTimeoutError"

    @asynccontextmanager
    async def start(
        self, saga_fn: SagaFn, plan: Plan, *, options: SagaOptions, resume: Any = None
    ) -> AsyncIterator[Run]:
        """Run the saga function in an asyncio task."""
        executor = InMemoryExecutor(options=options)
        task = asyncio.create_task(executor.run(saga_fn, plan, resume=resume))
        try:
            yield _InMemoryRun(executor, task)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait([task])


class _TemporalRun(Run):
    def __init__(self, handle: WorkflowHandle[Any, Any]) -> None:
        self.handle = handle
        self.ended = False

    async def cancel(self) -> None:
        await self.handle.cancel()

    async def wait_parked(self) -> list[ParkedUndo]:
        async with asyncio.timeout(30):  # generous: a loaded CI machine
            while True:
                found = await parked(self.handle)
                # Listed once the saga waits (every undo ran once), as in memory.
                report = SagaReport.model_validate(await self.handle.query(REPORT_QUERY))
                if found and report.status is SagaStatus.PARKED:
                    return found
                await asyncio.sleep(0.05)

    async def parked(self) -> list[ParkedUndo]:
        return await parked(self.handle)

    async def resolve(
        self, seq: Any, action: Any, *, reason: Any = None, by: Any = "tester"
    ) -> None:
        await resolve(self.handle, seq, action, reason=reason, by=by)

    async def pass_time(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def outcome(self) -> Outcome:
        result = error = cause = None
        cancelled = False
        try:
            result = await self.handle.result()
        except WorkflowFailureError as e:
            failure = e.cause
            if isinstance(failure, CancelledError):
                cancelled = True
            elif isinstance(failure, ApplicationError) and failure.type == SAGA_FAILED_TYPE:
                error = "SagaFailed"
                original = failure.cause
                # The do's error arrives wrapped in its step's ActivityError or ChildWorkflowError.
                while isinstance(original, ActivityError | ChildWorkflowError) and original.cause:
                    original = original.cause
                if isinstance(original, TemporalTimeoutError):
                    cause = ErrorInfo(type="TimeoutError", message=original.message)
                else:
                    cause = _describe(original)
            elif isinstance(failure, ApplicationError) and failure.type in _DEFINITION_ERRORS:
                raise Refused(_describe(failure)) from e
            else:
                raise
        finally:
            self.ended = True
        # A closed workflow still answers the query, while a worker polls its queue.
        report = SagaReport.model_validate(await self.handle.query(REPORT_QUERY))
        return Outcome(report=report, result=result, error=error, cause=cause, cancelled=cancelled)


class OnTemporal(Backend):
    """A real Temporal server; each run gets its own worker, task queue and workflow id."""

    name = "temporal"
    timeout_error = "TimeoutError"

    def __init__(self, client: Client) -> None:
        self.client = client

    def with_pydantic_converter(self) -> OnTemporal:
        """The same server, through a client (and so workers) on `pydantic_data_converter`."""
        config = self.client.config()
        config["data_converter"] = pydantic_data_converter
        return OnTemporal(Client(**config))

    @asynccontextmanager
    async def start(
        self, saga_fn: SagaFn, plan: Plan, *, options: SagaOptions, resume: Any = None
    ) -> AsyncIterator[Run]:
        """Start the generic workflow on the saga function's registered name.

        An `UndoPlan` in `resume` travels as a pydantic model: use a backend
        from `with_pydantic_converter()`.
        """
        task_queue = f"contract-{uuid.uuid4()}"
        worker = Worker(
            self.client,
            task_queue=task_queue,
            workflows=[ContractSaga],
            activities=ACTIVITIES,
            plugins=[SagakitPlugin()],
            # A hanging do learns of its cancel at its next heartbeat sent to the server.
            max_heartbeat_throttle_interval=timedelta(milliseconds=100),
        )
        async with worker:
            call = SagaCall(
                saga=register(saga_fn),
                options=options.model_dump_json(exclude=set(_CALLABLE)),
                plan=plan,
                callables=register_callables(
                    {f: getattr(options, f) for f in _CALLABLE if getattr(options, f) is not None}
                ),
                resume=resume,
            )
            handle = await self.client.start_workflow(
                ContractSaga.run, call, id=f"contract-{uuid.uuid4()}", task_queue=task_queue
            )
            run = _TemporalRun(handle)
            try:
                yield run
            finally:
                if not run.ended:  # the test stopped early: leave nothing running on the server
                    with contextlib.suppress(Exception):
                        await handle.terminate()


class _DBOSRun(Run):
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def cancel(self) -> None:
        from dbos import DBOS

        await DBOS.cancel_workflow_async(self.handle.get_workflow_id())

    async def wait_parked(self) -> list[ParkedUndo]:
        from sagakit.dbos import parked as dbos_parked

        async with asyncio.timeout(30):  # generous: a loaded CI machine
            while True:
                found = await dbos_parked(self.handle.get_workflow_id())
                if found:
                    return found
                await asyncio.sleep(0.05)

    async def parked(self) -> list[ParkedUndo]:
        from sagakit.dbos import parked as dbos_parked

        return await dbos_parked(self.handle.get_workflow_id())

    async def resolve(
        self, seq: Any, action: Any, *, reason: Any = None, by: Any = "tester"
    ) -> None:
        from sagakit.dbos import resolve as dbos_resolve

        await dbos_resolve(self.handle.get_workflow_id(), seq, action, reason=reason, by=by)

    async def pass_time(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def outcome(self) -> Outcome:
        from ._dbos import REPORTS

        workflow_id = self.handle.get_workflow_id()
        try:
            result = await self.handle.get_result()
        except SagaFailed as e:
            return Outcome(report=e.report, error="SagaFailed", cause=_describe(e.__cause__))
        except SagaDefinitionError as e:
            raise Refused(_describe(e)) from e
        return Outcome(report=REPORTS.pop(workflow_id), result=result)


class OnDBOS(Backend):
    """DBOS Transact on the session's SQLite system database; each run, a workflow."""

    name = "dbos"
    timeout_error = "StepTimeoutError"
    cannot = {  # noqa: RUF012 - read only
        "cancel": (
            "a DBOS cancel (DBOS.cancel_workflow) stops the workflow at its next step, "
            "and every later step, undos included, is refused: nothing is compensated "
            "(docs/dbos.md: compensating on demand)"
        ),
        "payload_limit": (
            "DBOS checkpoints a step's result, never its args: there is no payload "
            "limit to refuse a call by before it starts"
        ),
    }

    @asynccontextmanager
    async def start(
        self, saga_fn: SagaFn, plan: Plan, *, options: SagaOptions, resume: Any = None
    ) -> AsyncIterator[Run]:
        """Start the generic workflow on the saga function's registered name.

        An undo plan in `resume` travels as DBOS pickles a workflow's input: as it is.
        """
        from dbos import DBOS

        from ._dbos import contract_saga

        call = SagaCall(
            saga=register(saga_fn),
            options=options.model_dump_json(exclude=set(_CALLABLE)),
            plan=plan,
            callables=register_callables(
                {f: getattr(options, f) for f in _CALLABLE if getattr(options, f) is not None}
            ),
            resume=resume,
        )
        handle = await DBOS.start_workflow_async(contract_saga, call)
        try:
            yield _DBOSRun(handle)
        finally:
            status = await handle.get_status()
            if status.status in ("PENDING", "ENQUEUED"):  # stopped early: leave nothing running
                await DBOS.cancel_workflow_async(handle.get_workflow_id())
