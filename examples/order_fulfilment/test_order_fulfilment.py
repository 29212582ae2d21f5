"""The order saga, specified on every backend: in memory and on a real Temporal dev server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from examples._support.glitches import Glitch, Glitches
from examples._support.running import Backend, Outcome, SagaCase, run_in_memory
from examples.order_fulfilment.activities import ACTIVITIES, SHOP
from examples.order_fulfilment.models import Address, LineItem, Order, Receipt
from examples.order_fulfilment.saga import OPTIONS, place_order
from examples.order_fulfilment.services import Shop
from examples.order_fulfilment.workflow import PlaceOrder
from sagakit import SagaStatus, StepStatus, UndoStatus
from sagakit.inmemory import Fault

CASE = SagaCase(saga=place_order, options=OPTIONS, workflow=PlaceOrder, activities=ACTIVITIES)

Place = Callable[[Order], Awaitable[Outcome[Receipt]]]


def an_order(country: str = "DE", *, order_id: str = "o-1", books: int = 2) -> Order:
    return Order(
        order_id=order_id,
        customer="ada@example.com",
        items=[
            LineItem(sku="BOOK", quantity=books, unit_price_cents=2500),
            LineItem(sku="MUG", quantity=1, unit_price_cents=1200),
        ],
        ship_to=Address(name="Ada", street="1 Analytical Way", city="Berlin", country=country),
    )


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    shop = Shop(tmp_path / "shop.sqlite3")
    shop.add_stock("BOOK", 10)
    shop.add_stock("MUG", 5)
    return shop


@pytest.fixture
def place(backend: Backend, shop: Shop) -> Place:
    async def run(order: Order) -> Outcome[Receipt]:
        with SHOP.provide(shop):
            return await backend.run(CASE, order, result_type=Receipt)

    return run


class TestAFulfilledOrder:
    async def test_returns_a_receipt_for_the_total(self, place: Place) -> None:
        """An order that can be shipped returns a receipt for its total, every step succeeded."""
        outcome = await place(an_order())

        assert outcome.result is not None
        assert outcome.result.amount_cents == 2 * 2500 + 1200
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert [s.status for s in outcome.report.steps] == [StepStatus.SUCCEEDED] * 3

    async def test_charges_once_ships_once_and_takes_the_stock(
        self, place: Place, shop: Shop
    ) -> None:
        """It charges once, ships once and takes the items off the shelf; nothing is undone."""
        await place(an_order())

        assert [(c["amount_cents"], c["refunds"]) for c in shop.charges()] == [(6200, 0)]
        assert [s["status"] for s in shop.shipments()] == ["created"]
        assert (shop.available("BOOK"), shop.available("MUG")) == (8, 4)


class TestAnUndeliverableOrder:
    async def test_fails_with_the_warehouse_error(self, place: Place) -> None:
        """An order to a country the warehouse does not serve fails at fulfilment."""
        outcome = await place(an_order(country="AQ"))

        assert outcome.failed
        assert outcome.error.type == "Undeliverable"
        assert outcome.report.step("fulfil_order").status is StepStatus.FAILED

    async def test_compensates_every_step_in_reverse(self, place: Place) -> None:
        """Every registered undo runs once, last first, the failed step's own included."""
        outcome = await place(an_order(country="AQ"))

        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.compensation_order == [
            "fulfil_order",
            "charge_payment",
            "reserve_inventory",
        ]
        assert all(s.undo and s.undo.status is UndoStatus.COMPENSATED for s in outcome.report.steps)

    async def test_refunds_the_charge_and_restocks(self, place: Place, shop: Shop) -> None:
        """The charge is refunded in full exactly once and the stock is back on the shelf."""
        await place(an_order(country="AQ"))

        assert [(c["amount_cents"], c["refunded_cents"], c["refunds"]) for c in shop.charges()] == [
            (6200, 6200, 1)
        ]
        assert shop.shipments() == []
        assert (shop.available("BOOK"), shop.available("MUG")) == (10, 5)


class TestRetriesAreIdempotent:
    async def test_a_refund_whose_reply_is_lost_refunds_once(
        self, place: Place, shop: Shop
    ) -> None:
        """A refund retried after it took effect (reply lost twice) refunds exactly once."""
        shop.glitches = Glitches(Glitch("refund", times=2, after_effect=True))

        outcome = await place(an_order(country="AQ"))

        assert shop.glitches.fired("refund") == 2, "the refund activity was retried"
        assert outcome.report.step("charge_payment").undo.status is UndoStatus.COMPENSATED  # type: ignore[union-attr]
        assert [c["refunds"] for c in shop.charges()] == [1]
        assert len(shop.refunds()) == 1

    async def test_a_charge_whose_reply_is_lost_charges_once(
        self, place: Place, shop: Shop
    ) -> None:
        """A charge retried after it took effect returns the first charge, not a second."""
        shop.glitches = Glitches(Glitch("charge", times=1, after_effect=True))

        outcome = await place(an_order())

        assert shop.glitches.fired("charge") == 1
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert [c["amount_cents"] for c in shop.charges()] == [6200]


class TestAnOrderOutOfStock:
    async def test_nothing_is_charged_or_shipped(self, place: Place, shop: Shop) -> None:
        """When the first step fails nothing else runs; its own undo finds nothing to release."""
        outcome = await place(an_order(books=11))

        assert outcome.error.type == "OutOfStock"
        assert [s.name for s in outcome.report.steps] == ["reserve_inventory"]
        assert outcome.report.compensation_order == ["reserve_inventory"]
        assert shop.charges() == []
        assert (shop.available("BOOK"), shop.available("MUG")) == (10, 5)


class TestFaultInjectionInMemory:
    """`sagakit.inmemory.Fault` makes steps fail without touching activities or services."""

    async def test_a_failed_fulfilment_is_compensated(self, shop: Shop) -> None:
        """A fault at fulfilment unwinds the charge and the reservation."""
        with SHOP.provide(shop):
            outcome = await run_in_memory(
                CASE, an_order(), faults=[Fault.fail("fulfil_order", attempts="always")]
            )

        assert outcome.error.type == "InjectedFault"
        assert [c["refunds"] for c in shop.charges()] == [1]

    async def test_a_refund_retried_after_taking_effect_refunds_once(self, shop: Shop) -> None:
        """A refund undo that fails after it took effect is retried, and refunds exactly once."""
        faults = [
            Fault.fail("fulfil_order", attempts="always"),
            Fault.fail("charge_payment", undo=True, after_effect=True),
        ]
        with SHOP.provide(shop):
            outcome = await run_in_memory(CASE, an_order(), faults=faults)

        undo = outcome.report.step("charge_payment").undo
        assert undo is not None
        assert (undo.status, undo.attempts) == (UndoStatus.COMPENSATED, 2)
        assert [c["refunds"] for c in shop.charges()] == [1]
