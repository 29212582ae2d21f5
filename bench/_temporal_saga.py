"""The same saga on sagakit, as configured by default, run on a worker with `SagakitPlugin`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from _temporal_acts import ATTEMPTS, TIMEOUT, Job, parked, release, reserve

    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor

OPTIONS = SagaOptions(
    start_to_close_timeout=TIMEOUT, retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS)
)


async def reserve_all(saga: Saga, job: Job, park: Callable[[], Awaitable[None]]) -> list[str]:
    # The same loop as the hand-written saga's (an async comprehension would add a frame).
    results: list[str] = []
    for n in range(1, job.steps + 1):
        results.append(await saga.step(reserve, release, job.order, n, job.fail_at))
    if job.park:
        await park()
    return results


@workflow.defn
class WithSagakit:
    def __init__(self) -> None:
        self._go = False

    @workflow.signal
    def go(self) -> None:
        self._go = True

    async def _park(self) -> None:
        if not workflow.unsafe.is_replaying():
            parked()
        await workflow.wait_condition(lambda: self._go)

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        return await TemporalExecutor(options=OPTIONS).run(reserve_all, job, self._park)
