"""A fake travel agency: car rental, hotels and an airline sharing one SQLite booking ledger."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.bookings import BookingLedger
from examples._support.glitches import Glitches
from examples.trip_booking.models import Booking, Trip

__all__ = ["ROUTES", "NoFlights", "TravelAgency"]

ROUTES = frozenset({("LHR", "JFK"), ("LHR", "CDG"), ("CDG", "JFK"), ("JFK", "LHR")})
"""(origin, destination) pairs the airline flies."""


class NoFlights(ApplicationError):
    """The airline does not fly that route; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, type="NoFlights", non_retryable=True, category=ApplicationErrorCategory.BENIGN
        )


class TravelAgency:
    """Car, hotel and flight bookings, each idempotent by the step's key."""

    def __init__(self, path: Path | str, *, glitches: Glitches | None = None) -> None:
        self.ledger = BookingLedger(path)
        self.glitches = glitches if glitches is not None else Glitches()

    def book(self, key: str, kind: str, trip: Trip) -> Booking:
        """Book the trip's car, hotel or flight.

        Raises:
            NoFlights: a flight on a route the airline does not fly.
        """
        self.glitches.before(kind)
        if kind == "flight" and (trip.origin, trip.destination) not in ROUTES:
            raise NoFlights(f"no flights from {trip.origin} to {trip.destination}")
        item = {
            "car": f"compact car at {trip.destination}",
            "hotel": f"{trip.nights} nights at {trip.destination}",
            "flight": f"{trip.origin}->{trip.destination}",
        }[kind]
        booking_id = self.ledger.book(key, kind, trip.trip_id, item)
        self.glitches.after(kind)
        return Booking(booking_id=booking_id, kind=kind, item=item)

    def cancel(self, key: str, kind: str) -> bool:
        """Cancel what the step with `key` booked; `False` if it booked nothing."""
        self.glitches.before(f"cancel_{kind}")
        cancelled = self.ledger.cancel(key)
        self.glitches.after(f"cancel_{kind}")
        return cancelled
