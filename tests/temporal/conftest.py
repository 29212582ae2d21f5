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

from sagakit import ErrorInfo, SagaReport, StepReport
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


def _untimed(step: StepReport) -> dict[str, Any]:
    """A step as both reports must tell it, times and error messages aside."""
    untold = {"started_at", "ended_at", "error"}
    return step.model_dump(exclude={**dict.fromkeys(untold, True), "undo": untold})


def _tells(error: ErrorInfo | None, full: ErrorInfo | None) -> bool:
    """`error` is `full`, or `full` with its long message cut (and marked so)."""
    if error is None or full is None:
        return error is full
    cut = error.message.endswith("...") and full.message.startswith(error.message[:-3])
    return error.type == full.type and (error.message == full.message or cut)


def assert_failure_report_agrees(report: SagaReport | None, full: SagaReport) -> SagaReport:
    """The report read back from a saga's failure tells what the query's full report tells.

    The same status, error and cancellation; every step it lists as the full
    report has it (times aside, long messages maybe cut); every step it leaves
    out, counted. Checked on the report a user reads, not on its encoding.
    """
    assert report is not None, "the failure carries no report"
    assert (report.status, report.cancelled) == (full.status, full.cancelled)
    assert _tells(report.error, full.error), (report.error, full.error)
    by_seq = {s.seq: s for s in full.steps}
    for step in report.steps:
        told = by_seq[step.seq]
        assert _untimed(step) == _untimed(told)
        assert _tells(step.error, told.error), (step.error, told.error)
        if step.undo is not None and told.undo is not None:
            assert _tells(step.undo.error, told.undo.error), (step.undo.error, told.undo.error)
    left_out = report.omitted.count if report.omitted else 0
    assert len(report.steps) + left_out == len(full.steps)
    return report
