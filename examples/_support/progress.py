"""Live progress from a Temporal worker: each do and undo attempt, reported as it ends.

The worker that runs the saga's activities is the one place that sees every
attempt the moment it ends; a query of the saga's report, polled, sees only
the states that happen to be current when it asks (and batches the rest).
`StepProgress` is a worker plugin with an activity interceptor that calls back
with the running step (`sagakit.current_step()`), the activity's name (the do's
or the undo's), the attempt number and the error, if any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.plugin import SimplePlugin
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

import sagakit

__all__ = ["OnAttempt", "StepProgress"]

OnAttempt = Callable[[sagakit.StepContext, str, int, BaseException | None], None]
"""Called with the step, the activity's name, the attempt (from 1) and its error (or `None`)."""


class StepProgress(SimplePlugin):
    """Reports every do and undo attempt that a worker runs, as it ends.

    List it after `SagakitPlugin` (`plugins=[SagakitPlugin(), StepProgress(...)]`):
    plugins add their interceptors in order, and this one reads the step that
    sagakit's interceptor sets. Activities that run outside a saga step are
    not reported.
    """

    def __init__(self, on_attempt: OnAttempt) -> None:
        super().__init__("examples.StepProgress", interceptors=[_Interceptor(on_attempt)])


class _Interceptor(Interceptor):
    def __init__(self, on_attempt: OnAttempt) -> None:
        self._on_attempt = on_attempt

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next, self._on_attempt)


class _Inbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, on_attempt: OnAttempt) -> None:
        super().__init__(next)
        self._on_attempt = on_attempt

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            result = await self.next.execute_activity(input)
        except BaseException as e:
            self._report(e)
            raise
        self._report(None)
        return result

    def _report(self, error: BaseException | None) -> None:
        try:
            step = sagakit.current_step()
        except sagakit.NotInStepError:
            return
        info = activity.info()
        self._on_attempt(step, info.activity_type, info.attempt, error)
