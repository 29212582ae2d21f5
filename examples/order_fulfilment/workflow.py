"""The Temporal workflow that runs the order saga: one line around `TemporalExecutor`."""

from __future__ import annotations

from temporalio import workflow

# Activities, models and services are not workflow code: the sandbox passes
# them through instead of re-importing them for every workflow run.
with workflow.unsafe.imports_passed_through():
    from examples.order_fulfilment.models import Order, Receipt
    from examples.order_fulfilment.saga import OPTIONS, place_order
    from sagakit.temporal import TemporalExecutor

__all__ = ["PlaceOrder"]


@workflow.defn
class PlaceOrder:
    """Place one order; a failed order fails the run with `SagaFailed` after compensating."""

    @workflow.run
    async def run(self, order: Order) -> Receipt:
        """Run the order saga."""
        return await TemporalExecutor(options=OPTIONS).run(place_order, order)
