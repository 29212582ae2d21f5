"""The two sides of `sub_saga.py`: the same steps, in a sub-saga or inline in the saga.

Step 1 and the last step are the saga's own; the steps between are a package
called either through `saga.sub` or as a plain coroutine on the same `Saga`,
so both sides run the same steps, in the same order, with the same code. Each
step is `do(n, fail_at)` / `undo(n, fail_at)`: the step `fail_at` fails (0: none).
Imported passed through by the workflow sandbox (`_temporal_sub.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from sagakit import Saga

Step = Callable[[int, int], Awaitable[Any]]
SagaFn = Callable[[Saga, int, int], Coroutine[Any, Any, None]]


def make_sides(do: Step, undo: Step) -> dict[str, SagaFn]:
    """`{"inline": saga_fn, "sub": saga_fn}`, each `saga_fn(saga, steps, fail_at)`."""

    async def package(saga: Saga, first: int, last: int, fail_at: int) -> None:
        for n in range(first, last + 1):
            await saga.step(do, undo, n, fail_at)

    async def inline(saga: Saga, steps: int, fail_at: int) -> None:
        await saga.step(do, undo, 1, fail_at)
        await package(saga, 2, steps - 1, fail_at)
        await saga.step(do, undo, steps, fail_at)

    async def sub(saga: Saga, steps: int, fail_at: int) -> None:
        await saga.step(do, undo, 1, fail_at)
        await saga.sub(package, 2, steps - 1, fail_at, name="package")
        await saga.step(do, undo, steps, fail_at)

    return {"inline": inline, "sub": sub}


class SoldOut(Exception):
    pass


async def yield_do(n: int, fail_at: int) -> int:
    """In memory: the cheapest step that still yields to the event loop."""
    await asyncio.sleep(0)
    if n == fail_at:
        raise SoldOut(n)
    return n


async def yield_undo(n: int, fail_at: int) -> None:
    await asyncio.sleep(0)


@activity.defn
async def hold(n: int, fail_at: int) -> int:
    """On Temporal: an activity that does nothing, or fails for good at `fail_at`."""
    if n == fail_at:
        raise ApplicationError(f"step {n} is sold out", type="SoldOut", non_retryable=True)
    return n


@activity.defn
async def unhold(n: int, fail_at: int) -> None:
    return None
