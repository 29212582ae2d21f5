"""The purchase saga, specified in memory and on Temporal's time-skipping server.

A reviewer's decision reaches the saga through its approval port: in memory
`ApprovalDesk.decide`, on Temporal the workflow's `decide` signal. Either
way a 24-hour timeout takes no real time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from examples._support.running import Outcome, outcome_of
from examples.purchase_approval.activities import ACTIVITIES, PURCHASING
from examples.purchase_approval.approval import ApprovalDesk
from examples.purchase_approval.models import Decision, PurchaseOrder, PurchaseRequest
from examples.purchase_approval.saga import OPTIONS, purchase
from examples.purchase_approval.services import Purchasing
from examples.purchase_approval.workflow import ApprovePurchase
from sagakit import SagaFailed, SagaStatus, UndoStatus
from sagakit.inmemory import InMemoryExecutor, VirtualClock
from sagakit.temporal import SagakitPlugin

# Runs the saga on one request; the decision (None: nobody decides) arrives while it waits.
Request = Callable[[PurchaseRequest, Decision | None], Awaitable[Outcome[PurchaseOrder]]]

BUDGET = 5_000_00


def a_request(amount_cents: int = 1_200_00) -> PurchaseRequest:
    return PurchaseRequest(
        request_id=f"pr-{uuid.uuid4().hex[:6]}",
        department="research",
        item="GPU workstation",
        amount_cents=amount_cents,
        requested_by="Katherine",
    )


@pytest.fixture
def purchasing(tmp_path: Path) -> Purchasing:
    purchasing = Purchasing(tmp_path / "purchasing.sqlite3")
    purchasing.set_budget("research", BUDGET)
    return purchasing


async def _in_memory(
    purchasing: Purchasing, request: PurchaseRequest, decision: Decision | None
) -> Outcome[PurchaseOrder]:
    clock = VirtualClock()
    desk = ApprovalDesk(clock)
    if decision is not None:
        desk.decide(request.request_id, decision)
    executor = InMemoryExecutor(options=OPTIONS, clock=clock)
    with PURCHASING.provide(purchasing):
        try:
            result = await executor.run(purchase, request, desk)
        except SagaFailed as e:
            return Outcome(report=e.report)
    return Outcome(report=executor.last_report, result=result)


async def _on_temporal(
    client: Client,
    purchasing: Purchasing,
    request: PurchaseRequest,
    decision: Decision | None,
) -> Outcome[PurchaseOrder]:
    task_queue = f"approval-{uuid.uuid4()}"
    with PURCHASING.provide(purchasing):
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ApprovePurchase],
            activities=list(ACTIVITIES),
            plugins=[SagakitPlugin()],
        ):
            handle = await client.start_workflow(
                ApprovePurchase.run,
                request,
                id=f"approval-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            if decision is not None:
                await handle.signal(ApprovePurchase.decide, decision)
            # Waiting on the result lets the time-skipping server jump to the next timer.
            return await outcome_of(handle)


@pytest.fixture(params=["inmemory", pytest.param("temporal", marks=pytest.mark.temporal)])
def request_purchase(request: pytest.FixtureRequest, purchasing: Purchasing) -> Request:
    if request.param == "temporal":
        client: Client = request.getfixturevalue("time_skipping_client")

        async def on_temporal(
            pr: PurchaseRequest, decision: Decision | None
        ) -> Outcome[PurchaseOrder]:
            return await _on_temporal(client, purchasing, pr, decision)

        return on_temporal

    async def in_memory(pr: PurchaseRequest, decision: Decision | None) -> Outcome[PurchaseOrder]:
        return await _in_memory(purchasing, pr, decision)

    return in_memory


class TestAnApprovedRequest:
    async def test_places_the_order(
        self, request_purchase: Request, purchasing: Purchasing
    ) -> None:
        """An approved request places the order, named after its approver, and spends the budget."""
        pr = a_request()

        outcome = await request_purchase(pr, Decision.approve("Dorothy"))

        assert outcome.result is not None
        assert outcome.result.approved_by == "Dorothy"
        assert purchasing.orders() == [(pr.request_id, "placed")]
        assert purchasing.available("research") == BUDGET - pr.amount_cents


class TestARejectedRequest:
    async def test_fails_with_the_reason(self, request_purchase: Request) -> None:
        """A rejection fails the saga with ApprovalDenied, naming the reviewer and the reason."""
        outcome = await request_purchase(a_request(), Decision.reject("Dorothy", "use the cluster"))

        assert outcome.error.type == "ApprovalDenied"
        assert "Dorothy: use the cluster" in outcome.error.message

    async def test_releases_the_budget(
        self, request_purchase: Request, purchasing: Purchasing
    ) -> None:
        """The held budget is released and no order is placed."""
        outcome = await request_purchase(a_request(), Decision.reject("Dorothy", "no"))

        assert outcome.report.status is SagaStatus.COMPENSATED
        hold = outcome.report.step("hold_budget").undo
        assert hold is not None
        assert hold.status is UndoStatus.COMPENSATED
        assert purchasing.available("research") == BUDGET
        assert purchasing.orders() == []


class TestNobodyDecides:
    async def test_times_out_after_24_hours_in_no_real_time(
        self, request_purchase: Request
    ) -> None:
        """With no decision the wait ends after 24 hours of saga time, in seconds of real time."""
        started = time.monotonic()

        outcome = await request_purchase(a_request(), None)

        assert time.monotonic() - started < 30
        wait = outcome.report.step("await_approval")
        assert wait.duration is not None
        assert wait.duration >= timedelta(hours=24).total_seconds()
        assert outcome.error.type == "ApprovalDenied"
        assert "timed out" in outcome.error.message

    async def test_releases_the_budget(
        self, request_purchase: Request, purchasing: Purchasing
    ) -> None:
        """A lapsed request releases its hold like a rejected one."""
        await request_purchase(a_request(), None)

        assert purchasing.available("research") == BUDGET


class TestOverBudget:
    async def test_never_asks_for_approval(self, request_purchase: Request) -> None:
        """A request the budget cannot cover fails before anyone is asked."""
        outcome = await request_purchase(a_request(amount_cents=BUDGET + 1), None)

        assert outcome.error.type == "OverBudget"
        assert [s.name for s in outcome.report.steps] == ["hold_budget"]


class TestApprovalDeskInMemory:
    async def test_a_decision_made_while_waiting_is_taken(self, purchasing: Purchasing) -> None:
        """The desk answers a decision that arrives while the saga waits, within its patience."""
        clock = VirtualClock()
        desk = ApprovalDesk(clock, patience=5.0)
        pr = a_request()

        async def reviewer() -> None:
            await asyncio.sleep(0.05)
            desk.decide(pr.request_id, Decision.approve("Dorothy"))

        with PURCHASING.provide(purchasing):
            order, _ = await asyncio.gather(
                InMemoryExecutor(options=OPTIONS, clock=clock).run(purchase, pr, desk),
                reviewer(),
            )

        assert order.approved_by == "Dorothy"
        assert clock.skipped == timedelta(0)
