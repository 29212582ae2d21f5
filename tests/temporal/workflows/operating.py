"""A three-step order saga whose refund can fail for good, for the operator's tests.

`Order.broken` names the undos that fail (non-retryable) until the test puts
the order's id in `FIXED`; `Order.park` parks them instead of failing the saga.
`ALERTS` records every `on_compensation_failed` call; `HELD` holds a fixed
`release` until the test lets it end. The worker is in-process.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions, SagaReport
    from sagakit.temporal import TemporalExecutor

FIXED: set[str] = set()
"""Ids of the orders whose broken undos were fixed."""

ALERTS: list[SagaReport] = []
"""What `alert` was called with, in order."""

HELD: dict[str, asyncio.Event] = {}
"""By order id: a fixed `release` waits for this event before it returns."""


@dataclass
class Order:
    id: str
    broken: list[str] = field(default_factory=list)
    park: bool = False
    park_timeout: float | None = None
    alert: bool = False


@activity.defn
async def reserve(order: Order) -> str:
    return "reserved"


@activity.defn
async def release(order: Order) -> None:
    if "release" in order.broken and order.id not in FIXED:
        raise ApplicationError(
            "stock service rejects the release", type="StockDown", non_retryable=True
        )
    if order.id in HELD:
        await HELD[order.id].wait()


@activity.defn
async def charge(order: Order) -> str:
    return "charged"


@activity.defn
async def refund(order: Order) -> None:
    if "refund" in order.broken and order.id not in FIXED:
        raise ApplicationError("card declined the refund", type="CardDeclined", non_retryable=True)


@activity.defn
async def ship(order: Order) -> str:
    raise ApplicationError("no carrier serves the address", type="NoCarrier", non_retryable=True)


@activity.defn
async def alert(report: SagaReport) -> None:
    ALERTS.append(report)


ACTIVITIES = [reserve, release, charge, refund, ship, alert]


async def place_order(saga: Saga, order: Order) -> None:
    await saga.step(reserve, release, order)
    await saga.step(charge, refund, order)
    await saga.step(ship, None, order)


@workflow.defn
class OperatedOrder:
    @workflow.run
    async def run(self, order: Order) -> None:
        options = SagaOptions(
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=50), maximum_attempts=2
            ),
            on_undo_failure="park" if order.park else "fail",
            park_timeout=(
                timedelta(seconds=order.park_timeout) if order.park_timeout is not None else None
            ),
            on_compensation_failed=alert if order.alert else None,
        )
        await TemporalExecutor(options=options).run(place_order, order)
