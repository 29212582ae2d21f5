"""A fake holiday agency: an airline, hotels with extras, a card processor, one SQLite ledger."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.bookings import BookingLedger
from examples._support.glitches import Glitches
from examples.package_booking.models import Booking, Holiday

__all__ = ["DECLINED_CARD", "SPA_GUESTS", "CardDeclined", "HolidayAgency", "SoldOut"]

SPA_GUESTS = 4
"""The most guests the resort's spa takes in one booking: a larger party finds it sold out."""

DECLINED_CARD = "0002"
"""Cards ending in these digits are declined (as a payment provider's test card is)."""


class SoldOut(ApplicationError):
    """An extra has no room for the party; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, type="SoldOut", non_retryable=True, category=ApplicationErrorCategory.BENIGN
        )


class CardDeclined(ApplicationError):
    """The card processor refused the charge; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            type="CardDeclined",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class HolidayAgency:
    """Flights, rooms, extras and charges, each idempotent by the step's key."""

    def __init__(self, path: Path | str, *, glitches: Glitches | None = None) -> None:
        self.ledger = BookingLedger(path)
        self.glitches = glitches if glitches is not None else Glitches()

    def book(self, key: str, kind: str, item: str, holiday: Holiday) -> Booking:
        """Book `item` (a flight, a room, an extra) for the holiday.

        Raises:
            SoldOut: the spa, for a party larger than `SPA_GUESTS`.
        """
        self.glitches.before(kind)
        if item == "spa day" and holiday.guests > SPA_GUESTS:
            raise SoldOut(f"the spa takes {SPA_GUESTS} guests; the party is {holiday.guests}")
        booking_id = self.ledger.book(key, kind, holiday.holiday_id, item)
        self.glitches.after(kind)
        return Booking(booking_id=booking_id, kind=kind, item=item)

    def charge(self, key: str, holiday: Holiday, package: str) -> Booking:
        """Charge the holiday's card for its flight and `package`.

        Raises:
            CardDeclined: a card ending in `DECLINED_CARD`.
        """
        self.glitches.before("payment")
        if holiday.card.endswith(DECLINED_CARD):
            raise CardDeclined(f"card ending {holiday.card[-4:]} declined")
        item = f"{package} package, {holiday.nights} nights"
        booking_id = self.ledger.book(key, "payment", holiday.holiday_id, item)
        self.glitches.after("payment")
        return Booking(booking_id=booking_id, kind="payment", item=item)

    def cancel(self, key: str, kind: str) -> bool:
        """Cancel (or refund) what the step with `key` booked; `False` if it booked nothing."""
        self.glitches.before(f"cancel_{kind}")
        cancelled = self.ledger.cancel(key)
        self.glitches.after(f"cancel_{kind}")
        return cancelled
