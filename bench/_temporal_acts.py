"""What both sides of the Temporal bench share: the job, the two activities, a park counter.

The workflow modules import it passed through the sandbox, so `PARKED` is one counter
per process, which the heap measure reads to know every workflow is parked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

TIMEOUT = timedelta(seconds=30)
ATTEMPTS = 3


@dataclass(frozen=True)
class Job:
    """`steps` reserve/release steps; step `fail_at` fails (0: none); `park`: then wait."""

    order: str
    steps: int
    fail_at: int = 0
    park: bool = False


@activity.defn
async def reserve(order: str, n: int, fail_at: int) -> str:
    if n == fail_at:
        raise ApplicationError(f"step {n} is sold out", type="SoldOut", non_retryable=True)
    return f"{order}-{n}"


@activity.defn
async def release(order: str, n: int, fail_at: int) -> None:
    return None


PARKED = [0]
"""Workflows (not replays) that reached their park, in this process."""


def parked() -> None:
    PARKED[0] += 1
