"""The in-memory executor: runs sagas with no server, for unit tests and local runs."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sagakit._checks import PAYLOAD_LIMIT
from sagakit._context import Phase, StepContext
from sagakit._exceptions import SagaStateError
from sagakit._options import RetryPolicy, SagaOptions
from sagakit._parking import parking, parking_or_refuse
from sagakit._plan import UndoPlan
from sagakit._report import ParkedUndo, SagaReport
from sagakit._saga import Saga, run_saga
from sagakit.inmemory._backend import InMemoryBackend
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

    async def run(
        self,
        saga_fn: Callable[..., Coroutine[Any, Any, R]],
        *args: Any,
        saga_id: str | None = None,
        resume: UndoPlan | None = None,
    ) -> R:
        """Run `saga_fn(saga, *args)` to its end and return its result.

        Args:
            saga_fn: an `async def` taking the `Saga` first.
            *args: the saga function's own args.
            saga_id: name of this run (default: unique per run); keys derive from it.
            resume: an `UndoPlan` from `saga.undo_plan()` of an earlier run: its
                undos sit below this run's steps and run last if it unwinds,
                each with the idempotency key it had.

        Raises:
            SagaFailed: the saga raised and was unwound; `__cause__` is the error.
            asyncio.CancelledError: the run was cancelled; undos ran first.
            SagaDefinitionError: bad input, before anything ran.
        """
        sid = saga_id or f"saga-{self._prefix}-{next(self._runs)}"
        saga = Saga(InMemoryBackend(self, sid, self._log, self._changed), self.options)
        self._sagas.append(saga)
        self._live[sid] = saga
        try:
            return await run_saga(saga, saga_fn, args, resume)
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
        return [
            p for saga in sagas if (park := parking(saga.policy)) is not None for p in park.parked()
        ]

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
            SagaStateError: the saga is not running here; `seq` is not an int;
                `action` is neither "retry" nor "skip"; `reason` or `by` is not
                a string, or `reason` is over 4 KiB (UTF-8) or `by` over 200
                characters; step `seq` has no parked undo; or
                `SagaOptions.resolve_check` refused it.
        """
        saga = self._live.get(saga_id)
        if saga is None:
            raise SagaStateError(
                f"saga {saga_id!r} is not running on this executor: nothing of it can be "
                f"resolved (running: {sorted(self._live)[:10]})"
            )
        park = parking_or_refuse(saga.policy, seq)
        # Every check, `SagaOptions.resolve_check` included, before it is delivered.
        request = park.check_resolution(seq, action, reason, by)
        park.resolve(request.seq, request.action, reason=request.reason, by=request.by)
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
