"""What becomes of an undo that finally failed: one policy per saga run, asked by the unwind.

The unwind (`_unwind.py`) runs every undo once. Each undo that finally fails
is offered to the run's policy (`hold`): the default, "fail", holds none, so
the saga ends `COMPENSATION_FAILED` with a `CompensationError`. Once every
undo ran, the policy settles what it held (`settle`): "park" (`_parking.py`)
waits for operators to retry or skip each. Both raise the alert
(`SagaOptions.on_compensation_failed`) once, when an undo failed or parked.
A policy of one's own subclasses `UndoFailurePolicy`; the core does not change.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sagakit._backend import StepCall
from sagakit._checks import check_step
from sagakit._context import Phase, StepContext, _current, _reset
from sagakit._options import RetryPolicy, StepOptions, merge

if TYPE_CHECKING:
    from sagakit._record import Record
    from sagakit._saga import Saga
    from sagakit._unwind import Unwind

__all__ = ["HOOK_NAME", "UndoFailurePolicy"]

_log = logging.getLogger("sagakit")

HOOK_NAME = "on_compensation_failed"
"""The step name (seq 0) `SagaOptions.on_compensation_failed` runs under."""


class UndoFailurePolicy:
    """What becomes of an undo that finally failed; this base fails it ("fail").

    One instance serves one saga run. The unwind asks `hold` as each undo
    finally fails, then `settle` once every undo has run.
    """

    saga: Saga
    """The run this policy serves (set by `prepare`)."""

    def __init__(self) -> None:
        self._hook: Any = None
        self._hook_options: StepOptions | None = None

    def prepare(self, saga: Saga) -> None:
        """Called once before the saga function runs; refuses an alert hook that cannot run.

        Raises:
            StepDefinitionError: the hook cannot take the report, or the backend
                cannot run it.
        """
        self.saga = saga
        options = saga.options
        hook = options.on_compensation_failed
        if hook is None:
            return
        check_step(hook, None, 1, False)
        opts = merge(options, None)
        update: dict[str, Any] = {"name": HOOK_NAME}
        if opts.start_to_close_timeout is None and opts.schedule_to_close_timeout is None:
            update["start_to_close_timeout"] = timedelta(minutes=1)
        policy = opts.undo_retry_policy or opts.retry_policy
        if policy is None or policy.maximum_attempts == 0:
            policy = RetryPolicy(maximum_attempts=5)
        update["retry_policy"] = policy
        opts = opts.model_copy(update=update)
        saga._backend.check(hook, Phase.UNDO, opts)
        self._hook, self._hook_options = hook, opts

    def hold(self, record: Record, error: Exception) -> bool:
        """Whether to hold this undo that finally failed (it is then `PARKED`); never, here."""
        return False

    async def settle(self, unwind: Unwind, errors: list[Exception]) -> list[Exception]:
        """Once every undo ran: the errors the saga fails with (`CompensationError`).

        Args:
            unwind: The unwind, to retry an undo (`unwind.undo(record)`) or read the saga.
            errors: The final errors of the undos that failed and were not held.
        """
        if errors:
            await self.alert(unwind)
        return errors

    def interrupt(self) -> None:
        """The saga was cancelled during the unwind: stop waiting (undos keep running)."""

    async def alert(self, unwind: Unwind) -> None:
        """Run `on_compensation_failed` with the report; its failure is logged, not raised."""
        opts = self._hook_options
        if opts is None:
            return
        saga = self.saga
        context = StepContext(saga.saga_id, 0, HOOK_NAME, Phase.UNDO)
        call = StepCall(self._hook, (saga.report(),), opts, opts.retry_policy, context)
        token = _current.set(context)
        try:
            await saga._backend.call(call)
        except GeneratorExit:
            raise
        except Exception as e:
            kind, message = saga._backend.describe_error(e)
            _log.warning("saga %s: %s failed: %s: %s", saga.saga_id, HOOK_NAME, kind, message)
        finally:
            _reset(_current, token)
