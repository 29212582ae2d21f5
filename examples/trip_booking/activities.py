"""Book and cancel activities, one pair per kind of booking."""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.trip_booking.models import Booking, Trip
from examples.trip_booking.services import TravelAgency

__all__ = [
    "ACTIVITIES",
    "AGENCY",
    "book_car",
    "book_flight",
    "book_hotel",
    "cancel_car",
    "cancel_flight",
    "cancel_hotel",
]

AGENCY: Dependency[TravelAgency] = Dependency("trip_booking.agency")
"""The agency the activities call; `with AGENCY.provide(...)` around the run or worker."""


@activity.defn
async def book_car(trip: Trip) -> Booking:
    """Rent a car at the destination."""
    return AGENCY.get().book(sagakit.idempotency_key(), "car", trip)


@activity.defn
async def cancel_car(trip: Trip) -> bool:
    """Return the rental."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "car")


@activity.defn
async def book_hotel(trip: Trip) -> Booking:
    """Book the nights at the destination."""
    return AGENCY.get().book(sagakit.idempotency_key(), "hotel", trip)


@activity.defn
async def cancel_hotel(trip: Trip) -> bool:
    """Cancel the hotel."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "hotel")


@activity.defn
async def book_flight(trip: Trip) -> Booking:
    """Book the flight."""
    return AGENCY.get().book(sagakit.idempotency_key(), "flight", trip)


@activity.defn
async def cancel_flight(trip: Trip) -> bool:
    """Cancel the flight."""
    return AGENCY.get().cancel(sagakit.idempotency_key(), "flight")


ACTIVITIES = (book_car, cancel_car, book_hotel, cancel_hotel, book_flight, cancel_flight)
"""Every do and undo, for the worker to register."""
