"""The order saga: the same function runs in memory and inside a Temporal workflow."""

from __future__ import annotations

from datetime import timedelta

from examples.order_fulfilment.activities import (
    cancel_fulfilment,
    charge_payment,
    fulfil_order,
    refund_payment,
    release_inventory,
    reserve_inventory,
)
from examples.order_fulfilment.models import Order, Receipt
from sagakit import RetryPolicy, Saga, SagaOptions

__all__ = ["OPTIONS", "place_order"]

OPTIONS = SagaOptions(
    # Temporal requires a timeout on every activity; in memory it is enforced too.
    start_to_close_timeout=timedelta(seconds=10),
    # Short backoffs so a demo's retries show up in seconds, not minutes; bounded
    # so a service that is really down fails the step instead of retrying forever.
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=200),
        maximum_interval=timedelta(seconds=2),
        maximum_attempts=5,
    ),
    # A refund that still fails after its retries waits for a person to fix the
    # cause and say "retry" (or refund by hand and say "skip"), for up to a week.
    on_undo_failure="park",
    park_timeout=timedelta(days=7),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def place_order(saga: Saga, order: Order) -> Receipt:
    """Reserve the stock, charge the card, ship; on failure undo what was done, in reverse.

    Raises:
        sagakit.SagaFailed: a step failed (out of stock, undeliverable, ...) and
            every step registered so far was compensated.
    """
    reservation = await saga.step(reserve_inventory, release_inventory, order)
    payment = await saga.step(charge_payment, refund_payment, order)
    shipment = await saga.step(fulfil_order, cancel_fulfilment, order)
    return Receipt(
        order_id=order.order_id,
        reservation_id=reservation.reservation_id,
        payment_id=payment.payment_id,
        shipment_id=shipment.shipment_id,
        amount_cents=payment.amount_cents,
    )
