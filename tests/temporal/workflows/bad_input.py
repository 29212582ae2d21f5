"""Sagas fed bad input after a good first step: each must fail, compensate, and let go."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor

OPTIONS = SagaOptions(start_to_close_timeout=timedelta(seconds=10))

DONE: list[tuple[str, str]] = []
"""(phase, run) of every do and undo that ran, across tests (the worker is in-process)."""


@activity.defn
async def do_any(run: str, *payload: Any) -> str:
    DONE.append(("do", run))
    return run


@activity.defn
async def undo_any(run: str, *payload: Any) -> None:
    DONE.append(("undo", run))


async def big_arg(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)
    await saga.step(do_any, undo_any, run, "x" * 3_000_000)


async def unserializable_arg(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)
    await saga.step(do_any, undo_any, run, object())


def plain_function(saga: Saga, run: str) -> None:
    return None


LEFT: list[asyncio.Future[Any]] = []
"""Tasks a saga left behind (kept, so they are not collected mid-test)."""


async def unstarted_task(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)
    LEFT.append(asyncio.ensure_future(saga.step(do_any, undo_any, run, "never")))


async def task_left_behind(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)
    # Not kept: the task is freed once it has run, and an error it ended with is logged then.
    asyncio.create_task(saga.step(do_any, undo_any, run, "never"))  # noqa: RUF006


@activity.defn
async def do_fail(run: str) -> None:
    raise ApplicationError("the second step fails", type="Boom", non_retryable=True)


FAST_UNLIMITED = RetryPolicy(
    initial_interval=timedelta(milliseconds=50),
    maximum_interval=timedelta(milliseconds=100),
    maximum_attempts=0,
)


async def unregistered_undo(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)
    # Its undo is an activity no worker has: every attempt fails ("not registered").
    await saga.step(do_any, "no_such_undo", run, retry_policy=FAST_UNLIMITED)
    await saga.step(do_fail, None, run)


async def healthy(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)


SAGAS = {
    "healthy": healthy,
    "big_arg": big_arg,
    "unserializable_arg": unserializable_arg,
    "plain_function": plain_function,
    "unstarted_task": unstarted_task,
    "task_left_behind": task_left_behind,
    "unregistered_undo": unregistered_undo,
}


@workflow.defn
class BadInputWorkflow:
    @workflow.run
    async def run(self, which: str, run: str) -> None:
        await TemporalExecutor(options=OPTIONS).run(SAGAS[which], run)  # type: ignore[arg-type]
