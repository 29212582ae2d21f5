"""A saga over pydantic models, for `pydantic_data_converter`."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    import sagakit
    from sagakit import Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor

LEDGER: dict[str, list[str]] = {}


class Trip(BaseModel):
    run: str
    city: str
    start: date
    budget: Decimal
    fail_hotel: bool = False


class Booking(BaseModel):
    ref: str
    price: Decimal
    day: date


@activity.defn
async def book_car(trip: Trip) -> Booking:
    LEDGER.setdefault(trip.run, []).append(f"car:{sagakit.idempotency_key()}")
    return Booking(ref=f"car-{trip.city}", price=trip.budget / 4, day=trip.start)


@activity.defn
async def cancel_car(trip: Trip) -> None:
    LEDGER.setdefault(trip.run, []).append(f"cancel-car:{sagakit.idempotency_key()}")


@activity.defn
async def book_hotel(trip: Trip) -> Booking:
    if trip.fail_hotel:
        raise ValueError("no rooms")
    return Booking(ref=f"hotel-{trip.city}", price=trip.budget / 2, day=trip.start)


async def trip_saga(saga: Saga, trip: Trip) -> list[Booking]:
    car = await saga.step(book_car, cancel_car, trip)
    hotel = await saga.step(book_hotel, None, trip)
    return [car, hotel]


@workflow.defn
class TripWorkflow:
    @workflow.run
    async def run(self, trip: Trip) -> list[Booking]:
        options = SagaOptions(
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=sagakit.RetryPolicy(maximum_attempts=1),
        )
        return await TemporalExecutor(options=options).run(trip_saga, trip)


ACTIVITIES = [book_car, cancel_car, book_hotel]
