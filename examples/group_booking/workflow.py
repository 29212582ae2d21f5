"""The Temporal workflow that runs the group-booking saga."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.group_booking.models import GroupBooking, RoomBooking
    from examples.group_booking.saga import OPTIONS, book_group
    from sagakit.temporal import TemporalExecutor

__all__ = ["BookGroup"]


@workflow.defn
class BookGroup:
    """Book a group's rooms, all of them or none."""

    @workflow.run
    async def run(self, booking: GroupBooking) -> list[RoomBooking]:
        """Run the group-booking saga."""
        return await TemporalExecutor(options=OPTIONS).run(book_group, booking)
