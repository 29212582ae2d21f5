"""The in-memory executor: runs sagas with no server, for unit tests and local runs."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import itertools
import uuid
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    wait_exponential,
)
from tenacity.stop import stop_base

from sagakit._backend import Backend, StepCall
from sagakit._context import Phase
from sagakit._exceptions import StepDefinitionError, StepTimeoutError
from sagakit._options import RetryPolicy, SagaOptions, StepOptions
from sagakit._report import SagaReport
from sagakit._saga import Saga, run_saga
from sagakit.inmemory._clock import VirtualClock
from sagakit.inmemory._faults import Fault

__all__ = ["Attempt", "InMemoryExecutor"]

R = TypeVar("R")

_ASYNC, _SYNC, _ACTIVITY = "async", "sync", "activity"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a do or undo, as the executor recorded it."""

    saga_id: str
    """The saga run it belongs to."""
    seq: int
    """The step's registration number."""
    step: str
    """The step's name."""
    phase: Phase
    """Do or undo."""
    attempt: int
    """The attempt number, from 1."""
    error: BaseException | None
    """`None` when the attempt succeeded."""

    @property
    def ok(self) -> bool:
        """Whether the attempt succeeded."""
        return self.error is None


def _kind(fn: Any) -> str:
    if isinstance(fn, str):
        raise StepDefinitionError(
            f"in memory a step is a callable, not an activity name ({fn!r}): pass the "
            f"activity function itself"
        )
    if getattr(type(fn), "__sagakit_temporal_only__", False):
        raise StepDefinitionError(
            f"{fn!r} names a Temporal activity or workflow, which runs only on Temporal: "
            f"in memory pass a function that does the same"
        )
    if isinstance(fn, type) and hasattr(fn, "__temporal_workflow_definition"):
        raise StepDefinitionError(
            f"{fn.__name__} is a Temporal workflow: child-workflow steps run only on "
            f"Temporal; in memory pass a function that does the same"
        )
    if hasattr(fn, "__temporal_activity_definition"):
        return _ACTIVITY
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
    ):
        return _ASYNC
    return _SYNC


def _timed(ex: InMemoryExecutor, opts: StepOptions) -> bool:
    """Whether `opts` sets a timeout; remembers the last options that set none."""
    if opts.start_to_close_timeout or opts.schedule_to_close_timeout:
        return True
    ex._untimed = opts
    return False


