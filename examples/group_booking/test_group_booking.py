"""The fan-out saga, specified on every backend."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.running import Backend, Outcome, SagaCase
from examples.group_booking.activities import ACTIVITIES, HOTEL
from examples.group_booking.models import GroupBooking, RoomBooking
from examples.group_booking.saga import OPTIONS, book_group
from examples.group_booking.services import Hotel
from examples.group_booking.workflow import BookGroup
from sagakit import SagaStatus, StepStatus, UndoStatus

CASE = SagaCase(saga=book_group, options=OPTIONS, workflow=BookGroup, activities=ACTIVITIES)

ROOMS = ["101", "102", "103", "104", "105"]

Book = Callable[[GroupBooking], Awaitable[Outcome[list[RoomBooking]]]]


@pytest.fixture
def hotel(tmp_path: Path) -> Hotel:
    # 103 answers after a second (by then 101, 102 and 104 are booked, even on a slow CI);
    # 105 would take a minute, so it is still in flight when 103 fails.
    return Hotel(tmp_path / "hotel.sqlite3", latency={"103": 1.0, "105": 60.0})


@pytest.fixture
def book(backend: Backend, hotel: Hotel) -> Book:
    async def run(booking: GroupBooking) -> Outcome[list[RoomBooking]]:
        with HOTEL.provide(hotel):
            return await backend.run(CASE, booking, result_type=list[RoomBooking])

    return run


def statuses(outcome: Outcome[list[RoomBooking]]) -> dict[str, StepStatus]:
    return {s.name.removeprefix("room "): s.status for s in outcome.report.steps}


class TestAllRoomsFree:
    async def test_books_every_room(self, book: Book, hotel: Hotel) -> None:
        """With every room free, the group gets all of them, in the order asked."""
        hotel.latency.clear()

        outcome = await book(GroupBooking(group_id="g-1", rooms=ROOMS))

        assert outcome.result is not None
        assert [b.room for b in outcome.result] == ROOMS
        assert sorted(hotel.rooms_held_by("g-1")) == ROOMS


class TestOneRoomTaken:
    @pytest.fixture(autouse=True)
    def _someone_holds_103(self, hotel: Hotel) -> None:
        hotel.ledger.book("another-guest#1", "room", "another guest", "103")

    async def test_fails_with_the_taken_room(self, book: Book) -> None:
        """The saga fails with the taken room's error."""
        outcome = await book(GroupBooking(group_id="g-1", rooms=ROOMS))

        assert outcome.error.type == "RoomUnavailable"
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_cancels_the_rooms_still_in_flight(self, book: Book) -> None:
        """The room still in flight is cancelled, not waited for; the booked ones succeeded."""
        started = time.monotonic()

        outcome = await book(GroupBooking(group_id="g-1", rooms=ROOMS))

        assert time.monotonic() - started < 30, "the minute-long booking was cancelled"
        assert statuses(outcome) == {
            "101": StepStatus.SUCCEEDED,
            "102": StepStatus.SUCCEEDED,
            "103": StepStatus.FAILED,
            "104": StepStatus.SUCCEEDED,
            "105": StepStatus.CANCELLED,
        }

    async def test_releases_exactly_the_booked_rooms(self, book: Book, hotel: Hotel) -> None:
        """Every registered room is undone once; only the booked ones had anything to release."""
        outcome = await book(GroupBooking(group_id="g-1", rooms=ROOMS))

        assert all(
            s.undo is not None and s.undo.status is UndoStatus.COMPENSATED
            for s in outcome.report.steps
        )
        assert hotel.rooms_held_by("g-1") == []
        assert sorted(hotel.rooms_released_by("g-1")) == ["101", "102", "104"]

    async def test_leaves_the_other_guest_their_room(self, book: Book, hotel: Hotel) -> None:
        """Undoing the failed room does not cancel the other guest's booking of it."""
        await book(GroupBooking(group_id="g-1", rooms=ROOMS))

        assert hotel.ledger.holder("room", "103") == "another guest"
