"""The fan-out saga: one step per room, all in flight at once with `saga.gather`."""

from __future__ import annotations

from datetime import timedelta

from examples.group_booking.activities import book_room, cancel_room
from examples.group_booking.models import GroupBooking, RoomBooking
from sagakit import RetryPolicy, Saga, SagaOptions

__all__ = ["OPTIONS", "book_group"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(minutes=2),
    # Short, so a cancelled in-flight booking learns of it within a second or two.
    heartbeat_timeout=timedelta(seconds=2),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def book_group(saga: Saga, booking: GroupBooking) -> list[RoomBooking]:
    """Book every room at once; if one fails, cancel the ones in flight and release the rest.

    Each room is its own step, registered (with its undo) as it starts. When one
    fails, `saga.gather` cancels the rooms still in flight and waits for them to
    stop; then the saga undoes every registered room: those booked are released,
    those never booked (the failed one, the cancelled ones) find nothing to undo.

    Raises:
        sagakit.SagaFailed: a room could not be booked; the group holds none.
    """
    return await saga.gather(
        *(
            saga.step(book_room, cancel_room, booking.group_id, room, name=f"room {room}")
            for room in booking.rooms
        )
    )
