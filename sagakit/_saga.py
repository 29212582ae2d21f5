"""The `Saga` builder and the one unwind loop every backend shares.

A step is registered (and so is its undo) *before* its do starts: a do that
fails, times out or is cancelled after it took effect is compensated too. On
failure `run_saga` cancels and awaits the steps still in flight, runs the
registered undos last-registered-first (or all at once) in a task of their own
that a cancel cannot interrupt, and raises `SagaFailed` from the original error.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack, overload

from pydantic_core import to_jsonable_python

from sagakit._backend import Backend, StepCall
from sagakit._checks import check_kind, check_step, default_name, is_async_callable
from sagakit._context import DoOutcome, Phase, StepContext, _current, _reset
from sagakit._exceptions import (
    CompensationError,
    OptionsError,
    SagaFailed,
    SagaStateError,
    StepDefinitionError,
)
from sagakit._options import (
    RetryPolicy,
    SagaOptions,
    StepOptions,
    StepOptionsKw,
    merge,
    step_defaults,
)
from sagakit._report import (
    ErrorInfo,
    ParkedUndo,
    Resolution,
    SagaReport,
    SagaStatus,
    StepKind,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
    to_datetime,
)
from sagakit._tasks import gather

__all__ = ["Saga", "run_saga"]

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

_log = logging.getLogger("sagakit")

HOOK_NAME = "on_compensation_failed"
"""The step name (seq 0) `SagaOptions.on_compensation_failed` runs under."""


class _State(enum.Enum):
    OPEN = "open"
    UNWINDING = "unwinding"
    CLOSED = "closed"


# What an undo is told of its do, by how the do ended (or had not, when the unwind began).
_OUTCOME = {
    StepStatus.SUCCEEDED: DoOutcome.SUCCEEDED,
    StepStatus.FAILED: DoOutcome.FAILED,
    StepStatus.CANCELLED: DoOutcome.UNKNOWN,
    StepStatus.RUNNING: DoOutcome.UNKNOWN,
}


class _Step:
    """A registered step: its do's call, its undo, and how each has gone so far.

    Errors are kept described (`ErrorInfo`), never as exceptions: an exception's
    traceback holds the frames that hold the saga, and a kept run would keep
    them all (guarded by the `TestMemory` tests of the in-memory executor).
    """

    __slots__ = (
        "call",
        "ended",
        "error",
        "kind",
        "name",
        "resolutions",
        "result",
        "seq",
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

    def __init__(self, call: StepCall, undo: Any, started: float) -> None:
        self.call = call
        self.seq = call.context.seq
        self.name = call.context.name
        self.undo = undo
        self.started = started
        self.task = asyncio.current_task()
        """The task the do runs in: the unwind cancels it if the do is still in flight."""
        self.status = StepStatus.RUNNING
        self.ended: float | None = None
        self.error: ErrorInfo | None = None
        self.result: Any = None
        self.stopped: asyncio.Future[None] | None = None
        """Made by the unwind when it must wait for this do to stop; set when it has."""
        self.kind = call.options.kind
        self.undo_status = UndoStatus.PENDING if undo is not None else UndoStatus.NONE
        self.undo_call: StepCall | None = None
        self.undo_order: int | None = None
        self.undo_started: float | None = None
        self.undo_ended: float | None = None
        self.undo_error: ErrorInfo | None = None
        self.resolutions: tuple[Resolution, ...] = ()  # the shared empty tuple: no cost per step


class Saga:
    """The builder a saga function receives: `await saga.step(do, undo, *args)`.

    Executors make one per run; a saga function never constructs it. The same
    saga function runs on every backend and must not know which.
    """

    def __init__(self, backend: Backend, options: SagaOptions | None = None) -> None:
        self._backend = backend
        self._options = options if options is not None else SagaOptions()
        self._defaults = merge(self._options, None)  # what a step without options runs with
        self._saga_id = backend.saga_id()
        self._steps: list[_Step] = []
        self._state = _State.OPEN
        self._started = backend.time()
        self._ended: float | None = None
        self._error: ErrorInfo | None = None
        self._cancelled = False
        self._undos_run = 0
        self._pivot: _Step | None = None
        self._created = 0
        self._unstarted: dict[int, tuple[Coroutine[Any, Any, Any], Any]] = {}
        self._track = backend.tracks_progress
        # Parking: set while the saga waits for operators; their decisions, in order.
        self._wake: asyncio.Event | None = None
        self._decisions: list[tuple[_Step, Resolution]] = []
        self._parked_errors: dict[int, Exception] = {}
        self._hook_options: StepOptions | None = None
        self._unwound = False  # every undo has run once

    @property
    def saga_id(self) -> str:
        """Unique per saga run; stable across replays and worker restarts."""
        return self._saga_id

    @property
    def options(self) -> SagaOptions:
        """The saga-wide options this run uses."""
        return self._options

    @overload
    def step(
        self,
        do: str | type[Any],
        undo: str | type[Any] | Callable[..., Any] | None,
        /,
        *args: Any,
        pass_result: bool = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, Any]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], Awaitable[R]],
        undo: Callable[[*Ts], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[False] = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], Awaitable[R]],
        undo: Callable[[*Ts, R | None], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[True],
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], R],
        undo: Callable[[*Ts], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[False] = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], R],
        undo: Callable[[*Ts, R | None], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[True],
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    # mypy cannot match a TypeVarTuple overload against an `Any` implementation.
    def step(  # type: ignore[misc]
        self, do: Any, undo: Any, /, *args: Any, **options: Any
    ) -> Coroutine[Any, Any, Any]:
        """Register `undo`, then run `do(*args)` through the backend and return its result.

        Await it (or pass it to `saga.gather`): a step never awaited when the
        saga function returns fails the saga with `SagaStateError`.

        Args:
            do (Callable | str): the forward action (a function, or on Temporal an
                activity, a child workflow or an inline `async def`).
            undo (Callable | str | None): what reverses it, called with the same
                `*args`; `None` when there is nothing to undo. Registered before
                `do` starts, so it runs even if `do` fails or times out after
                taking effect.
            *args: positional args of both `do` and `undo`.
            **options (StepOptions): `StepOptions` fields: `name`, `kind`, `pass_result`,
                `start_to_close_timeout`, `schedule_to_close_timeout`,
                `heartbeat_timeout`, `retry_policy`, `undo_retry_policy`,
                `task_queue`, `local`, `summary`. Unset ones take the saga's
                defaults. With `pass_result=True` the undo is called as
                `undo(*args, result)`: the do's result if it succeeded, else `None`.

        Returns:
            A coroutine whose result is the do's.

        Raises:
            StepDefinitionError: do/undo unusable, args they cannot take, or a
                step that breaks the rules of step kinds (when awaited).
            OptionsError: an unknown or out-of-range option.
            SagaStateError: the saga has ended or is unwinding.
            Exception: whatever `do` finally raised; the executor unwinds.
        """
        key = self._created = self._created + 1
        coro = self._step(key, do, undo, args, options)
        # Until it starts, kept to tell a step never awaited (and to close it quietly).
        self._unstarted[key] = (coro, do)
        return coro

    async def _step(
        self, key: int, do: Any, undo: Any, args: tuple[Any, ...], options: dict[str, Any]
    ) -> Any:
        del self._unstarted[key]
        if self._state is not _State.OPEN:
            raise SagaStateError(
                f"saga.step({default_name(do)}) after the saga "
                + ("started unwinding" if self._state is _State.UNWINDING else "ended")
                + ": every step must be awaited inside the saga function, before it returns"
            )
        name, opts = self._prepare(do, undo, len(args), options)
        context = StepContext(self._saga_id, len(self._steps) + 1, name, Phase.DO)
        call = StepCall(do, args, opts, opts.retry_policy, context)
        step = _Step(call, undo, self._backend.time())
        self._steps.append(step)  # the undo is registered from here on
        if opts.kind is StepKind.PIVOT:
            self._pivot = step
        if self._track:
            self._backend.progress(SagaStatus.RUNNING, f"step {context.seq} {name}")
        token = _current.set(context)
        try:
            result = await self._backend.call(call)
        except GeneratorExit:
            raise  # closed by the garbage collector (a worker shut down): touch nothing
        except BaseException as e:
            cancelled = isinstance(e, asyncio.CancelledError)
            self._do_ended(step, StepStatus.CANCELLED if cancelled else StepStatus.FAILED, e)
            raise
        else:
            if self._options.record_values or opts.pass_result:
                step.result = result
            self._do_ended(step, StepStatus.SUCCEEDED, None)
            return result
        finally:
            _reset(_current, token)

    def _prepare(
        self, do: Any, undo: Any, nargs: int, options: dict[str, Any]
    ) -> tuple[str, StepOptions]:
        """The step's name and options, once the core and the backend accepted it."""
        opts = self._defaults
        own = None
        if options:
            try:
                own = StepOptions(**options)
            except OptionsError as e:
                raise OptionsError(f"step {default_name(do)!r}: {e}") from None
            opts = merge(self._options, own)
        try:
            name = check_step(do, undo, nargs, opts.pass_result)
        except StepDefinitionError:
            # A step-kind rule broken too names the real mistake (a pivot given an undo).
            self._check_kind(own.name if own and own.name else default_name(do), undo, opts, own)
            raise
        if own is not None and own.name:
            name = own.name
        opts = self._check_kind(name, undo, opts, own)
        self._backend.check(do, Phase.DO, opts)
        if undo is not None:
            self._backend.check(undo, Phase.UNDO, opts)
        return name, opts

    def _check_kind(
        self, name: str, undo: Any, opts: StepOptions, own: StepOptions | None
    ) -> StepOptions:
        pivot = self._pivot
        if opts.kind is StepKind.COMPENSATABLE and pivot is None:
            return opts  # most steps of most sagas
        running = [r.name for r in self._steps if r.status is StepStatus.RUNNING]
        if pivot is None:
            return check_kind(name, undo, opts, own, None, None, running)
        return check_kind(name, undo, opts, own, pivot.name, pivot.status, running)

    @property
    def _committed(self) -> bool:
        """Whether the pivot has succeeded: from then on no undo may run."""
        return self._pivot is not None and self._pivot.status is StepStatus.SUCCEEDED

    def _do_ended(self, step: _Step, status: StepStatus, error: BaseException | None) -> None:
        step.status = status
        step.ended = self._backend.time()
        if error is not None:
            step.error = self._describe(error)
        if step.stopped is not None and not step.stopped.done():
            step.stopped.set_result(None)

    def _describe(self, error: BaseException) -> ErrorInfo:
        kind, message = self._backend.describe_error(error)
        return ErrorInfo(type=kind, message=message)

    async def gather(self, *steps: Awaitable[R]) -> list[R]:
        """Run steps concurrently; on the first failure cancel the rest, await them, re-raise.

        Unlike `asyncio.gather`, no sibling is left running after a failure, and
        the results come back in argument order. The saga then unwinds every
        registered step, including the cancelled ones (their outcome is unknown).

        Raises:
            Exception: the first error any of the steps raised.
        """
        return await gather(list(steps))

    def report(self) -> SagaReport:
        """A snapshot of the run so far (cheap enough to serve a query)."""
        record = self._options.record_values
        steps = []
        for r in self._steps:
            undo = None
            if r.undo is not None:
                undo = UndoReport(
                    name=default_name(r.undo),
                    status=r.undo_status,
                    attempts=r.undo_call.attempts if r.undo_call is not None else None,
                    started_at=to_datetime(r.undo_started),
                    ended_at=to_datetime(r.undo_ended),
                    error=r.undo_error,
                    order=r.undo_order,
                    resolutions=list(r.resolutions),
                )
            steps.append(
                StepReport(
                    seq=r.seq,
                    name=r.name,
                    status=r.status,
                    kind=r.kind,
                    attempts=r.call.attempts,
                    started_at=to_datetime(r.started),
                    ended_at=to_datetime(r.ended),
                    error=r.error,
                    result=to_jsonable_python(r.result, fallback=repr) if record else None,
                    undo=undo,
                )
            )
        return SagaReport(
            saga_id=self._saga_id,
            status=self._status(),
            started_at=to_datetime(self._started),  # type: ignore[arg-type]
            ended_at=to_datetime(self._ended),
            error=self._error,
            cancelled=self._cancelled,
            steps=steps,
        )

    def _status(self) -> SagaStatus:
        if self._state is _State.OPEN:
            return SagaStatus.RUNNING
        if self._error is None:
            return SagaStatus.SUCCEEDED
        if self._committed:
            return SagaStatus.COMMITTED_FAILED
        if self._state is _State.UNWINDING:
            undos = {r.undo_status for r in self._steps}
            if not self._unwound or UndoStatus.RUNNING in undos:
                return SagaStatus.COMPENSATING
            if UndoStatus.PARKED in undos:
                return SagaStatus.PARKED
            # Every undo has run once: the status it ends with (what the hook is told).
        bad = (UndoStatus.FAILED, UndoStatus.SKIPPED)
        if any(r.undo_status in bad for r in self._steps):
            return SagaStatus.COMPENSATION_FAILED
        return SagaStatus.COMPENSATED

    def _close_unstarted(self) -> list[str]:
        """Close the step coroutines never started (no "never awaited" warning); their names."""
        names = []
        for coro, do in self._unstarted.values():
            coro.close()
            names.append(default_name(do))
        self._unstarted.clear()
        return names

    def _close(self) -> None:
        self._state = _State.CLOSED
        self._ended = self._backend.time()
        if self._track:
            status = self._status()
            failed = [r.name for r in self._steps if r.undo_status is UndoStatus.FAILED]
            detail = status.value.replace("_", " ")
            self._backend.progress(status, f"{detail}: {', '.join(failed)}" if failed else detail)

    # -- parked undos ----------------------------------------------------------

    def parked(self) -> list[ParkedUndo]:
        """The parked undos an operator can resolve now ("retry" or "skip"), in step order.

        Empty until the unwind has run every undo once and the saga waits; an
        undo whose decision has arrived but is not yet acted on is left out.
        """
        if self._wake is None:
            return []
        return [
            ParkedUndo(
                saga_id=self._saga_id,
                seq=r.seq,
                name=r.name,
                undo=default_name(r.undo),
                error=r.undo_error,
                attempts=r.undo_call.attempts if r.undo_call is not None else None,
                parked_at=to_datetime(r.undo_ended),
            )
            for r in self._undecided()
        ]

    def _undecided(self) -> list[_Step]:
        """The steps whose undo is parked and has no decision waiting to be acted on."""
        decided = {step.seq for step, _ in self._decisions}
        return [
            r for r in self._steps if r.undo_status is UndoStatus.PARKED and r.seq not in decided
        ]

    def check_resolution(self, seq: Any, action: Any) -> None:
        """Refuse a decision `resolve` would refuse, changing nothing (an update's validator).

        Raises:
            SagaStateError: `action` is not "retry" or "skip", or step `seq`
                has no parked undo awaiting a decision.
        """
        if action not in ("retry", "skip"):
            raise SagaStateError(
                f"unknown action {action!r} for a parked undo: 'retry' runs it again by "
                f"its retry policy, 'skip' records that it was undone by hand"
            )
        waiting = [r.seq for r in self._undecided()]
        if self._wake is not None and seq in waiting:
            return
        if self._wake is None:
            what = (
                "the unwind is still running other undos; resolve it once the saga waits"
                if waiting
                else "nothing is parked"
            )
        elif waiting:
            what = f"undos await a decision at steps {waiting}"
        else:
            what = "no undo awaits a decision now (a retry may be running)"
        raise SagaStateError(f"step {seq!r} of saga {self._saga_id} has no parked undo: {what}")

    def resolve(
        self, seq: int, action: str, *, reason: str | None = None, by: str | None = None
    ) -> None:
        """Deliver an operator's decision on the parked undo of step `seq`.

        Returns once delivered; the saga acts on it in order ("retry" runs the
        undo again, and it may park again; "skip" records it as done by hand).

        Raises:
            SagaStateError: as `check_resolution`.
        """
        self.check_resolution(seq, action)
        step = self._steps[seq - 1]
        at = to_datetime(self._backend.time())
        self._decisions.append((step, Resolution(action=action, reason=reason, by=by, at=at)))  # type: ignore[arg-type]
        assert self._wake is not None
        self._wake.set()

    async def _wait_for_operators(self) -> list[Exception]:
        """Wait until every parked undo is resolved (or `park_timeout`, or a cancel).

        Returns the errors of the undos still parked then, which now count as failed.
        """
        wake = self._wake
        assert wake is not None
        timeout = self._options.park_timeout
        deadline = None if timeout is None else self._backend.time() + timeout.total_seconds()
        while True:
            if self._decisions:
                step, resolution = self._decisions.pop(0)
                step.resolutions = (*step.resolutions, resolution)
                self._parked_errors.pop(step.seq, None)
                if resolution.action == "skip":
                    step.undo_status = UndoStatus.DONE_BY_HAND
                else:
                    await self._run_undo(step)  # may park again
                continue
            # Given up (no new decision taken), or nothing parked (its error is kept while it is).
            if self._wake is None or not self._parked_errors:
                break
            if self._track:
                self._report_parked()
            left = None if deadline is None else max(deadline - self._backend.time(), 0.0)
            wake.clear()
            woke = not self._cancelled and await self._backend.wait(wake, left)
            if not woke or self._cancelled:
                # Out of time, or cancelled: no new decision is taken, but the ones
                # already delivered (their senders were told so) are still honoured.
                self._wake = None
        self._wake = None
        errors: list[Exception] = []
        for r in self._steps:
            if r.undo_status is UndoStatus.PARKED:
                r.undo_status = UndoStatus.FAILED
                errors.append(self._parked_errors.pop(r.seq))
        return errors

    def _report_parked(self) -> None:
        parts = []
        for p in self.parked():
            why = [f"{p.attempts} attempts"] if p.attempts else []
            if p.error is not None:
                why.append(p.error.type)
            parts.append(f"{p.undo}" + (f" ({', '.join(why)})" if why else ""))
        self._backend.progress(SagaStatus.PARKED, "parked: " + "; ".join(parts))

    def _check_hook(self) -> None:
        """Check `on_compensation_failed` as a step's undo is checked, before anything runs."""
        hook = self._options.on_compensation_failed
        if hook is None:
            return
        check_step(hook, None, 1, False)
        opts = step_defaults(self._options)
        update: dict[str, Any] = {"name": HOOK_NAME}
        if opts.start_to_close_timeout is None and opts.schedule_to_close_timeout is None:
            update["start_to_close_timeout"] = timedelta(minutes=1)
        policy = opts.undo_retry_policy or opts.retry_policy
        if policy is None or policy.maximum_attempts == 0:
            update["retry_policy"] = RetryPolicy(maximum_attempts=5)
        else:
            update["retry_policy"] = policy
        opts = opts.model_copy(update=update)
        self._backend.check(hook, Phase.UNDO, opts)
        self._hook_options = opts

    async def _alert(self) -> None:
        """Run `on_compensation_failed` with the report; its failure is logged, not raised."""
        hook: Any = self._options.on_compensation_failed  # a callable, or an activity's name
        opts = self._hook_options
        if hook is None or opts is None:
            return
        context = StepContext(self._saga_id, 0, HOOK_NAME, Phase.UNDO)
        call = StepCall(hook, (self.report(),), opts, opts.retry_policy, context)
        token = _current.set(context)
        try:
            await self._backend.call(call)
        except GeneratorExit:
            raise
        except Exception as e:
            kind, message = self._backend.describe_error(e)
            _log.warning("saga %s: %s failed: %s: %s", self._saga_id, HOOK_NAME, kind, message)
        finally:
            _reset(_current, token)

    # -- unwinding -----------------------------------------------------------

    async def _unwind(self, error: BaseException) -> CompensationError | None:
        """Compensate in a task of its own, and wait for it through any further cancel."""
        self._state = _State.UNWINDING
        self._error = self._describe(error)
        self._cancelled = isinstance(error, asyncio.CancelledError)
        # Waiting on the task, rather than `asyncio.shield`ing it, leaves the
        # compensation untouched by a cancel of this task, and logs no "exception
        # in shielded future" when it ends (temporalio sdk-python #1600).
        task = asyncio.ensure_future(self._compensate())
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                self._cancelled = True  # a second cancel must not abort compensation
                if self._wake is not None:
                    self._wake.set()  # ... but it ends a wait for operators
        comp_error = task.result()  # re-raises if the loop itself tore the task down
        self._close()
        return comp_error

    async def _compensate(self) -> CompensationError | None:
        # 1. No undo may start while its own do may still run: stop the steps in flight.
        me = asyncio.current_task()
        stopping: list[asyncio.Future[None]] = []
        cancelled: set[asyncio.Task[Any]] = set()
        for r in self._steps:
            if r.status is StepStatus.RUNNING and r.task is not None and r.task is not me:
                r.stopped = asyncio.get_running_loop().create_future()
                stopping.append(r.stopped)
                if r.task not in cancelled:  # one task may run nested steps: cancel it once
                    cancelled.add(r.task)
                    r.task.cancel()
        for stopped in stopping:
            await stopped
        # 2. Undo what was registered, last registered first (or all at once); nothing
        # once the pivot has succeeded: the saga is committed.
        todo: list[_Step] = []
        for r in reversed(self._steps):
            if r.undo is None or self._committed:
                continue
            if r.call.attempts == 0:  # the backend never started the do: nothing to undo
                r.undo_status = UndoStatus.NOT_NEEDED
            else:
                todo.append(r)
        if self._track:
            self._backend.progress(SagaStatus.COMPENSATING, f"compensating: {len(todo)} undo(s)")
        errors: list[Exception] = []
        if self._options.parallel_compensation:
            results = await asyncio.gather(*(self._run_undo(r, len(todo)) for r in todo))
            errors = [e for e in results if e is not None]
        else:
            for r in todo:
                if errors and not self._options.continue_on_compensation_error:
                    r.undo_status = UndoStatus.SKIPPED
                    continue
                e = await self._run_undo(r, len(todo))
                if e is not None:
                    errors.append(e)
        self._unwound = True
        if self._parked_errors:
            self._wake = asyncio.Event()  # decisions are taken from here on, hook or not
        if errors or self._parked_errors:
            await self._alert()
        if self._parked_errors:
            errors += await self._wait_for_operators()
        if not errors:
            return None
        names = [r.name for r in todo if r.undo_status is UndoStatus.FAILED]
        return CompensationError(f"{len(errors)} undo(s) failed: {', '.join(names)}", errors)

    async def _run_undo(self, step: _Step, of: int = 0) -> Exception | None:
        """Run one step's undo to its end; its final error, if it failed (and did not park)."""
        self._undos_run += 1
        if step.undo_order is None:  # a retried parked undo keeps its place
            step.undo_order = self._undos_run
        step.undo_status = UndoStatus.RUNNING
        step.undo_started = self._backend.time()
        step.undo_ended = step.undo_error = None
        if self._track:
            where = f"{step.undo_order}/{of} " if of else ""
            self._backend.progress(
                SagaStatus.COMPENSATING, f"compensating {where}{default_name(step.undo)}"
            )
        opts = step.call.options
        args = step.call.args
        if opts.pass_result:  # the do's result, or None: it failed, or its outcome is unknown
            args = (*args, step.result if step.status is StepStatus.SUCCEEDED else None)
        context = StepContext(self._saga_id, step.seq, step.name, Phase.UNDO, _OUTCOME[step.status])
        policy = opts.undo_retry_policy
        if policy is None:
            policy = _bounded_for_undo(opts.retry_policy, opts)
        call = StepCall(step.undo, args, opts, policy, context)
        step.undo_call = call
        token = _current.set(context)
        try:
            await self._backend.call(call)
        except GeneratorExit:
            raise  # closed by the garbage collector (a worker shut down): touch nothing
        except Exception as e:  # the undo finally failed: recorded, and parked or raised
            step.undo_error = self._describe(e)
            step.undo_ended = self._backend.time()
            if self._options.on_undo_failure == "park":
                step.undo_status = UndoStatus.PARKED
                self._parked_errors[step.seq] = e
                return None
            step.undo_status = UndoStatus.FAILED
            return e
        finally:
            _reset(_current, token)
        step.undo_status = UndoStatus.COMPENSATED
        step.undo_ended = self._backend.time()
        return None


