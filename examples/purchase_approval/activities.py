"""The purchase's activities: hold and release budget, place and cancel the order."""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.purchase_approval.models import PurchaseRequest
from examples.purchase_approval.services import Purchasing

__all__ = [
    "ACTIVITIES",
    "PURCHASING",
    "cancel_purchase_order",
    "hold_budget",
    "place_purchase_order",
    "release_budget",
]

PURCHASING: Dependency[Purchasing] = Dependency("purchase_approval.purchasing")
"""The services the activities call; `with PURCHASING.provide(...)` around the run or worker."""


@activity.defn
async def hold_budget(request: PurchaseRequest) -> int:
    """Set the amount aside on the department's budget while the request waits."""
    return PURCHASING.get().hold(sagakit.idempotency_key(), request)


@activity.defn
async def release_budget(request: PurchaseRequest) -> bool:
    """Give the held amount back."""
    return PURCHASING.get().release(sagakit.idempotency_key())


@activity.defn
async def place_purchase_order(request: PurchaseRequest) -> int:
    """Order the item from the supplier."""
    return PURCHASING.get().place_order(sagakit.idempotency_key(), request)


@activity.defn
async def cancel_purchase_order(request: PurchaseRequest) -> bool:
    """Cancel the order with the supplier."""
    return PURCHASING.get().cancel_order(sagakit.idempotency_key())


ACTIVITIES = (hold_budget, release_budget, place_purchase_order, cancel_purchase_order)
"""Every do and undo, for the worker to register."""
