"""`sagakit list`: sagas by their SagaStatus search attribute."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client, WorkflowFailureError

from ._acts import Order
from ._sagas import CliNotASaga, CliPlaceOrder
from .conftest import Cli, new_id, start, worker

pytestmark = pytest.mark.temporal

ROW = re.compile(r"^(\S+)  +(\S+)  +(.+?)  +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)$")


def status(row: str) -> str:
    match = ROW.match(row)
    assert match is not None, row
    return match.group(3)


async def listed(client: Client, query: str, workflow_id: str) -> None:
    """Wait until visibility (eventually consistent) lists `workflow_id` for `query`."""
    for _ in range(100):
        if any([wf.id == workflow_id async for wf in client.list_workflows(query)]):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never listed for {query}")


async def test_list_by_status_one_line_each(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        failed = await start(client, CliPlaceOrder.run, Order(new_id("order")), tq)
        with pytest.raises(WorkflowFailureError):
            await failed.result()
    running = await start(client, CliNotASaga.run, Order(new_id("running")), new_id("nobody"))
    await listed(client, f'WorkflowId = "{failed.id}" AND SagaStatus = "compensated"', failed.id)
    await listed(client, f'WorkflowId = "{running.id}" AND SagaStatus = "running"', running.id)

    compensated, every, one, parked = await asyncio.gather(
        cli("list", "--status", "compensated"),
        cli("list"),
        cli("list", "--limit", "1"),
        cli("list", "--status", "parked", "--namespace", "default"),
    )
    assert compensated.code == 0, compensated
    head, *rows = compensated.out.splitlines()
    assert head.split() == ["WORKFLOW", "ID", "TYPE", "STATUS", "STARTED", "(UTC)"]
    mine = [ROW.match(r) for r in rows if r.startswith(failed.id + " ")]
    assert len(mine) == 1, compensated
    assert mine[0] is not None, compensated
    assert mine[0].group(2, 3) == ("CliPlaceOrder", "compensated")
    assert [status(r) for r in rows] == ["compensated"] * len(rows)

    assert every.code == 0, every
    assert any(r.startswith(failed.id + " ") for r in every.out.splitlines())
    (row,) = [r for r in every.out.splitlines() if r.startswith(running.id + " ")]
    assert row.split()[1:3] == ["CliNotASaga", "running"]

    assert one.code == 0, one
    assert len(one.out.splitlines()) == 2  # the header and one saga

    assert parked.code == 0, parked
    assert failed.id not in parked.out
    assert running.id not in parked.out
    await running.terminate()
    terminated = f'WorkflowId = "{running.id}" AND ExecutionStatus = "Terminated"'
    await listed(client, terminated, running.id)
    after = await cli("list", "--status", "running")
    (row,) = [r for r in after.out.splitlines() if r.startswith(running.id + " ")]
    assert status(row) == "running (workflow terminated)"


async def test_a_namespace_without_the_search_attribute(cli: Cli, client: Client) -> None:
    namespace = f"bare-{uuid.uuid4().hex[:8]}"
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    run = await cli("list", "--status", "parked", TEMPORAL_NAMESPACE=namespace)
    assert run.code == 1, run
    assert run.error == (
        f"sagakit: namespace '{namespace}' has no SagaStatus search attribute: register it with "
        "`temporal operator search-attribute create --name SagaStatus --type Keyword` "
        "(a dev server: `temporal server start-dev --search-attribute SagaStatus=Keyword`)"
    )
