"""A saga whose args, results and error messages carry secrets, for the codec tests.

The card number is a step arg (and part of a result); the decline reason is
only ever in an error message: the failing do raises `ValueError("bad card
<reason>")`, which the saga's own failure message then repeats.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor


class Card(BaseModel):
    run: str
    number: str
    """Secret: reaches the history only as a step arg or result."""


DECLINES: dict[str, str] = {}
"""`Card.run` -> the reason the charge is declined (secret: only in error messages)."""

CALLS: defaultdict[str, list[str]] = defaultdict(list)


@activity.defn
async def hold(card: Card) -> str:
    CALLS[card.run].append("hold")
    return f"held {card.number}"


@activity.defn
async def release(card: Card) -> None:
    CALLS[card.run].append("release")


@activity.defn
async def charge(card: Card) -> str:
    CALLS[card.run].append("charge")
    # A plain Python error, retried once: its message is in two failures of the
    # history (the retried attempt's last failure, the final one) and in the saga's.
    raise ValueError(f"bad card {DECLINES[card.run]}")


@activity.defn
async def refund(card: Card) -> None:
    CALLS[card.run].append("refund")


SECRET_ACTIVITIES = [hold, release, charge, refund]


async def pay(saga: Saga, card: Card) -> list[str]:
    held = await saga.step(hold, release, card)
    charged = await saga.step(charge, refund, card)
    return [held, charged]


@workflow.defn
class PayWorkflow:
    @workflow.run
    async def run(self, card: Card) -> list[str]:
        options = SagaOptions(
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=2
            ),
        )
        return await TemporalExecutor(options=options).run(pay, card)
