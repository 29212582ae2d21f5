"""Fake budget and purchasing services on SQLite, idempotent by the step's key."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.sqlite import create_schema, transaction
from examples.purchase_approval.models import PurchaseRequest

__all__ = ["OverBudget", "Purchasing"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS budgets (
    department TEXT PRIMARY KEY,
    available_cents INTEGER NOT NULL CHECK (available_cents >= 0)
);
CREATE TABLE IF NOT EXISTS holds (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'released'))
);
CREATE TABLE IF NOT EXISTS purchase_orders (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('placed', 'cancelled'))
);
"""


class OverBudget(ApplicationError):
    """The department's budget cannot cover the request; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message, type="OverBudget", non_retryable=True, category=ApplicationErrorCategory.BENIGN
        )


class Purchasing:
    """Department budgets, holds on them, and purchase orders."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        create_schema(self.path, _SCHEMA)

    def set_budget(self, department: str, cents: int) -> None:
        """Give `department` a budget of `cents`."""
        with transaction(self.path) as db:
            db.execute("INSERT OR REPLACE INTO budgets VALUES (?, ?)", (department, cents))

    def available(self, department: str) -> int:
        """The department's budget not held or spent."""
        with transaction(self.path) as db:
            row = db.execute(
                "SELECT available_cents FROM budgets WHERE department = ?", (department,)
            ).fetchone()
        return 0 if row is None else int(row["available_cents"])

    def hold(self, key: str, request: PurchaseRequest) -> int:
        """Set the amount aside on the budget, once per key; the hold's id.

        Raises:
            OverBudget: the budget cannot cover it.
        """
        with transaction(self.path) as db:
            row = db.execute("SELECT id FROM holds WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return int(row["id"])
            cur = db.execute(
                "UPDATE budgets SET available_cents = available_cents - ? "
                "WHERE department = ? AND available_cents >= ?",
                (request.amount_cents, request.department, request.amount_cents),
            )
            if cur.rowcount != 1:
                raise OverBudget(
                    f"{request.department} cannot cover {request.amount_cents / 100:.2f}"
                )
            hold_id = db.execute(
                "INSERT INTO holds (key, department, amount_cents, status) "
                "VALUES (?, ?, ?, 'held')",
                (key, request.department, request.amount_cents),
            ).lastrowid
        assert hold_id is not None
        return hold_id

    def release(self, key: str) -> bool:
        """Give the held amount back, once; `False` if nothing was held under `key`."""
        with transaction(self.path) as db:
            row = db.execute(
                "UPDATE holds SET status = 'released' WHERE key = ? AND status = 'held' "
                "RETURNING department, amount_cents",
                (key,),
            ).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE budgets SET available_cents = available_cents + ? WHERE department = ?",
                (row["amount_cents"], row["department"]),
            )
        return True

    def place_order(self, key: str, request: PurchaseRequest) -> int:
        """Place the purchase order, once per key; its id."""
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO purchase_orders (key, request_id, status) VALUES (?, ?, 'placed') "
                "ON CONFLICT (key) DO NOTHING",
                (key, request.request_id),
            )
            row = db.execute("SELECT id FROM purchase_orders WHERE key = ?", (key,)).fetchone()
        return int(row["id"])

    def cancel_order(self, key: str) -> bool:
        """Cancel the purchase order placed under `key`; `False` if there was none."""
        with transaction(self.path) as db:
            cur = db.execute(
                "UPDATE purchase_orders SET status = 'cancelled' "
                "WHERE key = ? AND status = 'placed'",
                (key,),
            )
            return cur.rowcount == 1

    def orders(self) -> list[tuple[str, str]]:
        """Every purchase order: `(request_id, status)`."""
        with transaction(self.path) as db:
            return [
                (r["request_id"], r["status"])
                for r in db.execute("SELECT request_id, status FROM purchase_orders ORDER BY id")
            ]
