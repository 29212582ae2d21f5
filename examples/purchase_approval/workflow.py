"""The Temporal workflow that runs the purchase saga and is its approval port."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from examples.purchase_approval.models import Decision, PurchaseOrder, PurchaseRequest
    from examples.purchase_approval.saga import OPTIONS, purchase
    from sagakit.temporal import TemporalExecutor

__all__ = ["ApprovePurchase"]


@workflow.defn
class ApprovePurchase:
    """A purchase awaiting approval: send it a `decide` signal.

    The workflow implements the saga's `ApprovalPort`; on Temporal the wait
    is an inline step (an `async def` run in the workflow, `inline=True`), durable and
    replay-safe, since `workflow.wait_condition` is.
    """

    def __init__(self) -> None:
        self._decision: Decision | None = None

    @workflow.signal
    def decide(self, decision: Decision) -> None:
        """A reviewer decides; the first decision stands."""
        if self._decision is None:
            self._decision = decision

    @workflow.query
    def decision(self) -> Decision | None:
        """The decision so far, if any."""
        return self._decision

    async def wait_for_decision(self, request_id: str, within: timedelta) -> Decision:
        """The reviewer's decision, or `timed_out` after `within` of workflow time."""
        try:
            await workflow.wait_condition(lambda: self._decision is not None, timeout=within)
        except TimeoutError:
            return Decision(outcome="timed_out", reason=f"no decision within {within}")
        assert self._decision is not None
        return self._decision

    @workflow.run
    async def run(self, request: PurchaseRequest) -> PurchaseOrder:
        """Run the purchase saga, with this workflow as its approval port."""
        return await TemporalExecutor(options=OPTIONS).run(purchase, request, self)
