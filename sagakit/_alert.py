"""The alert hook: `SagaOptions.on_compensation_failed`, run once when an undo failed or parked.

Checked before the saga function runs (a hook that cannot run is refused
then, not found out mid-unwind), run by the undo failure policy once the
unwind pass is over, with the report. Its own failure is logged, never raised.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sagakit._backend import StepCall
from sagakit._checks import check_step
from sagakit._context import Phase, StepContext, _current, _reset
from sagakit._options import RetryPolicy, StepOptions, merge
from sagakit._record import Run

__all__ = ["HOOK_NAME", "Alert"]

_log = logging.getLogger("sagakit")

HOOK_NAME = "on_compensation_failed"
"""The step name (seq 0) `SagaOptions.on_compensation_failed` runs under."""


class Alert:
    """A run's alert hook, checked; calling it runs the hook (once per call) with the report."""

    def __init__(self, run: Run) -> None:
        """Check the hook as a step's undo is checked.

        Raises:
            StepDefinitionError: the hook cannot take the report, or the backend
                cannot run it.
        """
        self._run = run
        self._hook: Any = run.options.on_compensation_failed
        self._options: StepOptions | None = None
        if self._hook is None:
            return
        check_step(self._hook, None, 1, False)
        opts = merge(run.options, None)
        update: dict[str, Any] = {"name": HOOK_NAME}
        if opts.start_to_close_timeout is None and opts.schedule_to_close_timeout is None:
            update["start_to_close_timeout"] = timedelta(minutes=1)
        policy = opts.undo_retry_policy or opts.retry_policy
        if policy is None or policy.maximum_attempts == 0:
            policy = RetryPolicy(maximum_attempts=5)
        update["retry_policy"] = policy
        opts = opts.model_copy(update=update)
        run.backend.check(self._hook, None, opts)
        self._options = opts

    async def __call__(self) -> None:
        """Run the hook with the report; its failure is logged, not raised."""
        opts = self._options
        if opts is None:
            return
        run = self._run
        context = StepContext(run.saga_id, 0, HOOK_NAME, Phase.UNDO)
        call = StepCall(self._hook, (run.report(),), opts, opts.retry_policy, context)
        token = _current.set(context)
        try:
            await run.backend.call(call)
        except GeneratorExit:
            raise
        except Exception as e:
            kind, message = run.backend.describe_error(e)
            _log.warning("saga %s: %s failed: %s: %s", run.saga_id, HOOK_NAME, kind, message)
        finally:
            _reset(_current, token)
