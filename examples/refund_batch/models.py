"""A batch of refunds, the share of it one run processes, and how it ended."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Batch", "BatchResult", "Refund"]


class Refund(BaseModel):
    """One refund to pay back to a customer's account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refund_id: str = Field(min_length=1)
    account: str = Field(min_length=1)
    amount_cents: int = Field(gt=0)


class Batch(BaseModel):
    """The refunds still to issue, and how many runs and refunds came before."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: str = Field(min_length=1)
    refunds: list[Refund]
    per_run: int = Field(default=100, gt=0, description="refunds (steps) per run")
    run: int = Field(default=1, gt=0, description="which run of the batch this is")
    issued: int = Field(default=0, ge=0, description="refunds the earlier runs issued")

    def share(self) -> list[Refund]:
        """The refunds this run issues: the first `per_run`."""
        return self.refunds[: self.per_run]

    def rest(self) -> Batch:
        """The batch the next run gets: the refunds after this run's share."""
        share = len(self.share())
        return self.model_copy(
            update={
                "refunds": self.refunds[share:],
                "run": self.run + 1,
                "issued": self.issued + share,
            }
        )


class BatchResult(BaseModel):
    """A batch whose every refund was issued."""

    model_config = ConfigDict(frozen=True)

    batch_id: str
    issued: int
    runs: int
