"""A booking ledger on SQLite: book once per idempotency key, cancel once, never someone else's."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from examples._support.sqlite import create_schema, transaction

__all__ = ["BookingLedger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    item TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'cancelled'))
);
"""


class BookingLedger:
    """Bookings of cars, rooms, seats... keyed by the saga step's idempotency key.

    The key is UNIQUE: booking again under it returns the first booking, and
    cancelling under it cancels only what that very step booked, once.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        create_schema(self.path, _SCHEMA)

    def book(self, key: str, kind: str, owner: str, item: str) -> int:
        """Hold `item` for `owner` under `key`; the booking's id (the same on a retry)."""
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO bookings (key, kind, owner, item, status) "
                "VALUES (?, ?, ?, ?, 'held') ON CONFLICT (key) DO NOTHING",
                (key, kind, owner, item),
            )
            row = db.execute("SELECT id FROM bookings WHERE key = ?", (key,)).fetchone()
        return int(row["id"])

    def holder(self, kind: str, item: str) -> str | None:
        """Who holds `item` now, if anyone."""
        with transaction(self.path) as db:
            row = db.execute(
                "SELECT owner FROM bookings WHERE kind = ? AND item = ? AND status = 'held'",
                (kind, item),
            ).fetchone()
        return None if row is None else str(row["owner"])

    def cancel(self, key: str) -> bool:
        """Cancel what was booked under `key`; `False` if nothing was (or it is cancelled)."""
        with transaction(self.path) as db:
            cur = db.execute(
                "UPDATE bookings SET status = 'cancelled' WHERE key = ? AND status = 'held'",
                (key,),
            )
            return cur.rowcount == 1

    def rows(self, owner: str | None = None) -> list[sqlite3.Row]:
        """Every booking (of `owner`): `id, kind, owner, item, status`, in booking order."""
        with transaction(self.path) as db:
            if owner is None:
                return db.execute(
                    "SELECT id, kind, owner, item, status FROM bookings ORDER BY id"
                ).fetchall()
            return db.execute(
                "SELECT id, kind, owner, item, status FROM bookings WHERE owner = ? ORDER BY id",
                (owner,),
            ).fetchall()
