"""The `Saga` builder and the one unwind loop every backend shares.

A step is registered (and so is its undo) *before* its do starts: a do that
fails, times out or is cancelled after it took effect is compensated too. On
failure `run_saga` cancels and awaits the steps still in flight, runs the
registered undos last-registered-first (or all at once) in a shielded task,
and raises `SagaFailed` from the original error.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import operator
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any, Final, TypeVar, TypeVarTuple, overload

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from sagakit._backend import Backend, StepCall
from sagakit._context import DoOutcome, Phase, StepContext, _current
from sagakit._exceptions import (
    CompensationError,
    SagaFailed,
    SagaStateError,
    StepDefinitionError,
)
from sagakit._options import (
    RetryPolicy,
    SagaOptions,
    StepOptions,
    merge,
    validation_to_options_error,
)
from sagakit._report import (
    ErrorInfo,
    SagaReport,
    SagaStatus,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
    to_datetime,
)

__all__ = ["Saga", "run_saga"]

R = TypeVar("R")
Ts = TypeVarTuple("Ts")

_OPEN: Final = "open"
_UNWINDING: Final = "unwinding"
_CLOSED: Final = "closed"

_OUTCOME = {
    StepStatus.SUCCEEDED: DoOutcome.SUCCEEDED,
    StepStatus.FAILED: DoOutcome.FAILED,
    StepStatus.CANCELLED: DoOutcome.UNKNOWN,
    StepStatus.RUNNING: DoOutcome.UNKNOWN,
}


# `_task_of(_running_loop())` is the current task. 3.11's `asyncio.current_task` is
# Python and costs a fifth of a step: read its table directly. From 3.12 it is C.
_running_loop = asyncio.get_running_loop
_new = object.__new__
if sys.version_info >= (3, 12):
    _task_of: Callable[[Any], asyncio.Task[Any] | None] = asyncio.current_task
else:  # pragma: no cover - version-specific
    _task_of = asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]


_status_of = operator.attrgetter("status")

# Enum members read once: `StepStatus.RUNNING` is a class-attribute lookup on every use.
_DO, _UNDO = Phase.DO, Phase.UNDO
_RUNNING, _SUCCEEDED, _FAILED, _CANCELLED = (
    StepStatus.RUNNING,
    StepStatus.SUCCEEDED,
    StepStatus.FAILED,
    StepStatus.CANCELLED,
)


class _Step(StepCall):
    """A registered step while the saga runs; also the `StepCall` of its do.

    One object per step: the backend runs the record itself, and the step
    context `current_step()` reads is made from it only when first asked.
    `Saga.step` fills it on a bare instance, without an `__init__` frame.
    Not slotted on purpose: the class attributes below are the defaults, so a
    step sets only what it knows at registration (half the cost of assigning
    every slot), and CPython's key-sharing instance dicts keep it as small.
    """

    status: StepStatus = _RUNNING
    ended: float | None = None
    attempts: int | None = None
    error: _Error | None = None
    """The do's error; once the saga has ended, only its (type, message)."""
    result: Any = None
    undo_status: UndoStatus = UndoStatus.PENDING
    undo_started: float | None = None
    undo_ended: float | None = None
    undo_attempts: int | None = None
    undo_error: _Error | None = None
    undo_order: int | None = None
    waiter: asyncio.Future[None] | None = None
    """Made only when an unwind has to wait for this step's do to stop."""
    _ctx: StepContext | None = None

    # Set by `Saga.step` on a bare instance (`object.__new__`): no `__init__` frame.
    seq: int
    name: str
    undo: Any
    saga_id: str
    started: float
    task: asyncio.Task[Any] | None

    @property
    def retry_policy(self) -> RetryPolicy | None:
        return self.options.retry_policy

    @property
    def context(self) -> StepContext:
        ctx = self._ctx
        if ctx is None:
            ctx = self._ctx = StepContext(self.saga_id, self.seq, self.name, _DO)
        return ctx

    @property
    def phase(self) -> Phase:
        return _DO


class _UndoCall(StepCall):
    """The `StepCall` of a step's undo; its context is made only when first asked."""

    __slots__ = ("_rec",)

    def __init__(self, rec: _Step) -> None:
        self._rec = rec
        self.fn = rec.undo
        self.args = rec.args
        self.options = rec.options
        self.attempts = None

    @property
    def retry_policy(self) -> RetryPolicy | None:
        opts = self.options
        return opts.undo_retry_policy or opts.retry_policy

    @property
    def context(self) -> StepContext:
        try:
            return self._context
        except AttributeError:
            r = self._rec
            ctx = StepContext(r.saga_id, r.seq, r.name, _UNDO, _OUTCOME[r.status])
            self._context = ctx
            return ctx

    @property
    def phase(self) -> Phase:
        return _UNDO


