"""Fixtures for the Temporal adapter's tests: real servers, one per session.

The servers themselves are the session fixtures `temporal_env` and
`temporal_time_skipping_env` of `sagakit.pytest_plugin` (a pytest11 plugin):
real servers from the binaries installed next to the interpreter, never a
download. Here: per-test helpers on top of them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sagakit import SagaReport
from sagakit.temporal import SagakitPlugin


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@asynccontextmanager
async def saga_worker(
    client: Client,
    *,
    workflows: Sequence[type],
    activities: Sequence[Any] = (),
    task_queue: str | None = None,
    plugins: Sequence[Any] | None = None,
    **kwargs: Any,
) -> AsyncIterator[Worker]:
    """A worker with SagakitPlugin on a fresh task queue, running for the block.

    Pass `plugins=[]` for a client that already carries SagakitPlugin.
    """
    worker = Worker(
        client,
        task_queue=task_queue or f"tq-{uuid.uuid4()}",
        workflows=list(workflows),
        activities=list(activities),
        plugins=[SagakitPlugin()] if plugins is None else list(plugins),
        **kwargs,
    )
    async with worker:
        yield worker


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4()}"


def story(report: SagaReport) -> dict[str, Any]:
    """What `report` says but for its times and saga id: all a workflow failure keeps of it.

    A report read back from a failure (`report_from_failure`) has no step
    times and no saga id, and error messages cut at 200 characters; every
    step, undo, error and resolution is there.
    """

    def cut(error: dict[str, Any] | None) -> None:
        if error is not None and len(error["message"]) > 200:
            error["message"] = error["message"][:197] + "..."

    data = report.model_dump(mode="json", exclude={"saga_id", "started_at", "ended_at", "omitted"})
    cut(data["error"])
    for step in data["steps"]:
        del step["started_at"], step["ended_at"]
        cut(step["error"])
        if step["undo"] is not None:
            del step["undo"]["started_at"], step["undo"]["ended_at"]
            cut(step["undo"]["error"])
            for r in step["undo"]["resolutions"]:
                del r["at"]
    return data
