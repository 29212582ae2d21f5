"""Activities of the CLI tests' sagas: an order that cannot ship, and a refund that may be down.

The workflows import this module under `imports_passed_through`, so the test
and the in-process worker share `REFUND_DOWN`.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

REFUND_DOWN: set[str] = set()
"""Orders whose refund fails (non-retryably) until the test "fixes" the payment service."""


@dataclass
class Order:
    id: str
    ships: bool = False


@activity.defn
async def reserve(order: Order) -> str:
    return f"reservation-{order.id}"


@activity.defn
async def release(order: Order) -> None:
    return None


@activity.defn
async def charge(order: Order) -> str:
    return f"payment-{order.id}"


@activity.defn
async def refund(order: Order) -> None:
    if order.id in REFUND_DOWN:
        raise ApplicationError("payment service down", type="PaymentDown", non_retryable=True)


@activity.defn
async def ship(order: Order) -> str:
    if not order.ships:
        raise ApplicationError("no carrier serves Atlantis", type="NoCarrier", non_retryable=True)
    return f"shipment-{order.id}"


@activity.defn
async def cancel_shipment(order: Order) -> None:
    return None


ACTIVITIES = (reserve, release, charge, refund, ship, cancel_shipment)
