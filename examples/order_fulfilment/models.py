"""The data of an order as it moves through the saga (pydantic, so Temporal can carry it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Address",
    "LineItem",
    "Order",
    "Payment",
    "Receipt",
    "Refund",
    "Reservation",
    "Shipment",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LineItem(_Model):
    """So many of one product at one price."""

    sku: str = Field(min_length=1)
    quantity: int = Field(gt=0)
    unit_price_cents: int = Field(ge=0)


class Address(_Model):
    """Where the order ships to."""

    name: str
    street: str
    city: str
    country: str = Field(min_length=2, max_length=2, description="ISO 3166 alpha-2 code")


class Order(_Model):
    """What the customer asked for; the saga's only input."""

    order_id: str = Field(min_length=1)
    customer: str
    items: list[LineItem] = Field(min_length=1)
    ship_to: Address

    @property
    def total_cents(self) -> int:
        """What the customer is charged."""
        return sum(i.quantity * i.unit_price_cents for i in self.items)


class Reservation(_Model):
    """Stock set aside for an order."""

    reservation_id: int
    order_id: str


class Payment(_Model):
    """A charge on the customer's card."""

    payment_id: int
    order_id: str
    amount_cents: int


class Refund(_Model):
    """A charge given back."""

    refund_id: int
    payment_id: int
    amount_cents: int


class Shipment(_Model):
    """A parcel the warehouse will send."""

    shipment_id: int
    order_id: str
    country: str


class Receipt(_Model):
    """What a fulfilled order returns: one id from each service."""

    order_id: str
    reservation_id: int
    payment_id: int
    shipment_id: int
    amount_cents: int
