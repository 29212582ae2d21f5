"""The two sides of the DBOS bench: the same saga by hand and on sagakit, each a DBOS workflow.

Both run the same two step functions (`reserve`, `release`), each call a DBOS step
(`DBOS.run_step_async`), over the same arguments; step `fail_at` raises `SoldOut`
(0: none fails). The hand-written saga is what a careful DBOS user writes without a
library: a list of undos, each registered before its do (so the failing step's undo
runs too, as on sagakit), `try`/`except`, `reversed`, every undo run even past a
failed one, then a `RuntimeError` from the original error. Neither side retries: one
attempt per step, so both write one checkpoint per call.
"""

from __future__ import annotations

import contextlib

from dbos import DBOS

from sagakit import RetryPolicy, Saga, SagaOptions
from sagakit.dbos import DBOSExecutor

OPTIONS = SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1))
"""sagakit's side: one attempt per do and undo, as the hand-written side."""


class SoldOut(Exception):
    """The failing step's business error."""


async def reserve(order: str, n: int, fail_at: int) -> str:
    """The do: a reservation id, or `SoldOut` at step `fail_at`."""
    if n == fail_at:
        raise SoldOut(f"step {n} is sold out")
    return f"{order}-{n}"


async def release(order: str, n: int, fail_at: int) -> None:
    """The undo: nothing to release in a bench."""
    return None


@DBOS.workflow()
async def hand_written(order: str, steps: int, fail_at: int) -> list[str]:
    """The saga by hand on DBOS: each do and undo a DBOS step, unwound in a try/except."""
    compensations: list[int] = []
    results: list[str] = []
    try:
        for n in range(1, steps + 1):
            compensations.append(n)
            results.append(await DBOS.run_step_async(None, reserve, order, n, fail_at))
    except Exception as e:
        for n in reversed(compensations):
            with contextlib.suppress(Exception):
                await DBOS.run_step_async(None, release, order, n, fail_at)
        raise RuntimeError("saga failed") from e
    return results


async def reserve_all(saga: Saga, order: str, steps: int, fail_at: int) -> list[str]:
    """The same saga on sagakit (the same loop as the hand-written side's)."""
    results: list[str] = []
    for n in range(1, steps + 1):
        results.append(await saga.step(reserve, release, order, n, fail_at))
    return results


@DBOS.workflow()
async def with_sagakit(order: str, steps: int, fail_at: int) -> list[str]:
    """The saga on sagakit's `DBOSExecutor`, default options but one attempt per step."""
    return await DBOSExecutor(options=OPTIONS).run(reserve_all, order, steps, fail_at)


SIDES = {"hand": hand_written, "saga": with_sagakit}
"""Each side's workflow, by the name the bench prints."""
