"""The Temporal workflow that runs the holiday saga, its sub-sagas in the same workflow."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.package_booking.models import Confirmation, Holiday
    from examples.package_booking.saga import OPTIONS, book_holiday
    from sagakit.temporal import TemporalExecutor

__all__ = ["BookHoliday"]


@workflow.defn
class BookHoliday:
    """Book one holiday, with the package it can get, or none of it."""

    @workflow.run
    async def run(self, holiday: Holiday) -> Confirmation:
        """Run the holiday saga."""
        return await TemporalExecutor(options=OPTIONS).run(book_holiday, holiday)
