"""A trip and its bookings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Booking", "Itinerary", "Trip"]


class Trip(BaseModel):
    """Who goes where; the saga's only input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trip_id: str = Field(min_length=1)
    traveller: str
    origin: str = Field(min_length=3, max_length=3, description="IATA airport code")
    destination: str = Field(min_length=3, max_length=3, description="IATA airport code")
    nights: int = Field(gt=0)


class Booking(BaseModel):
    """One confirmed booking."""

    model_config = ConfigDict(frozen=True)

    booking_id: int
    kind: str
    item: str


class Itinerary(BaseModel):
    """A fully booked trip."""

    model_config = ConfigDict(frozen=True)

    trip_id: str
    car: Booking
    hotel: Booking
    flight: Booking