UNDO_ATTEMPTS = 10
"""Attempts an undo gets when nothing else bounds it (see `_bounded_for_undo`)."""


def _bounded_for_undo(policy: RetryPolicy | None, opts: StepOptions) -> RetryPolicy | None:
    """The do's policy for its undo, bounded to `UNDO_ATTEMPTS` if nothing else bounds it.

    An undo with unlimited attempts and no `schedule_to_close_timeout` (an
    activity no worker registered, a service down for good) would retry
    forever, and every undo after it would wait. An undo's own
    `undo_retry_policy` is taken as it is, unlimited or not.
    """
    if opts.schedule_to_close_timeout is not None:
        return policy
    if policy is None:
        return _DEFAULT_UNDO_POLICY
    if policy.maximum_attempts == 0:
        return _undo_bound(policy)
    return policy


_DEFAULT_UNDO_POLICY = RetryPolicy(maximum_attempts=UNDO_ATTEMPTS)


@functools.lru_cache(maxsize=64)
def _undo_bound(policy: RetryPolicy) -> RetryPolicy:
    return policy.model_copy(update={"maximum_attempts": UNDO_ATTEMPTS})


async def run_saga(
    saga: Saga, fn: Callable[..., Coroutine[Any, Any, R]], args: tuple[Any, ...]
) -> R:
    """Run a saga function to its end on `saga`'s backend; the heart of every executor.

    Raises:
        StepDefinitionError: `fn` is not an `async def` taking the saga first.
        SagaFailed: the saga raised and was unwound; `__cause__` is the error.
        asyncio.CancelledError: the saga was cancelled, and was unwound first.
        BaseException: a `KeyboardInterrupt`, `SystemExit` (any non-`Exception`)
            raised in the saga, re-raised as it is once the saga was unwound.
    """
    if not is_async_callable(fn):
        raise StepDefinitionError(
            f"a saga must be an `async def` that takes the Saga first, like "
            f"`async def book_trip(saga: Saga, trip): ...`; got {fn!r}"
        )
    saga._check_hook()
    try:
        body = fn(saga, *args)
    except TypeError as e:  # an `async def` raises here only when the args do not bind
        raise StepDefinitionError(
            f"a saga function takes the Saga first, then its own args, like "
            f"`async def book_trip(saga: Saga, trip): ...`; {fn!r} cannot be called as "
            f"fn(saga, {', '.join(type(a).__name__ for a in args)}): {e}"
        ) from None
    try:
        result = await body
        never = saga._close_unstarted()
        if never:
            raise SagaStateError(
                f"the saga function returned without awaiting saga.step({never[0]}) "
                f"(steps never run: {never}): await every saga.step(...), or pass them "
                f"to saga.gather"
            )
        stray = [r.name for r in saga._steps if r.status is StepStatus.RUNNING]
        if stray:
            raise SagaStateError(
                f"the saga function returned while steps {stray} were still running: "
                f"await every saga.step(...) (use saga.gather for concurrent steps)"
            )
    except GeneratorExit:
        raise  # closed by the garbage collector (a worker shut down): touch nothing
    except BaseException as error:
        if saga._backend.passes_through(error):
            raise
        saga._close_unstarted()
        comp_error = await saga._unwind(error)
        if not isinstance(error, Exception):
            # Cancellation, KeyboardInterrupt, SystemExit: unwound, then re-raised as they
            # are. Wrapped in SagaFailed (an Exception) they could be caught and ignored.
            raise
        if saga._cancelled:
            # The body failed, then the caller cancelled us during the unwind.
            raise asyncio.CancelledError() from error
        if comp_error is not None:
            comp_error.report = saga.report()
            raise SagaFailed(_message(saga), comp_error.report, comp_error) from error
        # Built on first read: a caller that only catches the failure pays nothing for it.
        raise SagaFailed(_message(saga), saga.report, None) from error
    saga._close()
    return result


def _message(saga: Saga) -> str:
    """The one-line summary of a failed saga, once it is unwound."""
    failed = next((r for r in saga._steps if r.status is StepStatus.FAILED), None)
    where = f"at step {failed.seq} {failed.name!r}" if failed else "in the saga body"
    error = saga._error
    what = f"{error.type}: {error.message}" if error is not None else "?"
    if saga._committed:
        assert saga._pivot is not None
        return (
            f"saga {saga.saga_id} failed {where} ({what}) after its pivot "
            f"{saga._pivot.name!r} committed it; no undo ran"
        )
    undos = [r.undo_status for r in saga._steps if r.undo is not None]
    ok = undos.count(UndoStatus.COMPENSATED)
    total = len(undos) - undos.count(UndoStatus.NOT_NEEDED)
    by_hand = undos.count(UndoStatus.DONE_BY_HAND)
    also = f", {by_hand} done by hand" if by_hand else ""
    return f"saga {saga.saga_id} failed {where} ({what}); {ok} of {total} undo(s) succeeded{also}"
