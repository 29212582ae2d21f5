"""The Temporal workflow that runs the batch saga, continuing as new every `per_run` refunds."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.refund_batch.handoff import ContinueAsNew
    from examples.refund_batch.models import Batch, BatchResult
    from examples.refund_batch.saga import OPTIONS, process
    from sagakit import UndoPlan
    from sagakit.temporal import TemporalExecutor

__all__ = ["RefundBatch"]


@workflow.defn
class RefundBatch:
    """Issue every refund of a batch, or none of them."""

    @workflow.run
    async def run(self, batch: Batch, plan: UndoPlan | None) -> BatchResult:
        """Run this run's share of the batch, resuming the earlier runs' undo plan.

        Start it with `args=[batch, None]`: temporalio drops every type hint
        when fewer args arrive than the run method has parameters.
        """
        return await TemporalExecutor(options=OPTIONS).run(
            process, batch, ContinueAsNew(), resume=plan
        )
