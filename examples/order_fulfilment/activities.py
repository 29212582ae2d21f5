"""The do and undo activities of the order saga: thin calls into the fake services.

Each passes `sagakit.idempotency_key()` to the service. The key is shared by a
step's do and undo and stable across retries, so the service's UNIQUE
constraint turns every retry and every repeated undo into a no-op.

They are `async def` and call SQLite directly: each call is one short local
transaction, cheap enough not to need a thread pool.
"""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.order_fulfilment.models import Order, Payment, Reservation, Shipment
from examples.order_fulfilment.services import Shop

__all__ = [
    "ACTIVITIES",
    "SHOP",
    "cancel_fulfilment",
    "charge_payment",
    "fulfil_order",
    "refund_payment",
    "release_inventory",
    "reserve_inventory",
]

SHOP: Dependency[Shop] = Dependency("order_fulfilment.shop")
"""The services the activities call; `with SHOP.provide(Shop(path)):` around the run or worker."""


@activity.defn
async def reserve_inventory(order: Order) -> Reservation:
    """Set the order's items aside."""
    return SHOP.get().reserve(sagakit.idempotency_key(), order)


@activity.defn
async def release_inventory(order: Order) -> bool:
    """Put the items back (nothing happens if they were never reserved)."""
    return SHOP.get().release(sagakit.idempotency_key())


@activity.defn
async def charge_payment(order: Order) -> Payment:
    """Charge the customer the order's total."""
    return SHOP.get().charge(sagakit.idempotency_key(), order)


@activity.defn
async def refund_payment(order: Order) -> bool:
    """Refund this run's charge (nothing happens if there was none, or it was refunded)."""
    return SHOP.get().refund(sagakit.idempotency_key()) is not None


@activity.defn
async def fulfil_order(order: Order) -> Shipment:
    """Have the warehouse ship the order."""
    return SHOP.get().ship(sagakit.idempotency_key(), order)


@activity.defn
async def cancel_fulfilment(order: Order) -> bool:
    """Cancel the shipment (nothing happens if none was created)."""
    return SHOP.get().cancel_shipment(sagakit.idempotency_key())


ACTIVITIES = (
    reserve_inventory,
    release_inventory,
    charge_payment,
    refund_payment,
    fulfil_order,
    cancel_fulfilment,
)
"""Every do and undo, for the worker to register."""
