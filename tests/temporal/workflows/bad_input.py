"""Sagas fed bad input after a good first step: each must fail, compensate, and let go."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from sagakit import Saga, SagaOptions
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


async def healthy(saga: Saga, run: str) -> None:
    await saga.step(do_any, undo_any, run)


SAGAS = {
    "healthy": healthy,
    "big_arg": big_arg,
    "unserializable_arg": unserializable_arg,
    "plain_function": plain_function,
    "unstarted_task": unstarted_task,
}


@workflow.defn
class BadInputWorkflow:
    @workflow.run
    async def run(self, which: str, run: str) -> None:
        await TemporalExecutor(options=OPTIONS).run(SAGAS[which], run)  # type: ignore[arg-type]
