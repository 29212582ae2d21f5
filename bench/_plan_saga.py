"""Workflows of `undo_plan.py`: a batch that continues as new with its undo plan, and an unwind.

`PlanBatch` reserves `per_run` items a run and continues as new with
`saga.undo_plan()`; item `fail_at` fails, and the last run unwinds the whole
plan. `UnwindPlan` is given a plan and fails at once: it only unwinds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from _temporal_acts import ATTEMPTS, TIMEOUT, release, reserve

    from sagakit import RetryPolicy, Saga, SagaOptions, UndoPlan
    from sagakit.temporal import TemporalExecutor

OPTIONS = SagaOptions(
    start_to_close_timeout=TIMEOUT, retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS)
)


@dataclass(frozen=True)
class Batch:
    """Items 1..`total`, `per_run` a run from `start`; item `fail_at` fails (0: none)."""

    order: str
    total: int
    per_run: int = 100
    start: int = 0
    fail_at: int = 0


async def process(saga: Saga, batch: Batch) -> int:
    end = min(batch.start + batch.per_run, batch.total)
    for n in range(batch.start + 1, end + 1):
        await saga.step(reserve, release, batch.order, n, batch.fail_at)
    if end < batch.total:
        workflow.continue_as_new(args=[replace(batch, start=end), saga.undo_plan()])
    return end


@workflow.defn
class PlanBatch:
    @workflow.run
    async def run(self, batch: Batch, plan: UndoPlan | None) -> int:
        return await TemporalExecutor(options=OPTIONS).run(process, batch, resume=plan)


async def give_up(saga: Saga, order: str) -> None:
    raise ApplicationError(f"{order}: unwind the plan", type="GiveUp", non_retryable=True)


@workflow.defn
class UnwindPlan:
    @workflow.run
    async def run(self, order: str, plan: UndoPlan | None) -> None:
        await TemporalExecutor(options=OPTIONS).run(give_up, order, resume=plan)