class _InMemoryBackend(Backend):
    def __init__(self, executor: InMemoryExecutor, saga_id: str) -> None:
        self._executor = executor
        self._saga_id = saga_id
        # The core reads this attribute twice per step instead of calling `time()`;
        # None for a clock that follows the wall, which `time()` serves.
        self.clock = executor.clock._cell
        if executor.record_calls:
            self.inline_log = executor._log

    def saga_id(self) -> str:
        return self._saga_id

    def time(self) -> float:
        return self._executor.clock.time()

    def check(self, fn: Any, phase: Phase, options: StepOptions) -> None:
        kinds = self._executor._kinds
        try:
            if fn not in kinds:
                kinds[fn] = _kind(fn)
        except TypeError:  # unhashable callable: check it uncached
            _kind(fn)

    async def call(self, call: StepCall) -> Any:
        ex = self._executor
        opts = call.options
        # Fast path: the first attempt runs with no retry machinery at all.
        try:
            if ex._faults or (opts is not ex._untimed and _timed(ex, opts)):
                start = ex.clock.time()
                result = await self._attempt(call, 1, start)
            else:
                # No schedule_to_close_timeout here: a retry does not need the start.
                start = 0.0
                fn = call.fn
                try:
                    kind = ex._kinds.get(fn)
                except TypeError:  # unhashable: never cached
                    kind = None
                if kind is _ASYNC:  # the common case, one frame fewer
                    result = await fn(*call.args)
                else:
                    result = await self._invoke(call, 1)
        except Exception as first:
            return await self.retry(call, first, start)
        call.attempts = 1
        if ex.record_calls:
            ex._log.append(call)  # made into an `Attempt` only when `calls` is read
        return result

    def inline(self, fn: Any, phase: Phase, options: StepOptions) -> bool:
        # A bare await is all an attempt is for an async function with no timeout,
        # while no fault is set (the fault list clears the shapes when it changes).
        ex = self._executor
        if ex._faults or options.start_to_close_timeout or options.schedule_to_close_timeout:
            return False
        try:
            return ex._kinds.get(fn) is _ASYNC
        except TypeError:  # unhashable: its kind is never cached, so never inline
            return False

    def shapes(self) -> dict[Any, Any]:
        return self._executor._shapes_for_run()

    async def retry(self, call: StepCall, error: Exception, start: float = 0.0) -> Any:
        """Record a failed first attempt; retry it by its policy, or raise it."""
        first = error
        del error  # held by no frame of the traceback: no reference cycle
        ex = self._executor
        if ex.record_calls:
            ex._log.append(_attempt_record(call, 1, first))
        policy = call.retry_policy or ex.default_retry_policy
        if policy.maximum_attempts == 1 or not _retryable(first, policy):
            call.attempts = 1  # nothing to retry: no tenacity set-up on this path
            try:
                if isinstance(first, _ScheduleToCloseExceeded):
                    raise StepTimeoutError(str(first)) from None
                raise first
            finally:
                del first  # this frame, in the traceback, must not hold the error: no cycle
        return await self._retry(call, first, start, policy)

    async def _invoke(self, call: StepCall, attempt: int) -> Any:
        fn = call.fn
        try:
            kind = self._executor._kinds[fn]
        except (KeyError, TypeError):
            kind = _kind(fn)
        if kind is _ASYNC:
            return await fn(*call.args)
        if kind is _ACTIVITY:
            return await self._run_activity(call, attempt)
        result = fn(*call.args)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _run_activity(self, call: StepCall, attempt: int) -> Any:
        # temporalio's own test environment gives the function a real activity
        # context, so activity.info() and activity.heartbeat() work as on a worker.
        from temporalio.testing import ActivityEnvironment

        env = ActivityEnvironment()
        ctx = call.context
        suffix = ".undo" if ctx.phase is Phase.UNDO else ""
        defn = getattr(call.fn, "__temporal_activity_definition")
        now = self._executor.clock.now()
        env.info = dataclasses.replace(
            env.info,
            activity_id=f"{ctx.seq}.{ctx.name}{suffix}",
            activity_type=defn.name or call.fn.__name__,
            attempt=attempt,
            workflow_id=self._saga_id,
            workflow_type="InMemorySaga",
            heartbeat_timeout=call.options.heartbeat_timeout,
            start_to_close_timeout=call.options.start_to_close_timeout,
            schedule_to_close_timeout=call.options.schedule_to_close_timeout,
            scheduled_time=now,
            started_time=now,
            current_attempt_scheduled_time=now,
        )
        env.on_heartbeat = lambda *details: None
        result = env.run(call.fn, *call.args)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _attempt(self, call: StepCall, attempt: int, first_start: float) -> Any:
        """One attempt with faults and timeouts applied."""
        ex = self._executor
        opts = call.options
        fault = ex._fault_for(call.context.name, call.context.phase, attempt)
        if fault is not None:
            if fault.latency:
                took = fault.latency.total_seconds()
                await ex.clock.sleep(took)
                self._check_deadlines(call, attempt, took, first_start)
            if fault.raises and not fault.after_effect:
                raise fault.make_error(attempt)
        limit = _seconds(opts.start_to_close_timeout)
        if opts.schedule_to_close_timeout is not None:
            left = opts.schedule_to_close_timeout.total_seconds() - (ex.clock.time() - first_start)
            limit = left if limit is None else min(limit, left)
        if limit is None:
            result = await self._invoke(call, attempt)
        else:
            # Real time bounds real code; virtual time (faults, backoffs) is checked above.
            try:
                async with asyncio.timeout(max(limit, 0.0)):
                    result = await self._invoke(call, attempt)
            except TimeoutError as e:
                raise StepTimeoutError(
                    f"{call.context.name} {call.context.phase.value} attempt {attempt} ran "
                    f"past its timeout ({limit:g}s)"
                ) from e
        if fault is not None and fault.raises and fault.after_effect:
            raise fault.make_error(attempt)
        return result

    def _check_deadlines(
        self, call: StepCall, attempt: int, took: float, first_start: float
    ) -> None:
        opts = call.options
        name = f"{call.context.name} {call.context.phase.value}"
        stc = opts.start_to_close_timeout
        if stc is not None and took > stc.total_seconds():
            raise StepTimeoutError(
                f"{name} attempt {attempt} ran past start_to_close_timeout ({stc})"
            )
        sched = opts.schedule_to_close_timeout
        if sched is not None and self._executor.clock.time() - first_start > sched.total_seconds():
            raise _ScheduleToCloseExceeded(
                f"{name} ran past schedule_to_close_timeout ({sched}) on attempt {attempt}"
            )

    async def _retry(
        self, call: StepCall, first: Exception, first_start: float, policy: RetryPolicy
    ) -> Any:
        """Attempts 2..n, driven by tenacity on the virtual clock.

        tenacity sees the failed first attempt as its own attempt 1 (replayed,
        not re-run), so its attempt numbers, waits and stop rules line up with
        Temporal's: the wait after attempt n is initial * coefficient^(n-1).
        """
        ex = self._executor
        sched = call.options.schedule_to_close_timeout
        stop_at_deadline = _StopAtDeadline(ex.clock, first_start, sched)

        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(policy.maximum_attempts or ex.unlimited_attempts),
                stop_at_deadline,
            ),
            wait=wait_exponential(
                multiplier=policy.initial_interval.total_seconds(),
                exp_base=policy.backoff_coefficient,
                max=policy.effective_maximum_interval.total_seconds(),
            ),
            sleep=ex.clock.sleep,
            retry=retry_if_exception(lambda e: _retryable(e, policy)),
            reraise=True,
        )
        n = 1
        try:
            async for attempt_ctx in retrying:
                with attempt_ctx:
                    n = attempt_ctx.retry_state.attempt_number
                    call.attempts = n
                    if n == 1:
                        raise first
                    try:
                        result = await self._attempt(call, n, first_start)
                    except Exception as e:
                        if ex.record_calls:
                            ex._log.append(_attempt_record(call, n, e))
                        raise
                    if ex.record_calls:
                        ex._log.append(_attempt_record(call, n, None))
                    return result
        except _ScheduleToCloseExceeded as e:
            raise StepTimeoutError(str(e)) from None
        except Exception as e:
            if stop_at_deadline.passed:
                raise StepTimeoutError(
                    f"{call.context.name} {call.context.phase.value} ran past "
                    f"schedule_to_close_timeout ({sched}) after {n} attempt(s)"
                ) from e
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")


