"""Sagas that raise a `BaseException` (not an `Exception`) in workflow code.

`KeyboardInterrupt`, `SystemExit` or a custom `BaseException` subclass raised by
an inline `async def` step, or by the saga body itself, after activity step a:
the saga must be unwound, then the workflow must fail (not hang, not retry its
task, not take the worker down with it).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor
    from workflows.activities import DO, UNDO, Job


class Halt(BaseException):
    """A custom `BaseException` subclass, as some frameworks define to stop a run."""


RAISES: dict[str, type[BaseException]] = {
    "KeyboardInterrupt": KeyboardInterrupt,
    "SystemExit": SystemExit,
    "Halt": Halt,
}


async def interrupt(job: Job, which: str) -> str:
    """An inline step (runs in the workflow itself) that raises `RAISES[which]`."""
    raise RAISES[which](f"{which} from an inline step")


async def in_step(saga: Saga, job: Job, which: str) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], job)
    b = await saga.step(interrupt, None, job, which, name="interrupt", inline=True)
    return [a, b]


async def in_body(saga: Saga, job: Job, which: str) -> list[str]:
    await saga.step(DO["a"], UNDO["a"], job)
    raise RAISES[which](f"{which} from the saga body")


async def in_gather(saga: Saga, job: Job, which: str) -> list[str]:
    """The inline step runs in a task of its own, beside an activity step."""
    a = await saga.step(DO["a"], UNDO["a"], job)
    await saga.gather(
        saga.step(interrupt, None, job, which, name="interrupt", inline=True),
        saga.step(DO["b"], UNDO["b"], job),
    )
    return [a]


WHERE = {"step": in_step, "body": in_body, "gather": in_gather}


@workflow.defn
class InterruptWorkflow:
    @workflow.run
    async def run(self, job: Job, which: str, where: str) -> list[str]:
        options = SagaOptions(
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return await TemporalExecutor(options=options).run(WHERE[where], job, which)


async def healthy(saga: Saga, job: Job) -> list[str]:
    return [await saga.step(DO[n], UNDO[n], job) for n in job.steps]


@workflow.defn
class HealthyWorkflow:
    """What the same worker must still run afterwards."""

    @workflow.run
    async def run(self, job: Job) -> list[str]:
        options = SagaOptions(start_to_close_timeout=timedelta(seconds=10))
        return await TemporalExecutor(options=options).run(healthy, job)
