"""The user's saga that `bench/saga_test_speed.py` tests: book a car, a hotel and a flight.

Its own module, as a user's would be: the Temporal workflow sandbox re-imports the
module that defines a workflow, which it cannot do for a script run as `__main__`.

The activities fail by their input and attempt number, so the same functions run on
both backends with no fault injection: the hotel fails its first attempt (retried after
a 1 s backoff), and a trip to Atlantis has no flight on any attempt (3 attempts, backoffs
of 1 s and 2 s, then the saga unwinds: flight, hotel, car).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor


@dataclass(frozen=True)
class Trip:
    traveller: str
    destination: str


@activity.defn
async def book_car(trip: Trip) -> str:
    return f"car for {trip.traveller}"


@activity.defn
async def cancel_car(trip: Trip) -> None:
    return None


@activity.defn
async def book_hotel(trip: Trip) -> str:
    if activity.info().attempt == 1:
        raise ApplicationError("hotel booking system busy", type="Busy")
    return f"hotel in {trip.destination}"


@activity.defn
async def cancel_hotel(trip: Trip) -> None:
    return None


@activity.defn
async def book_flight(trip: Trip) -> str:
    if trip.destination == "Atlantis":
        raise ApplicationError(f"no flights to {trip.destination}", type="NoFlights")
    return f"flight to {trip.destination}"


@activity.defn
async def cancel_flight(trip: Trip) -> None:
    return None


ACTIVITIES = [book_car, cancel_car, book_hotel, cancel_hotel, book_flight, cancel_flight]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3),
)


async def book_trip(saga: Saga, trip: Trip) -> list[str]:
    car = await saga.step(book_car, cancel_car, trip)
    hotel = await saga.step(book_hotel, cancel_hotel, trip)
    flight = await saga.step(book_flight, cancel_flight, trip)
    return [car, hotel, flight]


@workflow.defn
class BookTrip:
    @workflow.run
    async def run(self, trip: Trip) -> list[str]:
        return await TemporalExecutor(options=OPTIONS).run(book_trip, trip)
