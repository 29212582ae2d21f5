"""The trip saga, as in the API's first example: the same function on every backend."""

from __future__ import annotations

from datetime import timedelta

from examples.trip_booking.activities import (
    book_car,
    book_flight,
    book_hotel,
    cancel_car,
    cancel_flight,
    cancel_hotel,
)
from examples.trip_booking.models import Itinerary, Trip
from sagakit import RetryPolicy, Saga, SagaOptions

__all__ = ["OPTIONS", "book_trip"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def book_trip(saga: Saga, trip: Trip) -> Itinerary:
    """Book a car, a hotel and a flight; if any fails, cancel what was booked, in reverse.

    Raises:
        sagakit.SagaFailed: a booking failed and the earlier ones were cancelled.
    """
    car = await saga.step(book_car, cancel_car, trip)
    hotel = await saga.step(book_hotel, cancel_hotel, trip)
    flight = await saga.step(book_flight, cancel_flight, trip)
    return Itinerary(trip_id=trip.trip_id, car=car, hotel=hotel, flight=flight)
