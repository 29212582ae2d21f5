"""The Temporal workflow that runs the transfer saga."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.money_transfer.models import Transfer, TransferReceipt
    from examples.money_transfer.saga import OPTIONS, transfer_money
    from sagakit.temporal import TemporalExecutor

__all__ = ["TransferMoney"]


@workflow.defn
class TransferMoney:
    """Transfer money, all of it or none of it."""

    @workflow.run
    async def run(self, transfer: Transfer) -> TransferReceipt:
        """Run the transfer saga."""
        return await TemporalExecutor(options=OPTIONS).run(transfer_money, transfer)
