"""The holiday saga and its two hotel packages, each a sub-saga: the same on every backend."""

from __future__ import annotations

from datetime import timedelta

from examples.package_booking.activities import (
    book_extra,
    book_flight,
    book_room,
    cancel_extra,
    cancel_flight,
    cancel_room,
    charge_card,
    refund_card,
)
from examples.package_booking.models import Confirmation, Holiday, Package
from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions

__all__ = ["OPTIONS", "book_holiday", "resort_package", "town_package"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def resort_package(saga: Saga, holiday: Holiday) -> Package:
    """The resort: a sea-view room, a spa day and the airport transfer."""
    room = await saga.step(book_room, cancel_room, holiday, "Seaview Resort", name="resort room")
    spa = await saga.step(book_extra, cancel_extra, holiday, "spa day", name="spa day")
    transfer = await saga.step(
        book_extra, cancel_extra, holiday, "airport transfer", name="transfer"
    )
    return Package(name="resort", room=room, extras=[spa, transfer])


async def town_package(saga: Saga, holiday: Holiday) -> Package:
    """The fallback: a room in town with breakfast."""
    room = await saga.step(book_room, cancel_room, holiday, "Harbour Inn", name="town room")
    breakfast = await saga.step(book_extra, cancel_extra, holiday, "breakfast", name="breakfast")
    return Package(name="town", room=room, extras=[breakfast])


async def book_holiday(saga: Saga, holiday: Holiday) -> Confirmation:
    """Book the flight, the resort package or else the town package, then charge the card.

    A package is a sub-saga: if one of its steps fails, its own bookings are
    cancelled before `saga.sub` raises, so the town package is tried with
    nothing of the resort's left held. The package that succeeded stays
    booked, and is cancelled in turn (its last step first) if the charge fails.

    Raises:
        sagakit.SagaFailed: the card was declined (or the town package failed
            too), and everything booked was cancelled, in reverse.
    """
    flight = await saga.step(book_flight, cancel_flight, holiday)
    try:
        package = await saga.sub(resort_package, holiday, name="resort")
    except SagaFailed:
        package = await saga.sub(town_package, holiday, name="town")
    payment = await saga.step(charge_card, refund_card, holiday, package.name)
    return Confirmation(
        holiday_id=holiday.holiday_id, flight=flight, package=package, payment=payment
    )
