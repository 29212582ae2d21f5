"""Book and cancel one room."""

from __future__ import annotations

import asyncio

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.group_booking.models import RoomBooking
from examples.group_booking.services import Hotel

__all__ = ["ACTIVITIES", "HOTEL", "book_room", "cancel_room"]

HOTEL: Dependency[Hotel] = Dependency("group_booking.hotel")
"""The hotel the activities call; `with HOTEL.provide(...)` around the run or worker."""


@activity.defn
async def book_room(group_id: str, room: str) -> RoomBooking:
    """Book one room for the group, after the reservation system's latency."""
    hotel = HOTEL.get()
    delay = hotel.latency.get(room, 0.0)
    deadline = asyncio.get_running_loop().time() + delay
    # Heartbeat while waiting: on Temporal a cancellation reaches an activity
    # only through its heartbeats, and a sibling's failure cancels this one.
    while (left := deadline - asyncio.get_running_loop().time()) > 0:
        activity.heartbeat()
        await asyncio.sleep(min(left, 0.1))
    booking_id = hotel.book(sagakit.idempotency_key(), group_id, room)
    return RoomBooking(booking_id=booking_id, room=room)


@activity.defn
async def cancel_room(group_id: str, room: str) -> bool:
    """Release the room this step booked (nothing if it booked none)."""
    return HOTEL.get().cancel(sagakit.idempotency_key())


ACTIVITIES = (book_room, cancel_room)
"""Every do and undo, for the worker to register."""