def _default_name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    # temporalio stores an activity's registered name on the function itself.
    defn = getattr(fn, "__temporal_activity_definition", None)
    if defn is not None and isinstance(getattr(defn, "name", None), str):
        return str(defn.name)
    if isinstance(fn, functools.partial):
        return _default_name(fn.func)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def _arity(fn: Any) -> tuple[int, int | None, tuple[str, ...]] | None:
    """(required positional, max positional or None, required keyword-only) of `fn`."""
    if isinstance(fn, type) or not callable(fn):
        return None  # classes (workflow steps) and names are the backend's to check
    if hasattr(fn, "__temporal_workflow_definition"):
        return None  # a workflow's run method: its `self` is the child workflow's own
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    required = 0
    most: int | None = 0
    kwonly: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            most = None if most is None else most + 1
            if p.default is p.empty:
                required += 1
        elif p.kind is p.VAR_POSITIONAL:
            most = None
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            kwonly.append(p.name)
    return required, most, tuple(kwonly)


# (do, undo, nargs) -> the do's default name, for step shapes already checked. A saga
# calls the same functions over and over: checking them once keeps `step` cheap.
_checked: dict[tuple[Any, Any, int], str] = {}
_CHECKED_MAX: Final = 4096


def _check_step(do: Any, undo: Any, nargs: int) -> str:
    """Refuse an unusable do/undo or args they cannot take; return the do's default name."""
    key = (do, undo, nargs)
    try:
        return _checked[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable callable: check it every time
        key = None  # type: ignore[assignment]
    _check_callable(do, "do", nargs)
    if undo is not None:
        _check_callable(undo, "undo", nargs)
    name = _default_name(do)
    if key is not None:
        if len(_checked) >= _CHECKED_MAX:
            _checked.clear()  # a crude bound: closures made per run must not pile up
        _checked[key] = name
    return name


def _check_callable(fn: Any, role: str, nargs: int) -> None:
    if inspect.iscoroutine(fn) or inspect.isawaitable(fn):
        raise StepDefinitionError(
            f"the {role} is an awaitable ({fn!r}), not a function: pass the function and "
            f"its args separately, saga.step(book_car, cancel_car, trip), not "
            f"saga.step(book_car(trip), ...)"
        )
    if not callable(fn) and not isinstance(fn, str):
        raise StepDefinitionError(
            f"the {role} must be a function (or an activity/workflow on Temporal), "
            f"got {type(fn).__name__} {fn!r}"
        )
    shape = _arity(fn)  # uncached: `_check_step` caches whole step shapes already
    if shape is None:
        return
    required, most, kwonly = shape
    name = _default_name(fn)
    if kwonly:
        raise StepDefinitionError(
            f"{role} {name}() has required keyword-only parameters {list(kwonly)}: a step "
            f"passes only positional args (the same to do and undo); give them defaults "
            f"or bind them with functools.partial"
        )
    if nargs < required or (most is not None and nargs > most):
        want = f"{required}" if most == required else f"{required} to {most or 'any'}"
        raise StepDefinitionError(
            f"{role} {name}() takes {want} positional args but the step passes {nargs}: "
            f"saga.step(do, undo, *args) calls do(*args) and undo(*args) with the same "
            f"args, so both must accept them"
        )


# An error as a run keeps it: the exception, or once the run ended its (type, message).
_Error = BaseException | tuple[str, str]

# A step shape's facts, kept per (do, undo, nargs): (default name, do inline?, undo inline?).
_Shape = tuple[str, bool, bool]
_UNKNOWN: Final[_Shape] = ("", False, False)

# id(SagaOptions) -> (the options, the step options they give a step that sets none).
# Options are frozen, and an executor passes the same instance to every run.
_defaults: dict[int, tuple[SagaOptions, StepOptions]] = {}


def _defaults_of(options: SagaOptions) -> StepOptions:
    hit = _defaults.get(id(options))
    if hit is not None and hit[0] is options:
        return hit[1]
    if len(_defaults) >= 256:
        _defaults.clear()
    merged = merge(options, None)
    _defaults[id(options)] = (options, merged)  # holding `options` keeps its id unique
    return merged


class _Calling:
    """`Backend.clock` for a backend that keeps none: each read calls `time()`."""

    __slots__ = ("_time",)

    def __init__(self, backend: Backend) -> None:
        self._time = backend.time

    @property
    def seconds(self) -> float:
        return self._time()


class Saga:
    """The builder a saga function receives: `await saga.step(do, undo, *args)`.

    Executors make one per run; a saga function never constructs it. The same
    saga function runs on every backend and must not know which.
    """

    # Defaults a run changes only when something fails: set here, not per run.
    _ended: float | None = None
    _error: _Error | None = None
    _cancelled = False
    _undo_count = 0
    _errored: list[_Step] | None = None
    """Steps that hold an exception, for `_seal` to describe."""
    _undo_ok = 0
    _undo_total = 0

    def __init__(self, backend: Backend, options: SagaOptions | None = None) -> None:
        self._backend = backend
        self._options = options if options is not None else SagaOptions()
        self._defaults = _defaults_of(self._options)
        self._steps: list[_Step] = []
        self._state: str = _OPEN
        self._saga_id = backend.saga_id()
        # The clock is read twice per step: an attribute when the backend keeps one.
        self._clock: Any = backend.clock if backend.clock is not None else _Calling(backend)
        self._record_values = self._options.record_values
        self._inline_log = backend.inline_log
        shared = backend.shapes()
        # (do, undo, nargs) -> (default name, do inline?, undo inline?) of accepted shapes.
        self._shapes: dict[tuple[Any, Any, int], _Shape] = {} if shared is None else shared
        self._started = self._clock.seconds

    @property
    def saga_id(self) -> str:
        """Unique per saga run; stable across replays and worker restarts."""
        return self._saga_id

    @property
    def options(self) -> SagaOptions:
        """The saga-wide options this run uses."""
        return self._options

    @overload
    async def step(
        self,
        do: Callable[[*Ts], Awaitable[R]],
        undo: Callable[[*Ts], Any] | None,
        /,
        *args: *Ts,
        **options: Any,
    ) -> R: ...

    @overload
    async def step(
        self,
        do: Callable[[*Ts], R],
        undo: Callable[[*Ts], Any] | None,
        /,
        *args: *Ts,
        **options: Any,
    ) -> R: ...

    @overload
    async def step(self, do: Any, undo: Any, /, *args: Any, **options: Any) -> Any: ...

    # mypy cannot match a TypeVarTuple overload against an `Any` implementation.
    async def step(self, do: Any, undo: Any, /, *args: Any, **options: Any) -> Any:  # type: ignore[misc]
        """Register `undo`, then run `do(*args)` through the backend and return its result.

        Args:
            do: the forward action (a function, or on Temporal an activity, a
                child workflow or an inline `async def`).
            undo: what reverses it, called with the same `*args`; `None` when
                there is nothing to undo. Registered before `do` starts, so it
                runs even if `do` fails or times out after taking effect.
            *args: positional args of both `do` and `undo`.
            **options: `StepOptions` fields: `name`, `start_to_close_timeout`,
                `schedule_to_close_timeout`, `heartbeat_timeout`,
                `retry_policy`, `undo_retry_policy`, `task_queue`, `local`,
                `summary`. Unset ones take the saga's defaults.

        Raises:
            StepDefinitionError: do/undo unusable, or args they cannot take.
            OptionsError: an unknown or out-of-range option.
            SagaStateError: the saga has ended or is unwinding.
            Exception: whatever `do` finally raised; the executor unwinds.
        """
        if self._state is not _OPEN:
            raise SagaStateError(
                f"saga.step({_default_name(do)}) after the saga "
                + ("started unwinding" if self._state is _UNWINDING else "ended")
                + ": every step must be awaited inside the saga function, before it returns"
            )
        if options:
            name, opts = self._check_with_options(do, undo, len(args), options)
            inline = False
        else:
            # Repeated step shapes skip the checks, the backend's too: a hit is one lookup.
            opts = self._defaults
            try:
                name, inline, _ = self._shapes[do, undo, len(args)]
            except (KeyError, TypeError):  # new, or unhashable (then checked every time)
                name, inline, _ = self._learn(do, undo, len(args))
        steps = self._steps
        rec: _Step = _new(_Step)
        rec.seq = len(steps) + 1
        rec.name = name
        rec.fn = do
        rec.undo = undo
        rec.args = args
        rec.options = opts
        rec.saga_id = self._saga_id
        rec.started = self._clock.seconds
        rec.task = _task_of(_running_loop())
        if undo is None:
            rec.undo_status = UndoStatus.NONE
        steps.append(rec)  # the undo is registered from here on
        token = _current.set(rec)
        try:
            if inline:
                # The backend promised the first attempt is a bare await: make it here.
                try:
                    result = await do(*args)
                except Exception as e:
                    result = await self._backend.retry(rec, e)
                else:
                    rec.attempts = 1
                    if self._inline_log is not None:
                        self._inline_log.append(rec)
            else:
                result = await self._backend.call(rec)
        except asyncio.CancelledError as e:
            rec.status = _CANCELLED
            rec.error = e
            self._held(rec)
            raise
        except BaseException as e:
            rec.status = _FAILED
            rec.error = e
            self._held(rec)
            raise
        else:
            rec.status = _SUCCEEDED
            if self._record_values:
                rec.result = result
            return result
        finally:
            try:  # noqa: SIM105 - contextlib.suppress costs a tenth of a step
                _current.reset(token)
            except ValueError:
                # A coroutine closed by the garbage collector (a worker shutting down
                # mid-saga) runs its `finally` in another context: nothing to restore.
                pass
            rec.ended = self._clock.seconds
            waiter = rec.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _held(self, rec: _Step) -> None:
        """Note a step that now holds an exception, for `_seal` to describe."""
        if self._errored is None:
            self._errored = [rec]
        else:
            self._errored.append(rec)

    def _learn(self, do: Any, undo: Any, nargs: int) -> _Shape:
        """Check a step shape under the default options; remember it if it is hashable."""
        opts = self._defaults
        backend = self._backend
        name = self._check(do, undo, nargs, opts)
        shape = (
            name,
            backend.inline(do, _DO, opts),
            undo is not None and backend.inline(undo, _UNDO, opts),
        )
        shapes = self._shapes
        try:
            if len(shapes) >= _CHECKED_MAX:
                shapes.clear()  # a crude bound: closures made per run must not pile up
            shapes[do, undo, nargs] = shape
        except TypeError:  # an unhashable callable: checked again next time
            pass
        return shape

    def _check(self, do: Any, undo: Any, nargs: int, opts: StepOptions) -> str:
        """The core's checks, then the backend's; the do's default name."""
        name = _check_step(do, undo, nargs)
        backend = self._backend
        backend.check(do, _DO, opts)
        if undo is not None:
            backend.check(undo, _UNDO, opts)
        return name

    def _check_with_options(
        self, do: Any, undo: Any, nargs: int, options: dict[str, Any]
    ) -> tuple[str, StepOptions]:
        name = _check_step(do, undo, nargs)
        try:
            own = StepOptions(**options)
        except ValidationError as e:
            raise validation_to_options_error(f"options of step {name!r}", e) from None
        opts = merge(self._options, own)
        self._check(do, undo, nargs, opts)
        return own.name or name, opts

    async def gather(self, *steps: Awaitable[R]) -> list[R]:
        """Run steps concurrently; on the first failure cancel the rest, await them, re-raise.

        Unlike `asyncio.gather`, no sibling is left running after a failure, and
        the results come back in argument order. The saga then unwinds every
        registered step, including the cancelled ones (their outcome is unknown).

        Raises:
            Exception: the first error any of the steps raised.
        """
        tasks = [asyncio.ensure_future(s) for s in steps]
        if not tasks:
            return []
        settled: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        remaining = len(tasks)

        def on_done(t: asyncio.Future[Any]) -> None:
            nonlocal remaining
            remaining -= 1
            if settled.done():
                return
            if not t.cancelled() and t.exception() is not None:
                settled.set_result(t.exception())
            elif remaining == 0:
                settled.set_result(None)

        for t in tasks:
            t.add_done_callback(on_done)
        try:
            error = await settled
        except BaseException:
            error = None
            await _cancel_and_wait(tasks)
            raise
        if error is not None:
            await _cancel_and_wait(tasks)
            raise error
        return [t.result() for t in tasks]

    def report(self) -> SagaReport:
        """A snapshot of the run so far (cheap enough to serve a query)."""
        backend = self._backend
        record = self._options.record_values
        steps = []
        for r in self._steps:
            undo = None
            if r.undo is not None:
                undo = UndoReport(
                    name=_default_name(r.undo),
                    status=r.undo_status,
                    attempts=r.undo_attempts,
                    started_at=to_datetime(r.undo_started),
                    ended_at=to_datetime(r.undo_ended),
                    error=_info(backend, r.undo_error),
                    order=r.undo_order,
                )
            steps.append(
                StepReport(
                    seq=r.seq,
                    name=r.name,
                    status=r.status,
                    attempts=r.attempts,
                    started_at=to_datetime(r.started),
                    ended_at=to_datetime(r.ended),
                    error=_info(backend, r.error),
                    result=to_jsonable_python(r.result, fallback=repr) if record else None,
                    undo=undo,
                )
            )
        return SagaReport(
            saga_id=self._saga_id,
            status=self._status(),
            started_at=to_datetime(self._started),  # type: ignore[arg-type]
            ended_at=to_datetime(self._ended),
            error=_info(backend, self._error),
            cancelled=self._cancelled,
            steps=steps,
        )

    def _status(self) -> SagaStatus:
        if self._state is _OPEN:
            return SagaStatus.RUNNING
        if self._error is None:
            return SagaStatus.SUCCEEDED
        if self._state is _UNWINDING:
            return SagaStatus.COMPENSATING
        bad = (UndoStatus.FAILED, UndoStatus.SKIPPED)
        if any(r.undo_status in bad for r in self._steps):
            return SagaStatus.COMPENSATION_FAILED
        return SagaStatus.COMPENSATED

    # -- unwinding -----------------------------------------------------------

    async def _unwind(self, error: BaseException) -> CompensationError | None:
        """Compensate in a shielded task; keep waiting through further cancellations."""
        self._state = _UNWINDING
        self._error = error
        cancelled = isinstance(error, asyncio.CancelledError)
        loop = asyncio.get_running_loop()
        # Wait on the task rather than `asyncio.shield` it: a cancel of this task
        # then leaves the compensation untouched, and no "exception in shielded
        # future" is logged when it ends (sdk-python #1600). The waiter is woken by
        # the compensation's last act (one loop iteration sooner than a done
        # callback), and by a done callback should the task never have started.
        waiter = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        async def compensate() -> CompensationError | None:
            try:
                return await self._compensate()
            finally:
                wake()

        task = loop.create_task(compensate())
        task.add_done_callback(wake)
        while not task.done():
            try:
                await waiter
            except asyncio.CancelledError:
                # A second cancel must not abort compensation: note it, wait on.
                cancelled = True
                waiter = loop.create_future()
        comp_error = task.result()  # re-raises if the loop itself tore the task down
        self._cancelled = cancelled
        self._state = _CLOSED
        self._ended = self._clock.seconds
        self._seal()
        return comp_error

    def _seal(self) -> None:
        """Keep only the described errors of an ended saga, not the exceptions.

        An exception's traceback holds the frames that hold this saga: kept, it
        makes every failed run a reference cycle only the garbage collector can
        free, and an executor that keeps its runs' reports would keep all their
        frames too. The report needs only each error's type and message.
        """
        describe = self._backend.describe_error  # (type, message): no model made until a report
        if isinstance(self._error, BaseException):
            self._error = describe(self._error)
        if self._errored is not None:
            for r in self._errored:
                if isinstance(r.error, BaseException):
                    r.error = describe(r.error)
                if isinstance(r.undo_error, BaseException):
                    r.undo_error = describe(r.undo_error)
            self._errored = None

    async def _compensate(self) -> CompensationError | None:
        # One pass, newest first: the undos to run, and the steps still in flight.
        todo: list[_Step] = []
        running: list[_Step] = []
        for r in reversed(self._steps):
            if r.status is _RUNNING:
                running.append(r)
            if r.undo is not None:
                todo.append(r)
        # 1. No undo may start while its own do may still run: stop the steps in flight.
        if running:
            me = asyncio.current_task()
            for r in running:
                if r.task is not None and r.task is not me and not r.task.done():
                    r.task.cancel()
            loop = asyncio.get_running_loop()
            for r in running:
                if r.status is _RUNNING:
                    r.waiter = loop.create_future()
                    await r.waiter
        # 2. Undo what was registered, last registered first (or all at once).
        self._undo_total = len(todo)
        errors: list[Exception] = []
        if self._options.parallel_compensation:
            tasks = [asyncio.ensure_future(self._run_undo(r)) for r in todo]
            for t in tasks:
                await t
            errors = [e for r in todo if isinstance(e := r.undo_error, Exception)]
        else:
            keep_going = self._options.continue_on_compensation_error
            for r in todo:
                if errors and not keep_going:
                    r.undo_status = UndoStatus.SKIPPED
                    continue
                await self._run_undo(r)
                if isinstance(e := r.undo_error, Exception):
                    errors.append(e)
        if not errors:
            return None
        names = [r.name for r in todo if r.undo_status is UndoStatus.FAILED]
        return CompensationError(f"{len(errors)} undo(s) failed: {', '.join(names)}", errors)

    async def _run_undo(self, r: _Step) -> None:
        self._undo_count += 1
        r.undo_order = self._undo_count
        r.undo_status = UndoStatus.RUNNING
        r.undo_started = self._clock.seconds
        call = _UndoCall(r)
        # Inline as the do was, if its shape is still known to be (a fault may have come),
        # and the step has no options of its own. The attempt below mirrors `step`'s:
        # a shared helper would add back the coroutine frame the inline path saves.
        try:
            inline = (
                r.options is self._defaults
                and self._shapes.get((r.fn, r.undo, len(r.args)), _UNKNOWN)[2]
            )
        except TypeError:  # an unhashable callable: never inline
            inline = False
        token = _current.set(call)
        try:
            if inline:
                try:
                    await r.undo(*r.args)
                except Exception as e:
                    await self._backend.retry(call, e)
                else:
                    call.attempts = 1
                    if self._inline_log is not None:
                        self._inline_log.append(call)
            else:
                await self._backend.call(call)
        except Exception as e:  # the undo finally failed: recorded, reported, raised later
            r.undo_status = UndoStatus.FAILED
            r.undo_error = e
            self._held(r)
        else:
            r.undo_status = UndoStatus.COMPENSATED
            self._undo_ok += 1
        finally:
            try:  # noqa: SIM105 - contextlib.suppress costs a tenth of an undo
                _current.reset(token)
            except ValueError:  # closed by the garbage collector in another context
                pass
            r.undo_ended = self._clock.seconds
            r.undo_attempts = call.attempts


async def _cancel_and_wait(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel what still runs and wait for all of it to end: nothing outlives its group."""
    pending = [t for t in tasks if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending)


def _info(backend: Backend, e: _Error | None) -> ErrorInfo | None:
    if e is None:
        return None
    type_name, message = e if isinstance(e, tuple) else backend.describe_error(e)
    return ErrorInfo(type=type_name, message=message)


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
    if (
        not (type(fn) is FunctionType and fn.__code__.co_flags & CO_COROUTINE)
        and not (inspect.iscoroutinefunction(fn))
        and not inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
        )
    ):
        raise StepDefinitionError(
            f"a saga must be an `async def` that takes the Saga first, like "
            f"`async def book_trip(saga: Saga, trip): ...`; got {fn!r}"
        )
    try:
        result = await fn(saga, *args)
        if _RUNNING in map(_status_of, saga._steps):  # C-speed scan: this runs every time
            stray = [r.name for r in saga._steps if r.status is _RUNNING]
            raise SagaStateError(
                f"the saga function returned while steps {stray} were still running: "
                f"await every saga.step(...) (use saga.gather for concurrent steps)"
            )
    except BaseException as error:
        if saga._backend.passes_through(error):
            raise
        comp_error = await saga._unwind(error)
        if not isinstance(error, Exception):
            # Cancellation, KeyboardInterrupt, SystemExit: unwound, then re-raised as they
            # are. Wrapped in SagaFailed (an Exception) they could be caught and ignored.
            raise
        if saga._cancelled:
            # The body failed, then the caller cancelled us during the unwind.
            raise asyncio.CancelledError() from error
        message = _message(saga)
        if comp_error is not None:
            comp_error.report = saga.report()
            raise SagaFailed(message, comp_error.report, comp_error) from error
        # The report is built when first read: a caller that only catches pays nothing.
        raise SagaFailed(message, saga.report, None) from error
    saga._state = _CLOSED
    saga._ended = saga._clock.seconds
    if saga._errored is not None:  # a step failed and the saga caught it
        saga._seal()
    return result


def _message(saga: Saga) -> str:
    """The one-line summary of a failed saga, once it is unwound and sealed."""
    failed = None
    for r in saga._steps:  # the first step to fail, by registration
        if r.status is _FAILED:
            failed = r
            break
    where = f"at step {failed.seq} {failed.name!r}" if failed else "in the saga body"
    error = saga._error
    what = f"{error[0]}: {error[1]}" if isinstance(error, tuple) else "?"
    return (
        f"saga {saga.saga_id} failed {where} ({what}); "
        f"{saga._undo_ok} of {saga._undo_total} undo(s) succeeded"
    )
