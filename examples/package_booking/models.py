"""A holiday, the hotel packages it may get, and its confirmation."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Booking", "Confirmation", "Holiday", "Package"]


class Holiday(BaseModel):
    """Who goes where, for how long, paying with what; the saga's only input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    holiday_id: str = Field(min_length=1)
    lead_guest: str
    guests: int = Field(gt=0)
    destination: str
    nights: int = Field(gt=0)
    card: str = Field(min_length=4, description="the card to charge; only its last 4 digits matter")


class Booking(BaseModel):
    """One confirmed booking: a flight, a room, an extra or the charge."""

    model_config = ConfigDict(frozen=True)

    booking_id: int
    kind: str
    item: str


class Package(BaseModel):
    """The hotel package a holiday got: its name, the room and the extras."""

    model_config = ConfigDict(frozen=True)

    name: str
    room: Booking
    extras: list[Booking]


class Confirmation(BaseModel):
    """A fully booked and paid holiday."""

    model_config = ConfigDict(frozen=True)

    holiday_id: str
    flight: Booking
    package: Package
    payment: Booking
