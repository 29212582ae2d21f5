"""Workflows of the undo-plan tests: a batch that continues as new with its plan, and sub-sagas.

`BatchWorkflow` applies `batch.per_run` items a run and continues as new
with `saga.undo_plan()` until the batch is done; an item in `FAILING` fails
for good, and the whole plan unwinds. Every apply and revert appends to
`LEDGER[batch.run]` the key it saw, so a test can tell each undo ran once,
with its do's key. The module is passed through the sandbox: the worker and
the test share the dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from pydantic import ValidationError
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import sagakit
    from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions, UndoPlan
    from sagakit.temporal import TemporalExecutor

LEDGER: dict[str, list[tuple[str, int, str]]] = {}
"""Batch run -> (phase, item, idempotency key) of every apply and revert, in order."""

FAILING: dict[str, set[int]] = {}
"""Batch run -> the items whose apply fails for good."""

OPTIONS = SagaOptions(
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=50), maximum_interval=timedelta(milliseconds=100)
    ),
)


@activity.defn
async def apply_item(run: str, item: int) -> int:
    """Apply one item of the batch; the items `FAILING` names fail (non-retryable)."""
    LEDGER.setdefault(run, []).append(("do", item, sagakit.idempotency_key()))
    if item in FAILING.get(run, ()):
        raise ApplicationError(f"item {item} is refused", type="Refused", non_retryable=True)
    return item * 10


@activity.defn
async def revert_item(run: str, item: int) -> None:
    """Revert one item."""
    LEDGER.setdefault(run, []).append(("undo", item, sagakit.idempotency_key()))


@activity.defn
async def revert_item_seeing(run: str, item: int, applied: int | None) -> None:
    """Revert one item, told what its apply returned (`pass_result=True`)."""
    LEDGER.setdefault(run, []).append(("undo", item, f"{sagakit.idempotency_key()}={applied}"))


ACTIVITIES = [apply_item, revert_item, revert_item_seeing]


@dataclass
class Batch:
    """`total` items, `per_run` of them a run, from `start`."""

    run: str
    total: int
    per_run: int = 100
    start: int = 0
    undo: str = "revert_item"
    """The undo's activity name: one no worker registers, for a test."""
    pass_result: bool = False


async def process(saga: Saga, batch: Batch) -> int:
    """`batch.per_run` items, then continue as new with the plan, until the batch is done."""
    end = min(batch.start + batch.per_run, batch.total)
    for item in range(batch.start, end):
        await saga.step(apply_item, batch.undo, batch.run, item, pass_result=batch.pass_result)
    if end < batch.total:
        workflow.continue_as_new(args=[replace(batch, start=end), saga.undo_plan()])
    return end


@workflow.defn
class BatchWorkflow:
    """Runs `process`, resuming the plan the previous run continued as new with."""

    @workflow.run
    async def run(self, batch: Batch, plan: UndoPlan | None) -> int:
        return await TemporalExecutor(options=OPTIONS).run(process, batch, resume=plan)


@workflow.defn(failure_exception_types=[ValidationError])
class StrictBatchWorkflow:
    """`BatchWorkflow`, failing (not retrying its task) when its args do not decode."""

    @workflow.run
    async def run(self, batch: Batch, plan: UndoPlan | None) -> int:
        return await TemporalExecutor(options=OPTIONS).run(process, batch, resume=plan)


@dataclass
class BigBatch:
    """A batch whose every step carries `payload`, for a plan past the payload limit."""

    run: str
    steps: int
    payload: str


@activity.defn
async def apply_big(run: str, item: int, payload: str) -> None:
    """Apply an item whose arg is large."""
    LEDGER.setdefault(run, []).append(("do", item, sagakit.idempotency_key()))


@activity.defn
async def revert_big(run: str, item: int, payload: str) -> None:
    """Revert it."""
    LEDGER.setdefault(run, []).append(("undo", item, sagakit.idempotency_key()))


async def big_steps(saga: Saga, batch: BigBatch) -> None:
    for item in range(batch.steps):
        await saga.step(apply_big, revert_big, batch.run, item, batch.payload)
    workflow.continue_as_new(args=[batch, saga.undo_plan()])


@workflow.defn
class BigPlanWorkflow:
    """Its plan of `steps` large-arg undos is past the payload limit: refused at undo_plan()."""

    @workflow.run
    async def run(self, batch: BigBatch, plan: UndoPlan | None) -> None:
        await TemporalExecutor(options=OPTIONS).run(big_steps, batch, resume=plan)


async def revert_inline(run: str, item: int) -> None:
    """Workflow code run as an undo (inline): it cannot travel in a plan."""
    LEDGER.setdefault(run, []).append(("undo", item, sagakit.idempotency_key()))


async def inline_undo_then_continue(saga: Saga, batch: Batch) -> None:
    await saga.step(apply_item, revert_inline, batch.run, 0, inline=True)
    workflow.continue_as_new(args=[batch, saga.undo_plan()])


@workflow.defn
class InlineUndoWorkflow:
    """A step whose undo runs inline, then continue-as-new with the plan: refused."""

    @workflow.run
    async def run(self, batch: Batch, plan: UndoPlan | None) -> None:
        await TemporalExecutor(options=OPTIONS).run(inline_undo_then_continue, batch, resume=plan)


async def rooms(saga: Saga, batch: Batch) -> None:
    for item in (2, 3):
        await saga.step(apply_item, revert_item, batch.run, item)


async def hostel(saga: Saga, batch: Batch) -> None:
    await saga.step(apply_item, revert_item, batch.run, 4)


async def trip(saga: Saga, batch: Batch) -> None:
    """1; sub-saga rooms (2, 3: 3 fails) caught; sub-saga hostel (4); 5 fails: all unwinds."""
    await saga.step(apply_item, revert_item, batch.run, 1)
    try:
        await saga.sub(rooms, batch, name="rooms")
    except SagaFailed:
        await saga.sub(hostel, batch, name="hostel")
    await saga.step(apply_item, revert_item, batch.run, 5)


@workflow.defn
class SubSagaWorkflow:
    """An inline sub-saga that fails and is caught, a fallback one, then a failure."""

    @workflow.run
    async def run(self, batch: Batch) -> None:
        await TemporalExecutor(options=OPTIONS).run(trip, batch)
