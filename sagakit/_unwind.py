"""The unwind: stop what is in flight, run each registered undo once, then ask the policy.

It runs in a task of its own that a cancel of the saga cannot interrupt: a
second cancel is remembered (the saga then ends cancelled) and passed on to
the policy, which may be waiting for operators.

What becomes of an undo that finally failed is the run's `UndoFailurePolicy`:
each such undo is offered to it (`hold`) as it fails; once every undo ran,
it settles what it held (`settle`). This base class is "fail": it holds none,
and the saga ends `COMPENSATION_FAILED` with a `CompensationError`. "park"
(`_parking.py`) holds them for operators. Both raise the alert
(`SagaOptions.on_compensation_failed`) once, when an undo failed or parked. A
policy of one's own subclasses it; the core does not change.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sagakit._alert import Alert
from sagakit._backend import StepCall
from sagakit._context import Phase, StepContext, _current, _reset
from sagakit._exceptions import CompensationError
from sagakit._options import RetryPolicy, StepOptions
from sagakit._record import OUTCOME, Record, Run
from sagakit._report import StepStatus, UndoStatus
from sagakit._tasks import ended

__all__ = ["UNDO_ATTEMPTS", "UndoFailurePolicy", "Unwind", "unwind"]

UNDO_ATTEMPTS = 10
"""Attempts an undo gets when nothing else bounds it (see `bounded_for_undo`)."""


class UndoFailurePolicy:
    """What becomes of an undo that finally failed; this base fails it ("fail").

    One instance serves one saga run: `SagaOptions(on_undo_failure=...)`
    names "fail", "park", or a callable that makes one. The unwind asks
    `hold` as each undo finally fails, then `settle` once every undo has run.
    """

    run: Run
    """The run this policy serves (set by `prepare`)."""

    def prepare(self, run: Run) -> None:
        """Called once before the saga function runs; refuses an alert hook that cannot run.

        Raises:
            StepDefinitionError: the hook cannot take the report, or the backend
                cannot run it.
        """
        self.run = run
        self.alert = Alert(run)
        """Runs `SagaOptions.on_compensation_failed` with the report (if set)."""

    def hold(self, record: Record, error: Exception) -> bool:
        """Whether to hold this undo that finally failed (it is then `PARKED`); never, here."""
        return False

    async def settle(self, unwind: Unwind, errors: list[Exception]) -> list[Exception]:
        """Once every undo ran: the errors the saga fails with (`CompensationError`).

        Args:
            unwind: The unwind, to run an undo again (`unwind.undo(record)`).
            errors: The final errors of the undos that failed and were not held.
        """
        if errors:
            await self.alert()
        return errors

    def interrupt(self) -> None:
        """The saga was cancelled during the unwind: stop waiting (undos keep running).

        A policy whose `settle` waits must end that wait here (a cancelled
        workflow would otherwise hang); an undo it still holds then ends failed.
        """


async def unwind(
    run: Run, policy: UndoFailurePolicy, records: list[Record] | None = None
) -> CompensationError | None:
    """Compensate `run`, or only `records` (a failed sub-saga's), through any further cancel.

    The undos run in a task of their own, which this waits for.
    """
    task = asyncio.get_running_loop().create_task(Unwind(run, policy, records).run_all())
    # Waiting on the task, rather than `asyncio.shield`ing it, leaves the
    # compensation untouched by a cancel of this task, and logs no "exception
    # in shielded future" when it ends (temporalio sdk-python #1600).
    while not task.done():
        try:
            await ended(task)
        except asyncio.CancelledError:
            run.cancelled = True  # a second cancel must not abort compensation
            policy.interrupt()  # ... but it ends a wait for operators
    return task.result()  # re-raises if the loop itself tore the task down


class Unwind:
    """One run's unwind; what a policy is handed to run an undo again."""

    def __init__(
        self, run: Run, policy: UndoFailurePolicy, records: list[Record] | None = None
    ) -> None:
        self.run = run
        """The run being unwound."""
        self.records = run.records if records is None else records
        """The steps this unwind undoes: the run's, or a failed sub-saga's."""
        self._policy = policy

    async def run_all(self) -> CompensationError | None:
        """Stop the steps in flight, run the undos, ask the policy; the undos that failed."""
        run = self.run
        await self._stop_in_flight()
        # Undo what was registered, last registered first (or all at once); nothing
        # once the pivot has succeeded: the saga is committed.
        todo: list[Record] = []
        for r in reversed(self.records):
            # Not pending: undone already, by the unwind of a sub-saga that failed.
            if r.undo_status is not UndoStatus.PENDING or run.committed:
                continue
            if r.call.attempts == 0:  # the backend never started the do: nothing to undo
                r.undo_status = UndoStatus.NOT_NEEDED
            else:
                todo.append(r)
        errors: list[Exception] = []
        if run.options.parallel_compensation:
            results = await asyncio.gather(*(self.undo(r) for r in todo))
            errors = [e for e in results if e is not None]
        else:
            for r in todo:
                if errors and not run.options.continue_on_compensation_error:
                    r.undo_status = UndoStatus.SKIPPED
                    continue
                e = await self.undo(r)
                if e is not None:
                    errors.append(e)
        if self.records is run.records:
            run.unwound = True
        errors = await self._policy.settle(self, errors)
        for r in todo:  # held, and neither resolved nor given back by the policy: failed
            if r.undo_status is UndoStatus.PARKED:
                r.undo_status = UndoStatus.FAILED
        if not errors:
            return None
        names = [r.name for r in todo if r.undo_status is UndoStatus.FAILED]
        return CompensationError(f"{len(errors)} undo(s) failed: {', '.join(names)}", errors)

    async def _stop_in_flight(self) -> None:
        """No undo may start while its own do may still run: cancel and await those in flight."""
        me = asyncio.current_task()
        stopping: list[asyncio.Future[None]] = []
        cancelled: set[asyncio.Task[Any]] = set()
        for r in self.records:
            if r.status is StepStatus.RUNNING and r.task is not None and r.task is not me:
                r.stopped = asyncio.get_running_loop().create_future()
                stopping.append(r.stopped)
                if r.task not in cancelled:  # one task may run nested steps: cancel it once
                    cancelled.add(r.task)
                    r.task.cancel()
        for stopped in stopping:
            await stopped

    async def undo(self, r: Record) -> Exception | None:
        """Run one step's undo to its end; its final error, unless the policy held it.

        A policy that holds undos (parking) calls this again to retry one.
        """
        run = self.run
        backend = run.backend
        if r.undo_order is None:  # a retried undo keeps its place
            run.undos_started += 1  # counted per run: a sub-saga's unwind comes first
            r.undo_order = run.undos_started
            r.undo_after = len(run.records)
        r.undo_status = UndoStatus.RUNNING
        r.undo_started = backend.time()
        r.undo_ended = r.undo_error = None
        opts = r.call.options
        args = r.call.args
        if opts.pass_result:  # the do's result, or None: it failed, or its outcome is unknown
            args = (*args, r.result if r.status is StepStatus.SUCCEEDED else None)
        context = StepContext(
            run.saga_id, r.seq, r.name, Phase.UNDO, OUTCOME[r.status], r.call.context.key
        )
        policy = opts.undo_retry_policy or bounded_for_undo(opts.retry_policy, opts)
        call = r.undo_call = StepCall(r.undo, args, opts, policy, context)
        token = _current.set(context)
        try:
            await backend.call(call)
        except GeneratorExit:
            raise  # closed by the garbage collector (a worker shut down): touch nothing
        except Exception as e:  # the undo finally failed: recorded, then held or returned
            r.undo_error = run.describe(e)
            r.undo_ended = backend.time()
            if self._policy.hold(r, e):
                r.undo_status = UndoStatus.PARKED
                return None
            r.undo_status = UndoStatus.FAILED
            return e
        finally:
            _reset(_current, token)
        r.undo_status = UndoStatus.COMPENSATED
        r.undo_ended = backend.time()
        return None


def bounded_for_undo(policy: RetryPolicy | None, opts: StepOptions) -> RetryPolicy | None:
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
        return policy.model_copy(update={"maximum_attempts": UNDO_ATTEMPTS})
    return policy


_DEFAULT_UNDO_POLICY = RetryPolicy(maximum_attempts=UNDO_ATTEMPTS)
