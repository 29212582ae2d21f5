"""The Temporal workflow that runs the trip saga."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.trip_booking.models import Itinerary, Trip
    from examples.trip_booking.saga import OPTIONS, book_trip
    from sagakit.temporal import TemporalExecutor

__all__ = ["BookTrip"]


@workflow.defn
class BookTrip:
    """Book one trip, or none of it."""

    @workflow.run
    async def run(self, trip: Trip) -> Itinerary:
        """Run the trip saga."""
        return await TemporalExecutor(options=OPTIONS).run(book_trip, trip)
