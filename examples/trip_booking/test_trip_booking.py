"""The trip saga, specified on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.glitches import Glitch, Glitches
from examples._support.running import Backend, Outcome, SagaCase
from examples.trip_booking.activities import ACTIVITIES, AGENCY
from examples.trip_booking.models import Itinerary, Trip
from examples.trip_booking.saga import OPTIONS, book_trip
from examples.trip_booking.services import TravelAgency
from examples.trip_booking.workflow import BookTrip
from sagakit import SagaStatus, StepStatus

CASE = SagaCase(saga=book_trip, options=OPTIONS, workflow=BookTrip, activities=ACTIVITIES)

Book = Callable[[Trip], Awaitable[Outcome[Itinerary]]]


def a_trip(destination: str = "JFK") -> Trip:
    return Trip(trip_id="t-1", traveller="Grace", origin="LHR", destination=destination, nights=3)


@pytest.fixture
def agency(tmp_path: Path) -> TravelAgency:
    return TravelAgency(tmp_path / "agency.sqlite3")


@pytest.fixture
def book(backend: Backend, agency: TravelAgency) -> Book:
    async def run(trip: Trip) -> Outcome[Itinerary]:
        with AGENCY.provide(agency):
            return await backend.run(CASE, trip, result_type=Itinerary)

    return run


def held(agency: TravelAgency) -> list[str]:
    return [r["kind"] for r in agency.ledger.rows() if r["status"] == "held"]


class TestATripWithFlights:
    async def test_books_car_hotel_and_flight(self, book: Book, agency: TravelAgency) -> None:
        """A trip on a route the airline flies books all three, in order."""
        outcome = await book(a_trip("JFK"))

        assert outcome.result is not None
        assert outcome.result.flight.item == "LHR->JFK"
        assert held(agency) == ["car", "hotel", "flight"]


class TestATripWithNoFlight:
    async def test_fails_at_the_flight(self, book: Book) -> None:
        """With no flight on the route the saga fails with the airline's error."""
        outcome = await book(a_trip("XYZ"))

        assert outcome.error.type == "NoFlights"
        assert outcome.report.step("book_flight").status is StepStatus.FAILED

    async def test_cancels_hotel_then_car(self, book: Book, agency: TravelAgency) -> None:
        """The hotel is cancelled before the car, and nothing stays booked."""
        outcome = await book(a_trip("XYZ"))

        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.compensation_order == ["book_flight", "book_hotel", "book_car"]
        assert held(agency) == []
        assert [r["status"] for r in agency.ledger.rows()] == ["cancelled", "cancelled"]

    async def test_a_lost_cancellation_reply_cancels_once(
        self, book: Book, agency: TravelAgency
    ) -> None:
        """A hotel cancellation retried after it took effect still leaves one cancelled booking."""
        agency.glitches = Glitches(Glitch("cancel_hotel", after_effect=True))

        outcome = await book(a_trip("XYZ"))

        assert outcome.report.status is SagaStatus.COMPENSATED
        assert agency.glitches.calls("cancel_hotel") == 2
        assert held(agency) == []
