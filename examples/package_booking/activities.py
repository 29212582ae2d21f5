"""Book and cancel activities: the flight, a room, an extra, the charge."""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.package_booking.models import Booking, Holiday
from examples.package_booking.services import HolidayAgency

__all__ = [
    "ACTIVITIES",
    "AGENCY",
    "book_extra",
    "book_flight",
    "book_room",
    "cancel_extra",
    "cancel_flight",
    "cancel_room",
    "charge_card",
    "refund_card",
]

AGENCY: Dependency[HolidayAgency] = Dependency("package_booking.agency")
"""The agency the activities call; `with AGENCY.provide(...)` around the run or worker."""


@activity.defn
async def book_flight(holiday: Holiday) -> Booking:
    """Book the party's flight to the destination."""
    item = f"flight to {holiday.destination} for {holiday.guests}"
    return AGENCY.get().book(sagakit.idempotency_key(), "flight", item, holiday)


@activity.defn
async def cancel_flight(holiday: Holiday) -> bool:
    """Cancel the flight."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "flight")


@activity.defn
async def book_room(holiday: Holiday, hotel: str) -> Booking:
    """Book the nights at `hotel`."""
    item = f"{holiday.nights} nights at {hotel}"
    return AGENCY.get().book(sagakit.idempotency_key(), "room", item, holiday)


@activity.defn
async def cancel_room(holiday: Holiday, hotel: str) -> bool:
    """Cancel the room this step booked at `hotel`."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "room")


@activity.defn
async def book_extra(holiday: Holiday, extra: str) -> Booking:
    """Book one of a package's extras (a spa day, a transfer, breakfast)."""
    return AGENCY.get().book(sagakit.idempotency_key(), "extra", extra, holiday)


@activity.defn
async def cancel_extra(holiday: Holiday, extra: str) -> bool:
    """Cancel the extra this step booked (nothing, if it booked none)."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "extra")


@activity.defn
async def charge_card(holiday: Holiday, package: str) -> Booking:
    """Charge the card for the flight and `package`."""
    return AGENCY.get().charge(sagakit.idempotency_key(), holiday, package)


@activity.defn
async def refund_card(holiday: Holiday, package: str) -> bool:
    """Refund the charge this step made (nothing, if the card was declined)."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "payment")


ACTIVITIES = (
    book_flight,
    cancel_flight,
    book_room,
    cancel_room,
    book_extra,
    cancel_extra,
    charge_card,
    refund_card,
)
"""Every do and undo, for the worker to register."""