class _StopAtDeadline(stop_base):
    """Stop retrying when the next backoff would end past `schedule_to_close_timeout`."""

    def __init__(self, clock: VirtualClock, start: float, limit: timedelta | None) -> None:
        self.clock = clock
        self.start = start
        self.limit = None if limit is None else limit.total_seconds()
        self.passed = False

    def __call__(self, state: RetryCallState) -> bool:
        if self.limit is None:
            return False
        self.passed = self.clock.time() + state.upcoming_sleep - self.start > self.limit
        return self.passed


class _ScheduleToCloseExceeded(StepTimeoutError):
    """Internal: the overall deadline passed; never retried."""


def _seconds(td: Any) -> float | None:
    return None if td is None else float(td.total_seconds())


def _retryable(e: BaseException, policy: RetryPolicy) -> bool:
    if not isinstance(e, Exception) or isinstance(e, _ScheduleToCloseExceeded):
        return False  # cancellation and the overall deadline end the step
    if getattr(e, "non_retryable", False) is True:  # temporalio's ApplicationError
        return False
    names = policy.non_retryable_error_types
    if not names:
        return True
    # Exactly as Temporal matches: an ApplicationError's `type`, else the class's own
    # name (not its bases'), so a saga tested here retries the same way there.
    kind = getattr(e, "type", None)
    return (kind if isinstance(kind, str) and kind else type(e).__name__) not in names


