"""A fake bank on SQLite: balances that never go negative, entries posted once per key."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.glitches import Glitches
from examples._support.sqlite import create_schema, transaction

__all__ = ["Bank", "InsufficientFunds"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    balance_cents INTEGER NOT NULL CHECK (balance_cents >= 0)
);
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('posting', 'reversal')),
    account TEXT NOT NULL REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL,
    memo TEXT NOT NULL,
    UNIQUE (key, kind)
);
"""


class InsufficientFunds(ApplicationError):
    """The account cannot cover a debit; retrying will not help, so it is non-retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            type="InsufficientFunds",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class Bank:
    """Accounts and an append-only ledger; every posting and reversal is idempotent by key."""

    def __init__(self, path: Path | str, *, glitches: Glitches | None = None) -> None:
        self.path = Path(path)
        self.glitches = glitches if glitches is not None else Glitches()
        create_schema(self.path, _SCHEMA)

    def open_account(self, account: str, balance_cents: int) -> None:
        """Open `account` with a starting balance."""
        with transaction(self.path) as db:
            db.execute("INSERT INTO accounts VALUES (?, ?)", (account, balance_cents))

    def balance(self, account: str) -> int:
        """The account's balance in cents."""
        with transaction(self.path) as db:
            row = db.execute(
                "SELECT balance_cents FROM accounts WHERE id = ?", (account,)
            ).fetchone()
        return int(row["balance_cents"])

    def post(self, operation: str, key: str, account: str, amount_cents: int, memo: str) -> int:
        """Post `amount_cents` (negative: a debit) to `account` once per `key`; the entry id.

        Raises:
            InsufficientFunds: a debit larger than the balance; nothing is posted.
        """
        self.glitches.before(operation)
        with transaction(self.path) as db:
            row = db.execute(
                "SELECT id FROM entries WHERE key = ? AND kind = 'posting'", (key,)
            ).fetchone()
            if row is None:
                balance = db.execute(
                    "SELECT balance_cents FROM accounts WHERE id = ?", (account,)
                ).fetchone()["balance_cents"]
                if balance + amount_cents < 0:
                    raise InsufficientFunds(
                        f"{account}: {memo} of {-amount_cents / 100:.2f} exceeds the balance "
                        f"of {balance / 100:.2f}"
                    )
                db.execute(
                    "UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
                    (amount_cents, account),
                )
                entry = db.execute(
                    "INSERT INTO entries (key, kind, account, amount_cents, memo) "
                    "VALUES (?, 'posting', ?, ?, ?)",
                    (key, account, amount_cents, memo),
                ).lastrowid
            else:
                entry = row["id"]
        self.glitches.after(operation)
        assert entry is not None
        return int(entry)

    def reverse(self, operation: str, key: str) -> bool:
        """Reverse the posting made under `key`, once; `False` if there was none (or it is)."""
        self.glitches.before(operation)
        with transaction(self.path) as db:
            cur = db.execute(
                "INSERT INTO entries (key, kind, account, amount_cents, memo) "
                "SELECT key, 'reversal', account, -amount_cents, 'reversal of ' || memo "
                "FROM entries WHERE key = ? AND kind = 'posting' "
                "ON CONFLICT (key, kind) DO NOTHING",
                (key,),
            )
            reversed_now = cur.rowcount == 1
            if reversed_now:
                # A reversal of a debit is a credit and cannot overdraw; a reversal of
                # a credit can, and then the CHECK constraint fails the undo loudly.
                db.execute(
                    "UPDATE accounts SET balance_cents = balance_cents - ("
                    "  SELECT amount_cents FROM entries WHERE key = ? AND kind = 'posting') "
                    "WHERE id = (SELECT account FROM entries WHERE key = ? AND kind = 'posting')",
                    (key, key),
                )
        self.glitches.after(operation)
        return reversed_now

    def entries(self) -> list[sqlite3.Row]:
        """The ledger: `id, kind, account, amount_cents, memo`, in posting order."""
        with transaction(self.path) as db:
            return db.execute(
                "SELECT id, kind, account, amount_cents, memo FROM entries ORDER BY id"
            ).fetchall()
