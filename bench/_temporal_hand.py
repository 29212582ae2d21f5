"""The hand-written saga on Temporal, as users write it without a library.

A list of compensations, `try`/`except`, `reversed`: each undo registered before its
do (as in Temporal's own saga samples), every undo run even past a failed one. Only
temporalio: it runs on a worker without sagakit's plugin.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from _temporal_acts import ATTEMPTS, TIMEOUT, Job, parked, release, reserve


@workflow.defn
class HandWritten:
    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def go(self) -> None:
        self._go = True

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        compensations: list[int] = []
        results: list[str] = []
        try:
            for n in range(1, job.steps + 1):
                compensations.append(n)
                results.append(
                    await workflow.execute_activity(
                        reserve,
                        args=[job.order, n, job.fail_at],
                        start_to_close_timeout=TIMEOUT,
                        retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS),
                    )
                )
            if job.park:
                if not workflow.unsafe.is_replaying():
                    parked()
                await workflow.wait_condition(lambda: self._go)
        except Exception as e:
            for n in reversed(compensations):
                with contextlib.suppress(Exception):
                    await workflow.execute_activity(
                        release,
                        args=[job.order, n, job.fail_at],
                        start_to_close_timeout=TIMEOUT,
                        retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS),
                    )
            raise ApplicationError("saga failed", type="SagaFailed", non_retryable=True) from e
        return results
