"""A transfer between two accounts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Transfer", "TransferReceipt"]


class Transfer(BaseModel):
    """Move `amount_cents` from `source` to `target`; `source` also pays `fee_cents`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    transfer_id: str = Field(min_length=1)
    source: str
    target: str
    amount_cents: int = Field(gt=0)
    fee_cents: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _two_accounts(self) -> Transfer:
        if self.source == self.target:
            raise ValueError("source and target must differ")
        return self


class TransferReceipt(BaseModel):
    """The ledger entries a completed transfer made."""

    model_config = ConfigDict(frozen=True)

    transfer_id: str
    withdrawal: int
    deposit: int
    fee: int
