"""The in-memory executor: runs sagas with no server, for unit tests and local runs."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import itertools
import sys
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import timedelta
from types import FunctionType
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
from sagakit._checks import PAYLOAD_LIMIT, check_payload_size
from sagakit._context import Phase, StepContext, _activity_id
from sagakit._exceptions import SagaStateError, StepDefinitionError, StepTimeoutError
from sagakit._options import RetryPolicy, SagaOptions, StepOptions
from sagakit._parking import parking, parking_or_refuse
from sagakit._report import ParkedUndo, SagaReport
from sagakit._saga import Saga, run_saga
from sagakit.inmemory._clock import VirtualClock
from sagakit.inmemory._faults import Fault

__all__ = ["Attempt", "InMemoryExecutor"]

R = TypeVar("R")


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


def _kind_of(fn: Any) -> str:
    """How to run `fn` in memory: "activity" or "callable"; refuse what only Temporal runs."""
    if type(fn) is FunctionType:
        # Most steps: read the function's own dict; a missed attribute look-up raises
        # (and catches) an AttributeError, which tripled a no-op step's instructions
        # (callgrind, a 10-step no-op saga as in bench/inmem_overhead.py).
        return "activity" if "__temporal_activity_definition" in fn.__dict__ else "callable"
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
    return "activity" if hasattr(fn, "__temporal_activity_definition") else "callable"


class _InMemoryBackend(Backend):
    def __init__(self, executor: InMemoryExecutor, saga_id: str) -> None:
        self._executor = executor
        self._saga_id = saga_id

    def saga_id(self) -> str:
        return self._saga_id

    def time(self) -> float:
        return self._executor.clock.time()

    def check(self, fn: Any, phase: Phase, options: StepOptions) -> None:
        _kind_of(fn)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait for an operator on the virtual clock; tell `wait_parked` callers first."""
        ex = self._executor
        ex._changed.set()
        return await ex.clock.wait(event, seconds)

    async def call(self, call: StepCall) -> Any:
        """The first attempt, then attempts 2 and on by tenacity if it failed and may retry."""
        ex = self._executor
        if ex.payload_limit is not None:
            _check_payload(call, ex.payload_limit)
        start = ex.clock.time()
        policy = call.retry_policy or ex.default_retry_policy
        try:
            return await self._attempt(call, 1, start)
        except Exception as first:
            # Setting tenacity up costs more than a whole step: only when there is a retry.
            if policy.maximum_attempts != 1 and _retryable(first, policy):
                return await self._retry(call, first, start, policy)
            if isinstance(first, _ScheduleToCloseExceeded):
                raise StepTimeoutError(str(first)) from None
            raise

    async def _retry(
        self, call: StepCall, first: Exception, start: float, policy: RetryPolicy
    ) -> Any:
        """Attempts 2..n, driven by tenacity on the virtual clock.

        tenacity counts the first attempt, already made, as its own attempt 1
        (its error re-raised, not re-run), so its attempt numbers, waits and stop
        rules line up with Temporal's: the wait after attempt n is
        initial * coefficient^(n-1).
        """
        ex = self._executor
        sched = call.options.schedule_to_close_timeout
        deadline = _StopAtDeadline(ex.clock, start, sched)
        retrying = AsyncRetrying(
            stop=stop_any(
                stop_after_attempt(policy.maximum_attempts or ex.unlimited_attempts), deadline
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
        try:
            async for attempt in retrying:
                with attempt:
                    n = attempt.retry_state.attempt_number
                    if n == 1:
                        raise first
                    return await self._attempt(call, n, start)
        except _ScheduleToCloseExceeded as e:
            raise StepTimeoutError(str(e)) from None
        except Exception as e:
            if deadline.passed:
                raise StepTimeoutError(
                    f"{call.context.name} {call.phase.value} ran past "
                    f"schedule_to_close_timeout ({sched}) after {call.attempts} attempt(s)"
                ) from e
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def _attempt(self, call: StepCall, n: int, start: float) -> Any:
        """Attempt `n`, with the faults that hit it and the step's timeouts, recorded."""
        ex = self._executor
        call.attempts = n
        fault = ex._fault_for(call.context.name, call.phase, n) if ex.faults else None
        try:
            if fault is not None:
                if fault.latency:
                    took = fault.latency.total_seconds()
                    await ex.clock.sleep(took)
                    self._check_deadlines(call, n, took, start)
                if fault.raises and not fault.after_effect:
                    raise fault.make_error(n)
            opts = call.options
            if opts.start_to_close_timeout is None and opts.schedule_to_close_timeout is None:
                result = self._start(call, n)
                if inspect.isawaitable(result):
                    result = await result
            else:
                limit = self._time_left(call, start)
                # Real time bounds real code; virtual time (faults, backoffs) is checked above.
                try:
                    async with asyncio.timeout(max(limit, 0.0)):
                        result = self._start(call, n)
                        if inspect.isawaitable(result):
                            result = await result
                except TimeoutError as e:
                    raise StepTimeoutError(
                        f"{call.context.name} {call.phase.value} attempt {n} ran "
                        f"past its timeout ({limit:g}s)"
                    ) from e
            if fault is not None and fault.raises and fault.after_effect:
                raise fault.make_error(n)
        except Exception as e:
            if ex.record_calls:
                ex._log.append((call.context, n, e))
            raise
        if ex.record_calls:
            ex._log.append((call.context, n, None))
        return result

    def _time_left(self, call: StepCall, start: float) -> float:
        """Real seconds this attempt may run, by the step's timeouts (it has one at least)."""
        opts = call.options
        limit = _seconds(opts.start_to_close_timeout)
        if opts.schedule_to_close_timeout is not None:
            elapsed = self._executor.clock.time() - start
            left = opts.schedule_to_close_timeout.total_seconds() - elapsed
            limit = left if limit is None else min(limit, left)
        assert limit is not None
        return limit

    def _start(self, call: StepCall, n: int) -> Any:
        """Call the do or undo: its result, or what to await for it (no coroutine of ours)."""
        if _kind_of(call.fn) == "activity":
            return self._run_activity(call, n)
        return call.fn(*call.args)

    async def _run_activity(self, call: StepCall, n: int) -> Any:
        # temporalio's own test environment gives the function a real activity
        # context, so activity.info() and activity.heartbeat() work as on a worker.
        from temporalio.testing import ActivityEnvironment

        env = ActivityEnvironment()
        ctx = call.context
        defn = getattr(call.fn, "__temporal_activity_definition")
        now = self._executor.clock.now()
        env.info = dataclasses.replace(
            env.info,
            activity_id=_activity_id(ctx),
            activity_type=defn.name or call.fn.__name__,
            attempt=n,
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

    def _check_deadlines(self, call: StepCall, n: int, took: float, start: float) -> None:
        opts = call.options
        name = f"{call.context.name} {call.phase.value}"
        stc = opts.start_to_close_timeout
        if stc is not None and took > stc.total_seconds():
            raise StepTimeoutError(f"{name} attempt {n} ran past start_to_close_timeout ({stc})")
        sched = opts.schedule_to_close_timeout
        if sched is not None and self._executor.clock.time() - start > sched.total_seconds():
            raise _ScheduleToCloseExceeded(
                f"{name} ran past schedule_to_close_timeout ({sched}) on attempt {n}"
            )


def _check_payload(call: StepCall, limit: int) -> None:
    """Refuse args over Temporal's payload limit, as the Temporal backend does.

    Only args whose own size in memory is a quarter of the limit or more are
    encoded (with temporalio's default converter) to measure them: most args
    cost nothing, and a value the converter cannot encode is allowed in memory.
    """
    for arg in call.args:
        if sys.getsizeof(arg) >= limit // 4:
            break
    else:
        return
    from temporalio.converter import default

    try:
        payloads = default().payload_converter.to_payloads(call.args)
    except Exception:
        return
    check_payload_size(call, sum(p.ByteSize() for p in payloads), limit)


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


def _seconds(td: timedelta | None) -> float | None:
    return None if td is None else td.total_seconds()


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

    The executor keeps the last `keep_runs` runs (1000 by default) for
    `reports` and `last_report`, so a long test session or a local service
    does not grow without bound.

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
        keep_runs: int | None = 1000,
        payload_limit: int | None = PAYLOAD_LIMIT,
    ) -> None:
        """Set up an executor; it can run many sagas, one after another or at once.

        Args:
            options: saga-wide options (unwind knobs, step defaults).
            faults: faults to inject, matched by step name, phase and attempt.
            clock: the virtual clock (default: one starting now, moving only on sleeps).
            default_retry_policy: for steps with no policy (default: Temporal's defaults).
            unlimited_attempts: where `maximum_attempts=0` stops in memory.
            record_calls: keep an `Attempt` in `calls` for every attempt (of
                every run: `keep_runs` does not bound `calls`; pass False for
                long-lived use).
            keep_runs: how many runs to keep for `reports` and `last_report`,
                the newest; older ones are dropped, oldest first. `None`
                keeps every run (memory grows with each run: about 2 KB a
                successful 5-step run, 11 KB a failed one).
            payload_limit: refuse a do's or undo's args that encode past this
                many bytes (`PayloadTooLargeError`), as Temporal does; `None`
                checks nothing.
        """
        if unlimited_attempts < 1:
            raise ValueError("unlimited_attempts must be >= 1")
        if keep_runs is not None and keep_runs < 1:
            raise ValueError(
                f"keep_runs must be >= 1 (got {keep_runs}): it is how many runs `reports` "
                f"keeps; pass None to keep every run"
            )
        self.options = options if options is not None else SagaOptions()
        """Saga-wide options of every run."""
        self.faults: list[Fault] = list(faults)
        """The injected faults; change the list at any time, even while a saga runs."""
        self.clock = clock if clock is not None else VirtualClock()
        """The virtual clock the runs share."""
        self.default_retry_policy = default_retry_policy or RetryPolicy()
        """Policy of steps that set none."""
        self.unlimited_attempts = unlimited_attempts
        """Attempts after which an unlimited policy gives up."""
        self.record_calls = record_calls
        """Whether every attempt is recorded in `calls`."""
        self.payload_limit = payload_limit
        """Most bytes a call's args may encode to, as on Temporal; `None`: unchecked."""
        self._calls: list[Attempt] = []
        # (step context, attempt, error) of the attempts not yet in `_calls`: the
        # `Attempt` records are made only when `calls` is read.
        self._log: list[tuple[StepContext, int, BaseException | None]] = []
        # The newest `keep_runs` runs, for `reports`; a full deque drops its oldest.
        self._sagas: deque[Saga] = deque(maxlen=keep_runs)
        self._prefix = uuid.uuid4().hex[:8]
        self._runs = itertools.count(1)
        # Runs in progress, by saga id (parked ones among them), and a signal that
        # one parked or ended, for `wait_parked`.
        self._live: dict[str, Saga] = {}
        self._changed = asyncio.Event()

    @property
    def keep_runs(self) -> int | None:
        """How many runs `reports` keeps, the newest; `None`: every run."""
        return self._sagas.maxlen

    @property
    def calls(self) -> list[Attempt]:
        """Every attempt of every do and undo, in the order they ended.

        Of every run, not only the `keep_runs` kept for `reports`: pass
        `record_calls=False` to keep none. The list is brought up to date each
        time this property is read: read `executor.calls` again after a run
        rather than keeping the list from before.
        """
        self._calls.extend(
            Attempt(ctx.saga_id, ctx.seq, ctx.name, ctx.phase, n, error)
            for ctx, n, error in self._log
        )
        self._log.clear()
        return self._calls

    @calls.setter
    def calls(self, value: list[Attempt]) -> None:
        self._log.clear()
        self._calls = value

    def _fault_for(self, step: str, phase: Phase, attempt: int) -> Fault | None:
        for f in self.faults:
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
        self._live[sid] = saga
        try:
            return await run_saga(saga, saga_fn, args)
        finally:
            if self._live.get(sid) is saga:
                del self._live[sid]
            self._changed.set()

    def parked(self, saga_id: str | None = None) -> list[ParkedUndo]:
        """The undos that wait for an operator now, of one saga or of every run in progress.

        They park with `SagaOptions(on_undo_failure="park")` once their retries
        are exhausted; resolve each with `resolve`.
        """
        if saga_id is not None:
            sagas = [self._live[saga_id]] if saga_id in self._live else []
        else:
            sagas = list(self._live.values())
        return [p for saga in sagas if (park := parking(saga)) is not None for p in park.parked()]

    async def wait_parked(self, saga_id: str | None = None) -> list[ParkedUndo]:
        """Wait until a saga (this one, or any) waits for an operator; its parked undos.

        Raises:
            SagaStateError: no run that could park is left in progress (they all
                ended, or `saga_id` is not running), so waiting would never end.
        """
        await asyncio.sleep(0)  # a run just made a task has started by then
        while True:
            self._changed.clear()
            found = self.parked(saga_id)
            if found:
                return found
            if (saga_id is None and not self._live) or (
                saga_id is not None and saga_id not in self._live
            ):
                which = "no saga" if saga_id is None else f"saga {saga_id!r} is not"
                raise SagaStateError(
                    f"wait_parked(): {which} running on this executor, so none can park: "
                    f"start the run as a task first, e.g. asyncio.create_task(ex.run(...))"
                )
            await self._changed.wait()

    async def resolve(
        self,
        saga_id: str,
        seq: int,
        action: str,
        *,
        reason: str | None = None,
        by: str | None = None,
    ) -> None:
        """Resolve the parked undo of step `seq` of a saga: "retry" it or "skip" it.

        "retry" runs the undo again by its retry policy (it may park again);
        "skip" records that it was undone by hand, with `reason` and `by` in
        the report. Returns once the decision is delivered, not when a retried
        undo has run.

        Raises:
            SagaStateError: the saga is not running here, `action` is neither
                "retry" nor "skip", or step `seq` has no parked undo.
        """
        saga = self._live.get(saga_id)
        if saga is None:
            raise SagaStateError(
                f"saga {saga_id!r} is not running on this executor: nothing of it can be "
                f"resolved (running: {sorted(self._live)[:10]})"
            )
        parking_or_refuse(saga, seq).resolve(seq, action, reason=reason, by=by)
        await asyncio.sleep(0)  # let the saga take it up

    @property
    def reports(self) -> list[SagaReport]:
        """A report of each kept run (the newest `keep_runs`), in the order they started."""
        return [s.report() for s in self._sagas]

    @property
    def last_report(self) -> SagaReport:
        """The report of the latest run (started last).

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
