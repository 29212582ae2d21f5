"""The CLI tests: `python -m sagakit` in a subprocess, as a person runs it, on the dev server.

The sagas run on a worker in this process (`worker`), on the session's dev
server (`temporal_env`); the command line talks to the same server through
TEMPORAL_ADDRESS, with a clean environment otherwise.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sagakit.temporal import SagakitPlugin, saga_search_attributes

from ._acts import ACTIVITIES, Order
from ._sagas import WORKFLOWS

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Run:
    """What one command did."""

    argv: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float

    @property
    def error(self) -> str:
        """The one line a failed command printed on stderr (asserts it is one, and clean)."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"{self.argv}: expected one line on stderr, got:\n{self.err}"
        assert lines[0].startswith("sagakit: "), lines[0]
        return lines[0]

    def __str__(self) -> str:
        return f"sagakit {' '.join(self.argv)} -> {self.code}\n{self.out}{self.err}"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TEMPORAL_", "SAGAKIT_")) and k != "NO_COLOR"
    }
    path = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": path, "NO_COLOR": "1", **extra}


async def start_cli(*argv: str, **env: str) -> asyncio.subprocess.Process:
    """`python -m sagakit ARGV...` started, with a clean environment plus `env`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sagakit",
        *argv,
        cwd=ROOT,
        env=_clean_env(**env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(*argv: str, **env: str) -> Run:
    """`python -m sagakit ARGV...` run to its end (the event loop, and the worker, go on)."""
    t0 = time.monotonic()
    proc = await start_cli(*argv, **env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Run(argv, proc.returncode, out.decode(), err.decode(), time.monotonic() - t0)


class Cli:
    """The command line pointed at the session's dev server (TEMPORAL_ADDRESS)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def __call__(self, *argv: str, **env: str) -> Run:
        return await run_cli(*argv, **{"TEMPORAL_ADDRESS": self.address, **env})


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cli(temporal_env: WorkflowEnvironment) -> Cli:
    """The CLI on the dev server, whose default namespace has the SagaStatus attribute."""
    client = temporal_env.client
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    if "SagaStatus" not in listed.custom_attributes:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={"SagaStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
            )
        )
    return Cli(client.service_client.config.target_host)


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


@asynccontextmanager
async def worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    """A worker of the CLI tests' workflows on `task_queue`, for the block."""
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=list(ACTIVITIES),
        plugins=[SagakitPlugin()],
    ) as w:
        yield w


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def start(
    client: Client, workflow: Any, order: Order, task_queue: str, *, sagakit_status: bool = True
) -> WorkflowHandle[Any, Any]:
    """Start `workflow` with `order`; with the SagaStatus attribute unless told not to."""
    return await client.start_workflow(
        workflow,
        order,
        id=new_id(order.id),
        task_queue=task_queue,
        search_attributes=saga_search_attributes() if sagakit_status else None,
    )
