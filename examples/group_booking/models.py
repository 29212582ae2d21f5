"""A group's room request and the bookings it gets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GroupBooking", "RoomBooking"]


class GroupBooking(BaseModel):
    """Rooms for a group, all or none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group_id: str = Field(min_length=1)
    rooms: list[str] = Field(min_length=1)


class RoomBooking(BaseModel):
    """One booked room."""

    model_config = ConfigDict(frozen=True)

    booking_id: int
    room: str