# A frozen dataclass's __init__ goes through object.__setattr__ per field; the slot
# descriptors set the same fields in half the time. One record per attempt, on the
# fast path, and `calls` is on by default: worth the trick.
_new_attempt = object.__new__
_set_saga_id, _set_seq, _set_step, _set_phase, _set_attempt, _set_error = (
    getattr(Attempt, f.name).__set__ for f in dataclasses.fields(Attempt)
)


def _attempt_record(call: StepCall, n: int, error: BaseException | None) -> Attempt:
    ctx = call.context
    a: Attempt = _new_attempt(Attempt)
    _set_saga_id(a, ctx.saga_id)
    _set_seq(a, ctx.seq)
    _set_step(a, ctx.name)
    _set_phase(a, ctx.phase)
    _set_attempt(a, n)
    _set_error(a, error)
    return a


class _Faults(list[Fault]):
    """The executor's fault list: any change forgets which step shapes may run inline."""

    def __init__(self, faults: Iterable[Fault], changed: Callable[[], None]) -> None:
        super().__init__(faults)
        self._changed = changed


def _notifying(name: str) -> Any:
    method = getattr(list, name)

    @functools.wraps(method)
    def wrapper(self: _Faults, *args: Any) -> Any:
        result = method(self, *args)
        self._changed()
        return result

    return wrapper


for _name in (
    "append", "extend", "insert", "remove", "pop", "clear",
    "__setitem__", "__delitem__", "__iadd__", "__imul__",
):  # fmt: skip
    setattr(_Faults, _name, _notifying(_name))


