"""The transfer saga: withdraw, deposit, charge the fee; undo by reversing postings."""

from __future__ import annotations

from datetime import timedelta

from examples.money_transfer.activities import (
    charge_fee,
    deposit,
    refund_fee,
    reverse_deposit,
    reverse_withdrawal,
    withdraw,
)
from examples.money_transfer.models import Transfer, TransferReceipt
from sagakit import RetryPolicy, Saga, SagaOptions

__all__ = ["OPTIONS", "transfer_money"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    # A flaky bank connection is retried until it answers (bounded, so an outage
    # fails the step); InsufficientFunds is non-retryable and fails at once.
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=100),
        maximum_interval=timedelta(seconds=1),
        maximum_attempts=10,
    ),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def transfer_money(saga: Saga, t: Transfer) -> TransferReceipt:
    """Move the money, then charge the fee; if anything fails, reverse what was posted.

    The fee is charged last, so a source drained by the transfer itself cannot
    pay it: `InsufficientFunds` then reverses the deposit and the withdrawal.

    Raises:
        sagakit.SagaFailed: a posting failed and the earlier ones were reversed.
    """
    withdrawal = await saga.step(withdraw, reverse_withdrawal, t)
    credit = await saga.step(deposit, reverse_deposit, t)
    fee = await saga.step(charge_fee, refund_fee, t)
    return TransferReceipt(
        transfer_id=t.transfer_id, withdrawal=withdrawal, deposit=credit, fee=fee
    )
