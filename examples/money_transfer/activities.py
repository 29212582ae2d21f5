"""The transfer's activities: three postings, each undone by reversing it."""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.money_transfer.models import Transfer
from examples.money_transfer.services import Bank

__all__ = [
    "ACTIVITIES",
    "BANK",
    "charge_fee",
    "deposit",
    "refund_fee",
    "reverse_deposit",
    "reverse_withdrawal",
    "withdraw",
]

BANK: Dependency[Bank] = Dependency("money_transfer.bank")
"""The bank the activities call; `with BANK.provide(...)` around the run or worker."""


@activity.defn
async def withdraw(t: Transfer) -> int:
    """Debit the amount from the source account."""
    memo = f"transfer {t.transfer_id} to {t.target}"
    return BANK.get().post("withdraw", sagakit.idempotency_key(), t.source, -t.amount_cents, memo)


@activity.defn
async def reverse_withdrawal(t: Transfer) -> bool:
    """Credit the amount back to the source."""
    return BANK.get().reverse("reverse_withdrawal", sagakit.idempotency_key())


@activity.defn
async def deposit(t: Transfer) -> int:
    """Credit the amount to the target account."""
    memo = f"transfer {t.transfer_id} from {t.source}"
    return BANK.get().post("deposit", sagakit.idempotency_key(), t.target, t.amount_cents, memo)


@activity.defn
async def reverse_deposit(t: Transfer) -> bool:
    """Take the amount back from the target."""
    return BANK.get().reverse("reverse_deposit", sagakit.idempotency_key())


@activity.defn
async def charge_fee(t: Transfer) -> int:
    """Debit the fee from the source; fails with `InsufficientFunds` if it cannot pay."""
    memo = f"fee for transfer {t.transfer_id}"
    return BANK.get().post("charge_fee", sagakit.idempotency_key(), t.source, -t.fee_cents, memo)


@activity.defn
async def refund_fee(t: Transfer) -> bool:
    """Credit the fee back."""
    return BANK.get().reverse("refund_fee", sagakit.idempotency_key())


ACTIVITIES = (withdraw, reverse_withdrawal, deposit, reverse_deposit, charge_fee, refund_fee)
"""Every do and undo, for the worker to register."""