class InMemoryExecutor:
    """Runs a saga function with no server: the backend users unit-test their sagas with.

    Do and undo may be sync or async callables, or temporalio `@activity.defn`
    functions (run with a real activity context, so `activity.info()` and
    `activity.heartbeat()` work). Retries follow each step's `RetryPolicy` with
    tenacity, sleeping on a `VirtualClock`; timeouts are enforced; `faults`
    make chosen attempts fail or take long without touching the functions.

    Ignored in memory (documented): `heartbeat_timeout`, `task_queue`, `local`,
    `summary`. An unlimited retry policy (`maximum_attempts=0`) stops after
    `unlimited_attempts` attempts instead of retrying forever.

    Example:
        >>> executor = InMemoryExecutor(faults=[Fault.fail("book_flight")])
        >>> await executor.run(book_trip, trip)  # raises SagaFailed, car and hotel undone
    """

    def __init__(
        self,
        options: SagaOptions | None = None,
        *,
        faults: Iterable[Fault] = (),
        clock: VirtualClock | None = None,
        default_retry_policy: RetryPolicy | None = None,
        unlimited_attempts: int = 1000,
        record_calls: bool = True,
    ) -> None:
        """Set up an executor; it can run many sagas, one after another or at once.

        Args:
            options: saga-wide options (unwind knobs, step defaults).
            faults: faults to inject, matched by step name, phase and attempt.
            clock: the virtual clock (default: one starting now, moving only on sleeps).
            default_retry_policy: for steps with no policy (default: Temporal's defaults).
            unlimited_attempts: where `maximum_attempts=0` stops in memory.
            record_calls: keep an `Attempt` in `calls` for every attempt.
        """
        if unlimited_attempts < 1:
            raise ValueError("unlimited_attempts must be >= 1")
        self.options = options if options is not None else SagaOptions()
        """Saga-wide options of every run."""
        # Step shapes the runs share, one dict per options object they ran with (the
        # newest few): a run keeps the dict it started with even if `options` changes.
        self._shapes: list[tuple[SagaOptions, dict[Any, Any]]] = []
        self._faults = _Faults(faults, self._forget_shapes)
        self.clock = clock if clock is not None else VirtualClock()
        """The virtual clock the runs share."""
        self.default_retry_policy = default_retry_policy or RetryPolicy()
        """Policy of steps that set none."""
        self.unlimited_attempts = unlimited_attempts
        """Attempts after which an unlimited policy gives up."""
        self.record_calls = record_calls
        """Whether `calls` is kept (set it between runs: a run reads it when it starts)."""
        self._calls: list[Attempt] = []
        # Attempts not yet in `_calls`, in the order they ended: an `Attempt`, or the
        # `StepCall` of a first attempt that succeeded (the common case, recorded with
        # one append and made into an `Attempt` only when `calls` is read).
        self._log: list[Attempt | StepCall] = []
        self._sagas: list[Saga] = []
        self._kinds: dict[Any, str] = {}
        self._untimed: StepOptions | None = None
        self._prefix = uuid.uuid4().hex[:8]
        self._runs = itertools.count(1)

    @property
    def calls(self) -> list[Attempt]:
        """Every attempt of every do and undo, in the order they ended.

        The list is brought up to date each time this property is read: read
        `executor.calls` again after a run rather than keeping the list from before.
        """
        log = self._log
        if log:
            self._calls.extend(
                a if type(a) is Attempt else _attempt_record(a, 1, None)  # type: ignore[arg-type]
                for a in log
            )
            log.clear()
        return self._calls

    @calls.setter
    def calls(self, value: list[Attempt]) -> None:
        self._log.clear()
        self._calls = value

    @property
    def faults(self) -> list[Fault]:
        """The injected faults; append to add more, even while a saga runs."""
        return self._faults

    @faults.setter
    def faults(self, value: Iterable[Fault]) -> None:
        self._forget_shapes()
        self._faults = _Faults(value, self._forget_shapes)

    def _shapes_for_run(self) -> dict[Any, Any]:
        """The step shapes the runs with the current `options` share."""
        for options, shapes in self._shapes:
            if options is self.options:
                return shapes
        if len(self._shapes) >= 8:
            del self._shapes[0]
        shapes = {}
        self._shapes.append((self.options, shapes))
        return shapes

    def _forget_shapes(self) -> None:
        """Faults changed: no shape may skip fault matching until checked again."""
        for _, shapes in self._shapes:
            shapes.clear()

    def _fault_for(self, step: str, phase: Phase, attempt: int) -> Fault | None:
        for f in self._faults:
            if f.step == step and f.phase is phase and f.hits(attempt):
                return f
        return None

    async def run(
        self,
        saga_fn: Callable[..., Coroutine[Any, Any, R]],
        *args: Any,
        saga_id: str | None = None,
    ) -> R:
        """Run `saga_fn(saga, *args)` to its end and return its result.

        Args:
            saga_fn: an `async def` taking the `Saga` first.
            *args: the saga function's own args.
            saga_id: name of this run (default: unique per run); keys derive from it.

        Raises:
            SagaFailed: the saga raised and was unwound; `__cause__` is the error.
            asyncio.CancelledError: the run was cancelled; undos ran first.
            SagaDefinitionError: bad input, before anything ran.
        """
        sid = saga_id or f"saga-{self._prefix}-{next(self._runs)}"
        saga = Saga(_InMemoryBackend(self, sid), self.options)
        self._sagas.append(saga)
        return await run_saga(saga, saga_fn, args)

    @property
    def reports(self) -> list[SagaReport]:
        """A report of every run so far, in the order they started."""
        return [s.report() for s in self._sagas]

    @property
    def last_report(self) -> SagaReport:
        """The report of the latest run.

        Raises:
            LookupError: nothing has run yet.
        """
        if not self._sagas:
            raise LookupError("no saga has run on this executor yet")
        return self._sagas[-1].report()

    def attempts_of(self, step: str, phase: Phase | str = Phase.DO) -> list[Attempt]:
        """The recorded attempts of one step's do (or undo), across runs."""
        p = Phase(phase)
        return [a for a in self.calls if a.step == step and a.phase is p]
