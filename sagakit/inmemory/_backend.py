"""The in-memory backend: each `StepCall` run in this process, retried on a virtual clock.

Retries follow the step's `RetryPolicy` with tenacity, sleeping on the
executor's `VirtualClock`; timeouts bound real code in real time and injected
latency on the virtual clock; faults hit the attempts they name.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from datetime import timedelta
from types import FunctionType
from typing import Any, Protocol

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
from sagakit._checks import check_payload_size, refuse_temporal_only
from sagakit._context import StepContext
from sagakit._exceptions import StepTimeoutError
from sagakit._options import RetryPolicy, StepOptions
from sagakit.inmemory._activity import run_activity
from sagakit.inmemory._clock import VirtualClock
from sagakit.inmemory._faults import Fault, fault_for

__all__ = ["InMemoryBackend", "Settings"]


class Settings(Protocol):
    """What the backend reads off its executor at each call: users may change it between runs."""

    faults: list[Fault]
    clock: VirtualClock
    default_retry_policy: RetryPolicy
    unlimited_attempts: int
    record_calls: bool
    payload_limit: int | None


def _kind_of(fn: Any) -> str:
    """How to run `fn` in memory: "activity" or "callable"; refuse what only Temporal runs."""
    if type(fn) is FunctionType:
        # Most steps: read the function's own dict; a missed attribute look-up raises
        # (and catches) an AttributeError, which tripled a no-op step's instructions
        # (callgrind, a 10-step no-op saga as in bench/inmem_overhead.py).
        return "activity" if "__temporal_activity_definition" in fn.__dict__ else "callable"
    refuse_temporal_only(fn, "in memory")
    return "activity" if hasattr(fn, "__temporal_activity_definition") else "callable"


class InMemoryBackend(Backend):
    """One saga run in this process: calls run here, waits and retries on the virtual clock."""

    def __init__(
        self,
        executor: Settings,
        saga_id: str,
        log: list[tuple[StepContext, int, BaseException | None]],
        changed: asyncio.Event,
    ) -> None:
        """Serve one run of `executor`.

        Args:
            executor: The settings read at each call.
            saga_id: The run's name.
            log: Where each attempt is written down, with `record_calls`.
            changed: Set when the run starts waiting for operators.
        """
        self._executor = executor
        self._saga_id = saga_id
        self._log = log
        self._changed = changed

    def saga_id(self) -> str:
        return self._saga_id

    def time(self) -> float:
        return self._executor.clock.time()

    def check(self, do: Any, undo: Any, options: StepOptions) -> None:
        _kind_of(do)
        if undo is not None:
            _kind_of(undo)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait on the virtual clock (for operators, or the deadline); wake `wait_parked` first."""
        ex = self._executor
        self._changed.set()
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
            # Built only when there is a retry: tenacity's retrier takes 4.5 us to build,
            # most of a no-op step (6 us, bench/inmem_overhead.py's growth table).
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
        fault = fault_for(ex.faults, call.context.name, call.phase, n) if ex.faults else None
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
                self._log.append((call.context, n, e))
            raise
        if ex.record_calls:
            self._log.append((call.context, n, None))
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
            now = self._executor.clock.now()
            return run_activity(call, n, now, self._saga_id, "InMemorySaga")
        return call.fn(*call.args)

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
    return policy.retries(e)
