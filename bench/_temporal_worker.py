"""A worker process for `temporal_history.py`: both sides' workers, apart from the client.

Two workers on one client: the hand-written saga's on a plain worker, sagakit's on a
worker with `SagakitPlugin`, each running its own workflow and the shared activities.

* `--serve`: run until stdin closes; the bench reads this process's CPU time.
* `--heap K`: park K workflows of each side in the worker cache, `--rounds` times,
  the sides interleaved, and print the `tracemalloc` growth per workflow as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import tracemalloc
import uuid
from contextlib import AsyncExitStack
from typing import Any

from _temporal_acts import PARKED, Job, release, reserve
from _temporal_hand import HandWritten
from _temporal_saga import WithSagakit
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from sagakit.temporal import SagakitPlugin

KINDS: dict[str, Any] = {"hand": HandWritten, "saga": WithSagakit}


def workers(client: Client, runner: str, queues: dict[str, str]) -> list[Worker]:
    def make() -> Any:
        return SandboxedWorkflowRunner() if runner == "sandboxed" else UnsandboxedWorkflowRunner()

    common: dict[str, Any] = {"activities": [reserve, release], "max_cached_workflows": 5000}
    return [
        Worker(
            client,
            task_queue=queues["hand"],
            workflows=[HandWritten],
            workflow_runner=make(),
            **common,
        ),
        Worker(
            client,
            task_queue=queues["saga"],
            workflows=[WithSagakit],
            workflow_runner=make(),
            plugins=[SagakitPlugin()],
            **common,
        ),
    ]


async def park(client: Client, kind: str, tq: str, count: int) -> list[str]:
    """Start `count` workflows of `kind` that park after 5 steps; return once all parked."""
    target = PARKED[0] + count
    ids = [f"heap-{kind}-{uuid.uuid4()}" for _ in range(count)]
    for wf_id in ids:  # only the ids are kept: no client object in the measure
        await client.start_workflow(
            KINDS[kind].run, Job(order="order-42", steps=5, park=True), id=wf_id, task_queue=tq
        )
    # Counted on the workflow threads, so polled rather than awaited as an asyncio.Event.
    while PARKED[0] < target:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the parking workflow tasks complete
    return ids


async def release_all(client: Client, ids: list[str]) -> None:
    handles = [client.get_workflow_handle(wf_id) for wf_id in ids]
    for h in handles:
        await h.signal("go")
    await asyncio.gather(*(h.result() for h in handles))


async def heap(client: Client, queues: dict[str, str], count: int, rounds: int) -> dict[str, Any]:
    for kind in KINDS:  # warm up: imports, sandbox caches, first-use allocations
        await release_all(client, await park(client, kind, queues[kind], 10))
    tracemalloc.start()
    per: dict[str, list[float]] = {k: [] for k in KINDS}
    for r in range(rounds):
        order = list(KINDS) if r % 2 == 0 else list(reversed(KINDS))
        for kind in order:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            ids = await park(client, kind, queues[kind], count)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
            per[kind].append((after - before) / count)
            await release_all(client, ids)
    # Not stopped: tracemalloc.stop() while temporalio's runtime threads allocate
    # crashes the process now and then (SIGSEGV); it ends with the process.
    return per


async def main(ns: argparse.Namespace) -> None:
    client = await Client.connect(ns.address, namespace=ns.namespace)
    queues = {"hand": ns.tq_hand, "saga": ns.tq_saga}
    async with AsyncExitStack() as stack:
        for w in workers(client, ns.runner, queues):
            await stack.enter_async_context(w)
        if ns.heap:
            print(json.dumps(await heap(client, queues, ns.heap, ns.rounds)), flush=True)
            return
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    import logging

    logging.getLogger("temporalio").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--namespace", default="default")
    p.add_argument("--runner", choices=["sandboxed", "unsandboxed"], default="sandboxed")
    p.add_argument("--tq-hand", default=f"bench-hand-{uuid.uuid4()}")
    p.add_argument("--tq-saga", default=f"bench-saga-{uuid.uuid4()}")
    p.add_argument("--serve", action="store_true", help="serve until stdin closes (the default)")
    p.add_argument("--heap", type=int, default=0)
    p.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(p.parse_args()))
