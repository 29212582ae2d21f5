"""Fake inventory, payment and warehouse services that keep their state in one SQLite file.

They behave the way real ones must for a saga to be safe: every write is
keyed by `sagakit.idempotency_key()`, which is a UNIQUE column, so a retried
charge, a repeated refund or a release of stock that was never reserved
changes nothing. The undo of a step shares its do's key, which is how a
refund finds the charge it reverses.

A `Glitches` plan makes calls fail before or after they took effect, like a
network that loses replies; the services themselves stay honest.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from examples._support.glitches import Glitches
from examples._support.sqlite import create_schema, transaction
from examples.order_fulfilment.models import Order, Payment, Refund, Reservation, Shipment

__all__ = ["SHIPS_TO", "OutOfStock", "ProviderDown", "Shop", "Undeliverable"]

SHIPS_TO = frozenset({"DE", "FR", "GB", "NL", "US"})
"""Countries the warehouse ships to; an order to any other fails at fulfilment."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('held', 'released'))
);
CREATE TABLE IF NOT EXISTS reservation_items (
    reservation_id INTEGER NOT NULL REFERENCES reservations(id),
    sku TEXT NOT NULL,
    quantity INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS charges (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    amount_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    charge_id INTEGER NOT NULL UNIQUE REFERENCES charges(id),
    amount_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shipments (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    order_id TEXT NOT NULL,
    country TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('created', 'cancelled'))
);
"""


class OutOfStock(ApplicationError):
    """Not enough stock to reserve; retrying will not help."""

    def __init__(self, message: str) -> None:
        # A subclass with a fixed type: in memory the report names the class,
        # on Temporal the failure's type; both read "OutOfStock". BENIGN: an
        # expected business outcome, so the worker logs no warning for it.
        super().__init__(
            message,
            type="OutOfStock",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class Undeliverable(ApplicationError):
    """The warehouse cannot ship to that address; retrying will not help."""

    def __init__(self, message: str) -> None:
        super().__init__(
            message,
            type="Undeliverable",
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )


class ProviderDown(ConnectionError):
    """An operation of a provider that is down: every call fails until someone fixes it.

    A network error, so it is retried; its retries run out while the outage lasts.
    """


class Shop:
    """The three fake services over one SQLite file (made, with its tables, on first use)."""

    def __init__(self, path: Path | str, *, glitches: Glitches | None = None) -> None:
        self.path = Path(path)
        self.glitches = glitches if glitches is not None else Glitches()
        self.outages: set[str] = set()
        """Operations that fail (`ProviderDown`) until taken out of the set: "refund"."""
        create_schema(self.path, _SCHEMA)

    # -- inventory ---------------------------------------------------------

    def add_stock(self, sku: str, quantity: int) -> None:
        """Put `quantity` more of `sku` on the shelf."""
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO stock (sku, available) VALUES (?, ?) "
                "ON CONFLICT (sku) DO UPDATE SET available = available + excluded.available",
                (sku, quantity),
            )

    def reserve(self, key: str, order: Order) -> Reservation:
        """Set the order's items aside, once per key.

        Raises:
            OutOfStock: some item is short; nothing is reserved.
        """
        self.glitches.before("reserve")
        with transaction(self.path) as db:
            row = db.execute("SELECT id FROM reservations WHERE key = ?", (key,)).fetchone()
            if row is None:
                for item in order.items:
                    have = db.execute(
                        "SELECT available FROM stock WHERE sku = ?", (item.sku,)
                    ).fetchone()
                    if have is None or have["available"] < item.quantity:
                        raise OutOfStock(
                            f"{item.sku}: {item.quantity} wanted, "
                            f"{0 if have is None else have['available']} in stock"
                        )
                cur = db.execute(
                    "INSERT INTO reservations (key, order_id, status) VALUES (?, ?, 'held')",
                    (key, order.order_id),
                )
                rid = cur.lastrowid
                for item in order.items:
                    db.execute(
                        "INSERT INTO reservation_items VALUES (?, ?, ?)",
                        (rid, item.sku, item.quantity),
                    )
                    db.execute(
                        "UPDATE stock SET available = available - ? WHERE sku = ?",
                        (item.quantity, item.sku),
                    )
            else:
                rid = row["id"]
        self.glitches.after("reserve")
        assert rid is not None
        return Reservation(reservation_id=rid, order_id=order.order_id)

    def release(self, key: str) -> bool:
        """Put the reserved items back, once; `False` if there was nothing (left) to release."""
        self.glitches.before("release")
        with transaction(self.path) as db:
            cur = db.execute(
                "UPDATE reservations SET status = 'released' WHERE key = ? AND status = 'held' "
                "RETURNING id",
                (key,),
            )
            row = cur.fetchone()
            if row is not None:
                db.execute(
                    "UPDATE stock SET available = available + ("
                    "  SELECT quantity FROM reservation_items"
                    "  WHERE reservation_id = ? AND reservation_items.sku = stock.sku) "
                    "WHERE sku IN (SELECT sku FROM reservation_items WHERE reservation_id = ?)",
                    (row["id"], row["id"]),
                )
        self.glitches.after("release")
        return row is not None

    def available(self, sku: str) -> int:
        """How many of `sku` are on the shelf (not reserved)."""
        with transaction(self.path) as db:
            row = db.execute("SELECT available FROM stock WHERE sku = ?", (sku,)).fetchone()
        return 0 if row is None else int(row["available"])

    # -- payments ----------------------------------------------------------

    def charge(self, key: str, order: Order) -> Payment:
        """Charge the order's total, once per key: a retry returns the first charge."""
        self.glitches.before("charge")
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO charges (key, order_id, amount_cents) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, order.order_id, order.total_cents),
            )
            row = db.execute(
                "SELECT id, order_id, amount_cents FROM charges WHERE key = ?", (key,)
            ).fetchone()
        self.glitches.after("charge")
        return Payment(
            payment_id=row["id"], order_id=row["order_id"], amount_cents=row["amount_cents"]
        )

    def refund(self, key: str) -> Refund | None:
        """Refund the charge made under `key`, once; `None` if no charge was made."""
        if "refund" in self.outages:
            raise ProviderDown("refund: the payment provider's refund API answers 503")
        self.glitches.before("refund")
        with transaction(self.path) as db:
            # The refund shares the charge's key: UNIQUE makes a second refund a no-op.
            db.execute(
                "INSERT INTO refunds (key, charge_id, amount_cents) "
                "SELECT key, id, amount_cents FROM charges WHERE key = ? "
                "ON CONFLICT DO NOTHING",
                (key,),
            )
            row = db.execute(
                "SELECT id, charge_id, amount_cents FROM refunds WHERE key = ?", (key,)
            ).fetchone()
        self.glitches.after("refund")
        if row is None:
            return None
        return Refund(
            refund_id=row["id"], payment_id=row["charge_id"], amount_cents=row["amount_cents"]
        )

    def charges(self) -> list[sqlite3.Row]:
        """Every charge and its refunds: `id, order_id, amount_cents, refunded_cents, refunds`."""
        with transaction(self.path) as db:
            return db.execute(
                "SELECT c.id, c.order_id, c.amount_cents, "
                "  COALESCE(SUM(r.amount_cents), 0) AS refunded_cents, COUNT(r.id) AS refunds "
                "FROM charges c LEFT JOIN refunds r ON r.charge_id = c.id "
                "GROUP BY c.id ORDER BY c.id"
            ).fetchall()

    def refunds(self) -> list[sqlite3.Row]:
        """Every refund: `id, charge_id, amount_cents`."""
        with transaction(self.path) as db:
            return db.execute(
                "SELECT id, charge_id, amount_cents FROM refunds ORDER BY id"
            ).fetchall()

    # -- warehouse ---------------------------------------------------------

    def ship(self, key: str, order: Order) -> Shipment:
        """Create the shipment, once per key.

        Raises:
            Undeliverable: the warehouse does not ship to `order.ship_to.country`.
        """
        self.glitches.before("ship")
        country = order.ship_to.country.upper()
        if country not in SHIPS_TO:
            raise Undeliverable(
                f"order {order.order_id}: no carrier ships to {country!r} "
                f"(we ship to {', '.join(sorted(SHIPS_TO))})"
            )
        with transaction(self.path) as db:
            db.execute(
                "INSERT INTO shipments (key, order_id, country, status) "
                "VALUES (?, ?, ?, 'created') ON CONFLICT (key) DO NOTHING",
                (key, order.order_id, country),
            )
            row = db.execute("SELECT id FROM shipments WHERE key = ?", (key,)).fetchone()
        self.glitches.after("ship")
        return Shipment(shipment_id=row["id"], order_id=order.order_id, country=country)

    def cancel_shipment(self, key: str) -> bool:
        """Cancel the shipment made under `key`, once; `False` if there was none (left)."""
        self.glitches.before("cancel_shipment")
        with transaction(self.path) as db:
            cur = db.execute(
                "UPDATE shipments SET status = 'cancelled' WHERE key = ? AND status = 'created'",
                (key,),
            )
            changed = cur.rowcount == 1
        self.glitches.after("cancel_shipment")
        return changed

    def shipments(self) -> list[sqlite3.Row]:
        """Every shipment: `id, order_id, country, status`."""
        with transaction(self.path) as db:
            return db.execute(
                "SELECT id, order_id, country, status FROM shipments ORDER BY id"
            ).fetchall()
