"""The holiday saga with its package sub-sagas, specified on every backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.running import Backend, Outcome, SagaCase
from examples.package_booking.activities import ACTIVITIES, AGENCY
from examples.package_booking.models import Confirmation, Holiday
from examples.package_booking.saga import OPTIONS, book_holiday
from examples.package_booking.services import HolidayAgency
from examples.package_booking.workflow import BookHoliday
from sagakit import SagaStatus, StepStatus, UndoStatus

CASE = SagaCase(saga=book_holiday, options=OPTIONS, workflow=BookHoliday, activities=ACTIVITIES)

Book = Callable[[Holiday], Awaitable[Outcome[Confirmation]]]

GOOD_CARD = "4242424242424242"
DECLINED = "4000000000000002"


def a_holiday(guests: int = 2, card: str = GOOD_CARD) -> Holiday:
    return Holiday(
        holiday_id="h-1", lead_guest="Ada", guests=guests, destination="Faro", nights=5, card=card
    )


@pytest.fixture
def agency(tmp_path: Path) -> HolidayAgency:
    return HolidayAgency(tmp_path / "agency.sqlite3")


@pytest.fixture
def book(backend: Backend, agency: HolidayAgency) -> Book:
    async def run(holiday: Holiday) -> Outcome[Confirmation]:
        with AGENCY.provide(agency):
            return await backend.run(CASE, holiday, result_type=Confirmation)

    return run


def ledger(agency: HolidayAgency) -> list[tuple[str, str]]:
    """(item, status) of every booking, in booking order."""
    return [(r["item"], r["status"]) for r in agency.ledger.rows()]


def steps(outcome: Outcome[Confirmation]) -> list[tuple[str | None, str, StepStatus]]:
    """(sub-saga, step name, do status) of every step, in seq order."""
    return [(s.sub, s.name, s.status) for s in outcome.report.steps]


class TestAPartyTheResortTakes:
    async def test_books_the_resort_package(self, book: Book, agency: HolidayAgency) -> None:
        """A party the spa takes gets the resort package: every booking held, in order."""
        outcome = await book(a_holiday(guests=2))

        assert outcome.result is not None
        assert outcome.result.package.name == "resort"
        assert ledger(agency) == [
            ("flight to Faro for 2", "held"),
            ("5 nights at Seaview Resort", "held"),
            ("spa day", "held"),
            ("airport transfer", "held"),
            ("resort package, 5 nights", "held"),
        ]

    async def test_a_declined_card_cancels_the_package_inside_the_rest(
        self, book: Book, agency: HolidayAgency
    ) -> None:
        """A package that succeeded is undone LIFO among the rest: its last step first."""
        outcome = await book(a_holiday(guests=2, card=DECLINED))

        assert outcome.error.type == "CardDeclined"
        assert outcome.report.compensation_order == [
            "charge_card",
            "transfer",
            "spa day",
            "resort room",
            "book_flight",
        ]
        assert [status for _, status in ledger(agency)] == ["cancelled"] * 4


class TestAPartyTooLargeForTheSpa:
    async def test_falls_back_to_the_town_package(self, book: Book, agency: HolidayAgency) -> None:
        """The spa fails, the resort room is cancelled, then the town package is booked and paid."""
        outcome = await book(a_holiday(guests=6))

        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert outcome.result is not None
        assert outcome.result.package.name == "town"
        assert ledger(agency) == [
            ("flight to Faro for 6", "held"),
            ("5 nights at Seaview Resort", "cancelled"),
            ("5 nights at Harbour Inn", "held"),
            ("breakfast", "held"),
            ("town package, 5 nights", "held"),
        ]

    async def test_the_report_names_each_sub_saga(self, book: Book) -> None:
        """Every step says which package it belongs to, under a seq of the run; no transfer."""
        outcome = await book(a_holiday(guests=6))

        # seq numbers the run's steps, sub-sagas' too: the key of each is saga_id#seq
        assert [s.seq for s in outcome.report.steps] == [1, 2, 3, 4, 5, 6]

        assert steps(outcome) == [
            (None, "book_flight", StepStatus.SUCCEEDED),
            ("resort", "resort room", StepStatus.SUCCEEDED),
            ("resort", "spa day", StepStatus.FAILED),
            ("town", "town room", StepStatus.SUCCEEDED),
            ("town", "breakfast", StepStatus.SUCCEEDED),
            (None, "charge_card", StepStatus.SUCCEEDED),
        ]
        assert outcome.report.step("spa day").error is not None
        assert outcome.report.step("spa day").error.type == "SoldOut"  # type: ignore[union-attr]
        assert outcome.report.compensation_order == ["spa day", "resort room"]
        timeline = outcome.report.timeline(color=False)
        assert "resort: resort room (cancel_room)" in timeline
        assert "town: breakfast" in timeline


class TestADeclinedCardAfterTheFallback:
    async def test_unwinds_the_town_package_among_the_rest(
        self, book: Book, agency: HolidayAgency
    ) -> None:
        """The fallback's undos run LIFO among the others; the resort's are not run again."""
        outcome = await book(a_holiday(guests=6, card=DECLINED))

        assert outcome.error.type == "CardDeclined"
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.compensation_order == [
            "spa day",
            "resort room",  # when the resort package failed, before the fallback ran
            "charge_card",
            "breakfast",
            "town room",
            "book_flight",
        ]
        assert agency.glitches.calls("cancel_room") == 2  # each room cancelled once
        assert [status for _, status in ledger(agency)] == ["cancelled"] * 4
        assert all(
            s.undo is not None and s.undo.status is UndoStatus.COMPENSATED
            for s in outcome.report.steps
        )
