"""The DBOS backend: each `StepCall` as one DBOS step, or inline in the workflow body.

A do or undo runs as `DBOS.run_step_async` under a name made of its saga, seq,
step name and phase (`1.book_car`, `1.book_car.undo`): DBOS matches a recovered
workflow's steps by order and name, so a completed step's outcome is read back
from the checkpoint, never run again. The attempts of one call run inside that
one step, by the step's `RetryPolicy` (as the in-memory executor runs them, on
the real clock): a DBOS step checkpoints only its final outcome.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from dbos import DBOS
from dbos._error import DBOSBaseException, DBOSException

from sagakit._backend import Backend, StepCall
from sagakit._checks import is_async_callable, refuse_temporal_only
from sagakit._context import _activity_id
from sagakit._exceptions import StepDefinitionError, StepTimeoutError
from sagakit._options import RetryPolicy, StepOptions
from sagakit._parking import parking
from sagakit._unwind import UndoFailurePolicy
from sagakit.dbos._operate import take_decisions
from sagakit.inmemory._activity import run_activity

__all__ = ["DBOSBackend"]


def _is_activity(fn: Any) -> bool:
    return hasattr(fn, "__temporal_activity_definition")


def _runs_inline(fn: Any, options: StepOptions) -> bool:
    """Said `inline=True`, an `async def` (not a temporalio activity) runs in the workflow."""
    return options.inline and is_async_callable(fn) and not _is_activity(fn)


def _ends_in(seconds: float) -> float:
    return time.time() + seconds


class DBOSBackend(Backend):
    """One saga run inside one DBOS workflow execution."""

    def __init__(self, saga_id: str, index: int) -> None:
        self._saga_id = saga_id
        self._index = index
        self._rounds = 0  # waits for operators so far
        self._listed_since: dict[int, int] = {}  # parked seq -> round listed from, unbroken
        self._park_end: tuple[asyncio.Event, float] | None = None  # a wait's park_timeout
        self._live = asyncio.Event()  # set once a step's body runs: no longer reading back
        self.policy: UndoFailurePolicy | None = None
        """The run's undo-failure policy: with "park", `wait` takes operators' decisions."""

    def saga_id(self) -> str:
        """The workflow id, plus `/n` for the n-th saga (n >= 2) of the workflow."""
        return self._saga_id

    def time(self) -> float:
        """The wall clock: a recovered run's report shows when it ran again."""
        return time.time()

    def check(self, do: Any, undo: Any, options: StepOptions) -> None:
        """Accept callables; refuse names and Temporal-only targets, and inline sync code."""
        fns = [do] if undo is None else [do, undo]
        for fn in fns:
            refuse_temporal_only(fn, "on DBOS")
        if options.inline and not any(_runs_inline(fn, options) for fn in fns):
            raise StepDefinitionError(
                f"step {options.name or getattr(do, '__name__', do)!r} says inline=True, but "
                f"neither its do nor its undo is an `async def` that is not a temporalio "
                f"activity (those run as DBOS steps): nothing would run inline; drop "
                f"inline=True, or make the one that waits for a message `async def`"
            )

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """`event`, or a durable `DBOS.sleep_async`: its end is checkpointed, recovery keeps it.

        A saga waiting for operators takes their decisions from DBOS messages meanwhile.
        """
        park = None if self.policy is None else parking(self.policy)
        if park is not None and park.waiting:
            self._rounds += 1
            end = None if seconds is None else await self._park_deadline(event, seconds)
            return await take_decisions(park, event, end, self._rounds, self._listed_since)
        if seconds is None:
            await event.wait()
            return True
        # DBOS numbers the sleep when its task first runs, in the loop's FIFO order, which
        # a recovered run repeats.
        sleep = asyncio.ensure_future(DBOS.sleep_async(seconds))
        woke = asyncio.ensure_future(event.wait())
        live = asyncio.ensure_future(self._live.wait())
        start = time.monotonic()
        try:
            await asyncio.wait([sleep, woke], return_when=asyncio.FIRST_COMPLETED)
            if not event.is_set() and time.monotonic() - start < seconds * 0.99:
                # The timer's end, checkpointed by an earlier execution, had passed: this is
                # a recovered run reading its finished steps back. It fires on the first step
                # that really runs, as it did then (or later): fired amid the read-back it
                # would change which steps run, and DBOS refuses a diverging workflow.
                await asyncio.wait([live, woke], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleep, woke, live):
                task.cancel()
            await asyncio.wait([sleep, woke, live])
        return event.is_set()

    async def _park_deadline(self, event: asyncio.Event, seconds: float) -> float:
        """When a wait for operators ends by `park_timeout`, on the wall clock.

        Checkpointed as a DBOS step at the wait's first round (its `event`), so
        a recovered run keeps the first run's end: recomputed from the recovered
        process's clock, a wait restarted at each crash could outlast it.
        """
        if self._park_end is None or self._park_end[0] is not event:
            end = await DBOS.run_step_async({"name": "sagakit.park_timeout"}, _ends_in, seconds)
            self._park_end = (event, end)
        return self._park_end[1]

    async def call(self, call: StepCall) -> Any:
        """Run the call inline, or as one DBOS step holding all of its attempts."""
        if _runs_inline(call.fn, call.options):
            call.attempts = 1
            return await call.fn(*call.args)
        # No await before this: DBOS numbers steps in the order they start.
        name = _activity_id(call.context, self._index)
        ended: list[BaseException | None] = []  # the body's outcome, once it ran
        try:
            return await DBOS.run_step_async({"name": name}, self._step, call, ended)
        except Exception as e:
            if not ended or e is ended[0] or isinstance(e, DBOSException):
                raise  # the call's own error (or one read back from the checkpoint)
            # The body ended, then DBOS could not write its outcome down.
            outcome = "error" if ended[0] is not None else "result"
            raise StepDefinitionError(
                f"the {call.phase.value} of step {call.context.name!r} ran, but DBOS could "
                f"not checkpoint its {outcome} ({type(e).__name__}: {e}): return and raise "
                f"values DBOS's serializer can store (pickle, by default)"
            ) from e

    async def _step(self, call: StepCall, ended: list[BaseException | None]) -> Any:
        """The DBOS step's body: every attempt; `ended` tells `call` the body's outcome."""
        self._live.set()
        try:
            result = await self._attempts(call)
        except BaseException as e:
            ended.append(e)
            raise
        ended.append(None)
        return result

    async def _attempts(self, call: StepCall) -> Any:
        """Attempt 1, 2, ... by the call's retry policy; the last one's result or error."""
        policy = call.retry_policy or RetryPolicy()
        limit = call.options.schedule_to_close_timeout
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            call.attempts = n
            try:
                return await self._attempt(call, n, start)
            except Exception as e:
                if n == policy.maximum_attempts or not policy.retries(e):
                    raise
                wait = min(
                    policy.initial_interval.total_seconds() * policy.backoff_coefficient ** (n - 1),
                    policy.effective_maximum_interval.total_seconds(),
                )
                if limit is not None and time.monotonic() - start + wait > limit.total_seconds():
                    raise StepTimeoutError(
                        f"{call.context.name} {call.phase.value} ran past "
                        f"schedule_to_close_timeout ({limit}) after {n} attempt(s)"
                    ) from e
                await asyncio.sleep(wait)

    async def _attempt(self, call: StepCall, n: int, start: float) -> Any:
        """Attempt `n`, bounded by `start_to_close_timeout` and what is left of the overall one."""
        opts = call.options
        bounds = [t.total_seconds() for t in (opts.start_to_close_timeout,) if t is not None]
        if opts.schedule_to_close_timeout is not None:
            left = opts.schedule_to_close_timeout.total_seconds() - (time.monotonic() - start)
            bounds.append(max(left, 0.0))
        cut = asyncio.timeout(min(bounds) if bounds else None)
        try:
            async with cut:
                return await self._start(call, n)
        except TimeoutError as e:
            if not cut.expired():
                raise  # the function's own TimeoutError
            raise StepTimeoutError(
                f"{call.context.name} {call.phase.value} attempt {n} ran past its timeout "
                f"({min(bounds):g}s)"
            ) from e

    async def _start(self, call: StepCall, n: int) -> Any:
        fn, args = call.fn, call.args
        if _is_activity(fn):
            return await run_activity(
                call, n, datetime.now(UTC), DBOS.workflow_id or "", "DBOSSaga"
            )
        if is_async_callable(fn):
            return await fn(*args)
        # A sync function runs in a thread (the workflow's loop goes on), and is waited
        # for to its end even when cancelled: no undo may start while it still runs.
        thread = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            return await asyncio.shield(thread)
        except asyncio.CancelledError:
            await asyncio.wait([thread])
            raise

    def passes_through(self, exc: BaseException) -> bool:
        """DBOS stopping this execution: cancelled, or taken over by another (resumed, recovered).

        Every further step, undos too, is refused then; the execution that owns the
        workflow now (if any) carries the saga on.
        """
        return isinstance(exc, DBOSBaseException)
