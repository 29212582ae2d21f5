"""A fake hotel on SQLite, with a reservation system that is slow for some rooms."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.bookings import BookingLedger
from examples._support.sqlite import transaction

__all__ = ["Hotel", "RoomUnavailable"]


class RoomUnavailable(ApplicationError):
    """Someone else holds the room; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            type="RoomUnavailable",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class Hotel:
    """Rooms held per group in a booking ledger.

    `latency` says how many seconds the reservation system takes for a room
    (before anything is booked): the activity waits that long, heartbeating, so
    a slow room is still in flight when a sibling fails and can be cancelled.
    """

    def __init__(self, path: Path | str, *, latency: Mapping[str, float] | None = None) -> None:
        self.ledger = BookingLedger(path)
        self.latency = dict(latency or {})

    def book(self, key: str, group_id: str, room: str) -> int:
        """Hold `room` for the group under `key`; the booking id (the same on a retry).

        Raises:
            RoomUnavailable: another guest holds the room.
        """
        # Check and book in one transaction, so two groups cannot both get the room.
        with transaction(self.ledger.path) as db:
            row = db.execute(
                "SELECT owner, key FROM bookings "
                "WHERE kind = 'room' AND item = ? AND status = 'held'",
                (room,),
            ).fetchone()
            if row is not None and row["key"] != key:
                raise RoomUnavailable(f"room {room} is taken by {row['owner']}")
        return self.ledger.book(key, "room", group_id, room)

    def cancel(self, key: str) -> bool:
        """Release the room booked under `key`; `False` if that step booked none."""
        return self.ledger.cancel(key)

    def rooms_held_by(self, owner: str) -> list[str]:
        """Rooms `owner` holds now."""
        return [r["item"] for r in self.ledger.rows(owner) if r["status"] == "held"]

    def rooms_released_by(self, owner: str) -> list[str]:
        """Rooms `owner` booked and then released."""
        return [r["item"] for r in self.ledger.rows(owner) if r["status"] == "cancelled"]
