"""How a batch run hands on to the next: on Temporal, continue-as-new; in memory, a loop."""

from __future__ import annotations

from typing import NoReturn

from temporalio import workflow

from examples.refund_batch.models import Batch, BatchResult
from examples.refund_batch.saga import process
from sagakit import UndoPlan
from sagakit.inmemory import InMemoryExecutor

__all__ = ["ContinueAsNew", "HandedOn", "run_in_memory"]


class ContinueAsNew:
    """The workflow's `NextRun`: continue as new with the rest and the plan.

    `workflow.continue_as_new` raises inside the saga function; sagakit does not
    take that for a failure (nothing unwinds), and the next run starts with
    `args=[rest, plan]`, the plan travelling through the pydantic data converter.
    """

    def __call__(self, rest: Batch, plan: UndoPlan) -> NoReturn:
        """Continue the workflow as new with `rest` and `plan`."""
        workflow.continue_as_new(args=[rest, plan])


class HandedOn:
    """The in-memory `NextRun`: keeps what the run handed on, for the loop to start next."""

    def __init__(self) -> None:
        self.next: tuple[Batch, UndoPlan] | None = None
        """The rest of the batch and the plan, once the run handed them on."""

    def __call__(self, rest: Batch, plan: UndoPlan) -> None:
        """Keep `rest` and `plan` for the next run."""
        self.next = (rest, plan)


async def run_in_memory(executor: InMemoryExecutor, batch: Batch) -> BatchResult:
    """Run the batch to its end in memory: one `executor.run` per share, each resuming the plan.

    Raises:
        sagakit.SagaFailed: a refund failed; that run unwound the whole plan.
    """
    plan: UndoPlan | None = None
    while True:
        handed_on = HandedOn()
        result = await executor.run(process, batch, handed_on, resume=plan)
        if handed_on.next is None:
            return result
        batch, plan = handed_on.next
