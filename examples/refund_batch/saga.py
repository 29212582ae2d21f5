"""The batch saga: one run's share of refunds, then the rest handed to the next run with the undos.

A batch of 1,000 refunds is 1,000 steps; on Temporal one history holds about
4,000 activity steps, and a run that long replays slowly. So each run issues
`per_run` refunds and hands the rest of the batch on, with its undo plan
(`saga.undo_plan()`): the undos of every refund issued so far. The next run
starts with them at the bottom of its stack (`run(..., resume=plan)`); if a
late refund fails, that run unwinds its own refunds, then every earlier run's,
each reversed under the idempotency key its refund had.

How a run hands on is a port, `NextRun`, so that the saga is the same
function on every backend: on Temporal it continues the workflow as new
(`handoff.ContinueAsNew`), in memory a loop starts the next run
(`handoff.run_in_memory`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from examples.refund_batch.activities import issue_refund, reverse_refund
from examples.refund_batch.models import Batch, BatchResult
from sagakit import RetryPolicy, Saga, SagaOptions, UndoPlan

__all__ = ["OPTIONS", "NextRun", "process"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


class NextRun(Protocol):
    """Where the rest of a batch goes, with the undos of every refund issued so far."""

    def __call__(self, rest: Batch, plan: UndoPlan) -> None:
        """Start the next run with `rest`, resuming `plan` (on Temporal: does not return)."""


async def process(saga: Saga, batch: Batch, next_run: NextRun) -> BatchResult:
    """Issue this run's share of the batch's refunds, then hand the rest on.

    Raises:
        sagakit.SagaFailed: a refund failed, and every refund the batch issued,
            in this run and the earlier ones, was reversed, the last first.
    """
    share = batch.share()
    for refund in share:
        await saga.step(issue_refund, reverse_refund, refund, name=f"refund {refund.refund_id}")
    rest = batch.rest()
    if rest.refunds:
        next_run(rest, saga.undo_plan())
    return BatchResult(batch_id=batch.batch_id, issued=rest.issued, runs=batch.run)
