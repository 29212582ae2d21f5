"""Issue a refund, and reverse it."""

from __future__ import annotations

from temporalio import activity

import sagakit
from examples._support.dependency import Dependency
from examples.refund_batch.models import Refund
from examples.refund_batch.services import PaymentProvider

__all__ = ["ACTIVITIES", "PROVIDER", "issue_refund", "reverse_refund"]

PROVIDER: Dependency[PaymentProvider] = Dependency("refund_batch.provider")
"""The provider the activities call; `with PROVIDER.provide(...)` around the runs or worker."""


@activity.defn
async def issue_refund(refund: Refund) -> int:
    """Pay the refund out; the provider's id for it."""
    return PROVIDER.get().refund(sagakit.idempotency_key(), refund)


@activity.defn
async def reverse_refund(refund: Refund) -> bool:
    """Reverse the refund this step paid, in a run of the batch this one or an earlier one."""
    return PROVIDER.get().reverse(sagakit.idempotency_key())


ACTIVITIES = (issue_refund, reverse_refund)
"""Every do and undo, for the worker to register."""
