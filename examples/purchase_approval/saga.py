"""The purchase saga: hold budget, wait for a human, place the order."""

from __future__ import annotations

from datetime import timedelta

from examples.purchase_approval.activities import (
    cancel_purchase_order,
    hold_budget,
    place_purchase_order,
    release_budget,
)
from examples.purchase_approval.approval import APPROVAL_TIMEOUT, ApprovalDenied, ApprovalPort
from examples.purchase_approval.models import PurchaseOrder, PurchaseRequest
from sagakit import RetryPolicy, Saga, SagaOptions

__all__ = ["OPTIONS", "purchase"]

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
)
"""Saga-wide options, shared by the in-memory runs and the workflow."""


async def purchase(saga: Saga, request: PurchaseRequest, approvals: ApprovalPort) -> PurchaseOrder:
    """Hold the budget, wait up to 24h for approval, then place the order.

    The wait is a step of its own with no undo: a decision cannot be taken
    back, but the budget hold before it can. Rejection or silence raises in
    the saga body, which unwinds the hold like any failed step would.

    Raises:
        sagakit.SagaFailed: over budget, rejected, or not decided in time; the
            hold was released. Its cause is `OverBudget` or `ApprovalDenied`.
    """
    await saga.step(hold_budget, release_budget, request)
    decision = await saga.step(
        approvals.wait_for_decision,
        None,
        request.request_id,
        APPROVAL_TIMEOUT,
        name="await_approval",
        # On Temporal the port's wait is workflow code (a signal and a timer): it runs
        # in the workflow, which a step must ask for. In memory it changes nothing.
        inline=True,
        # In memory a step's timeout is enforced; the wait must outlast its own.
        start_to_close_timeout=APPROVAL_TIMEOUT + timedelta(hours=1),
    )
    if decision.outcome != "approved" or decision.reviewer is None:
        raise ApprovalDenied(decision)
    po_id = await saga.step(place_purchase_order, cancel_purchase_order, request)
    return PurchaseOrder(
        po_id=po_id,
        request_id=request.request_id,
        amount_cents=request.amount_cents,
        approved_by=decision.reviewer,
    )
