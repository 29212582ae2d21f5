"""A fake payment provider: refunds and their reversals in SQLite, each keyed by the step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.glitches import Glitches
from examples._support.sqlite import create_schema, transaction
from examples.refund_batch.models import Refund

__all__ = ["AccountClosed", "PaymentProvider"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    refund_id TEXT NOT NULL,
    account TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('issued', 'reversed')),
    reversals INTEGER NOT NULL DEFAULT 0
);
"""


class AccountClosed(ApplicationError):
    """The customer's account is closed; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            type="AccountClosed",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class PaymentProvider:
    """Refunds paid out once per idempotency key, and reversed once by the same key."""

    def __init__(
        self,
        path: Path | str,
        *,
        closed: frozenset[str] = frozenset(),
        glitches: Glitches | None = None,
    ) -> None:
        self.path = Path(path)
        self.closed = closed
        """Accounts that refuse a refund (`AccountClosed`)."""
        self.glitches = glitches if glitches is not None else Glitches()
        create_schema(self.path, _SCHEMA)

    def refund(self, key: str, refund: Refund) -> int:
        """Pay `refund` out under `key`; its id (the same on a retry).

        Raises:
            AccountClosed: the refund's account is closed.
        """
        self.glitches.before("refund")
        if refund.account in self.closed:
            raise AccountClosed(f"account {refund.account} is closed")
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO refunds (key, refund_id, account, amount_cents, status) "
                "VALUES (?, ?, ?, ?, 'issued') ON CONFLICT (key) DO NOTHING",
                (key, refund.refund_id, refund.account, refund.amount_cents),
            )
            row = db.execute("SELECT id FROM refunds WHERE key = ?", (key,)).fetchone()
        self.glitches.after("refund")
        return int(row["id"])

    def reverse(self, key: str) -> bool:
        """Reverse the refund paid under `key`; `False` if none was (or it is reversed).

        Every call that finds the refund is counted (`reversals`): a reversal
        asked for twice is reversed once, and the count shows it was asked twice.
        """
        self.glitches.before("reverse")
        with transaction(self.path) as db:
            row = db.execute("SELECT status FROM refunds WHERE key = ?", (key,)).fetchone()
            if row is not None:
                db.execute(
                    "UPDATE refunds SET status = 'reversed', reversals = reversals + 1 "
                    "WHERE key = ?",
                    (key,),
                )
        self.glitches.after("reverse")
        return row is not None and row["status"] == "issued"

    def rows(self) -> list[sqlite3.Row]:
        """Every refund: `key, refund_id, account, amount_cents, status, reversals`, in order."""
        with transaction(self.path) as db:
            return db.execute(
                "SELECT key, refund_id, account, amount_cents, status, reversals "
                "FROM refunds ORDER BY id"
            ).fetchall()
