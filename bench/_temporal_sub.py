"""The two workflows of `sub_saga.py` on Temporal: a package of steps inline, or a sub-saga."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from _sub_sagas import hold, make_sides, unhold
    from _temporal_acts import ATTEMPTS, TIMEOUT, Job

    from sagakit import RetryPolicy, SagaOptions
    from sagakit.temporal import TemporalExecutor

OPTIONS = SagaOptions(
    start_to_close_timeout=TIMEOUT, retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS)
)
SIDES = make_sides(hold, unhold)


@workflow.defn
class InlinePackage:
    @workflow.run
    async def run(self, job: Job) -> None:
        await TemporalExecutor(options=OPTIONS).run(SIDES["inline"], job.steps, job.fail_at)


@workflow.defn
class SubPackage:
    @workflow.run
    async def run(self, job: Job) -> None:
        await TemporalExecutor(options=OPTIONS).run(SIDES["sub"], job.steps, job.fail_at)
