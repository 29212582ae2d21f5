"""A purchase request, a reviewer's decision and the resulting purchase order."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Decision", "PurchaseOrder", "PurchaseRequest"]


class PurchaseRequest(BaseModel):
    """Someone wants to buy something on a department's budget."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(min_length=1)
    department: str
    item: str
    amount_cents: int = Field(gt=0)
    requested_by: str


class Decision(BaseModel):
    """What came of the approval request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Literal["approved", "rejected", "timed_out"]
    reviewer: str | None = None
    reason: str = ""

    @classmethod
    def approve(cls, reviewer: str) -> Decision:
        """A reviewer's approval."""
        return cls(outcome="approved", reviewer=reviewer)

    @classmethod
    def reject(cls, reviewer: str, reason: str) -> Decision:
        """A reviewer's rejection, with the reason."""
        return cls(outcome="rejected", reviewer=reviewer, reason=reason)


class PurchaseOrder(BaseModel):
    """An approved purchase, placed with the supplier."""

    model_config = ConfigDict(frozen=True)

    po_id: int
    request_id: str
    amount_cents: int
    approved_by: str
