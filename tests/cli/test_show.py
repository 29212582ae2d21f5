"""`sagakit show`: the timeline, live from a worker or from a closed run's failure."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from sagakit import SagaReport, StepStatus
from sagakit.temporal import REPORT_QUERY

from ._acts import Order
from ._sagas import CliContinuedOrder, CliNotASaga, CliOpenSaga, CliPlaceOrder
from .conftest import Cli, new_id, start, worker

pytestmark = pytest.mark.temporal


async def reserved(handle: WorkflowHandle[Any, Any]) -> None:
    """Wait until the open saga's first step has succeeded."""
    for _ in range(100):
        report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        if report.steps and report.steps[0].status == StepStatus.SUCCEEDED:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the saga's first step did not succeed")


async def test_a_running_saga_live_with_its_web_ui_link(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        handle = await start(client, CliOpenSaga.run, Order(new_id("open")), tq)
        await reserved(handle)
        run, listing = await asyncio.gather(
            cli("show", handle.id, "--ui-url", "https://ui.example/"), cli("parked", handle.id)
        )
    run_id = (await handle.describe()).run_id
    assert run.code == 0, run
    lines = run.out.splitlines()
    assert lines[0] == f"{handle.id}  CliOpenSaga  run {run_id}  workflow running, saga running"
    assert lines[1] == "report: live, from the sagakit_report query"
    assert f"saga {handle.id}/{run_id}  RUNNING" in lines[2]
    assert "1. reserve" in run.out
    assert "succeeded" in run.out
    ui = "https://ui.example/namespaces/default/workflows"
    assert lines[-1] == f"Web UI: {ui}/{handle.id}/{run_id}"
    assert run.err == ""
    assert (listing.code, listing.out) == (
        0,
        f"no parked undo in {handle.id}: its saga is running\n",
    )


async def test_a_closed_failed_saga_from_its_failure_when_no_worker_answers(
    cli: Cli, client: Client
) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        handle = await start(client, CliPlaceOrder.run, Order(new_id("order")), tq)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    # The worker is gone: the query gets no answer, the run's failure has the report.
    run = await cli("show", handle.id, "--worker-timeout", "1")
    run_id = (await handle.describe()).run_id
    assert run.code == 0, run
    assert run.out.splitlines()[:2] == [
        f"{handle.id}  CliPlaceOrder  run {run_id}  workflow failed, saga compensated",
        "report: from the failure of the closed run (no worker answered the sagakit_report query)",
    ]
    assert f"saga {handle.id}/{run_id}  COMPENSATED" in run.out
    assert "NoCarrier: no carrier serves Atlantis" in run.out
    assert "ship (cancel_shipment)" in run.out
    assert f"Web UI: http://localhost:8233/namespaces/default/workflows/{handle.id}/{run_id}" in (
        run.out
    )
    assert run.err == ""


async def test_a_continued_saga_shows_its_sub_saga_and_the_steps_its_plan_carries(
    cli: Cli, client: Client
) -> None:
    """Run 2 of a continue-as-new chain: the carried steps, indented under their sub-saga."""
    pydantic = Client(**{**client.config(), "data_converter": pydantic_data_converter})
    tq = new_id("tq")
    async with worker(pydantic, tq):
        order = Order(new_id("continued"))
        handle = await pydantic.start_workflow(
            CliContinuedOrder.run, args=[order, None], id=order.id, task_queue=tq
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        first_run = handle.first_execution_run_id
        live = await cli("show", handle.id)
    closed = await cli("show", handle.id, "--worker-timeout", "1")
    for run in (live, closed):
        assert run.code == 0, run
        lines = run.out.splitlines()
        assert "COMPENSATED" in run.out
        carried = [line for line in lines if "carried:" in line]
        assert len(carried) == 2
        assert "1. reserve" in carried[0]
        assert carried[0].endswith(f"carried: {handle.id}/{first_run}#1")
        assert "2.   payment: charge" in carried[1]
        assert carried[1].endswith(f"carried: {handle.id}/{first_run}#2")
        assert any("undo" in line and "payment: charge (refund)" in line for line in lines)


async def test_an_open_saga_no_worker_answers_for_is_one_line_not_a_hang(
    cli: Cli, client: Client
) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        gone = await start(client, CliOpenSaga.run, Order(new_id("gone")), tq)
        await reserved(gone)
    never = await start(client, CliOpenSaga.run, Order(new_id("never")), new_id("nobody"))
    runs = await asyncio.gather(
        *(cli("show", h.id, "--worker-timeout", "1") for h in (gone, never))
    )
    for run, handle in zip(runs, (gone, never), strict=True):
        assert run.code == 1, run
        assert run.error.startswith(
            "sagakit: no timeline: the workflow is running, and no worker answered the "
            "sagakit_report query within 1s: it needs a running worker on task queue"
        )
        assert run.seconds < 20
        assert run.out.splitlines()[0].endswith("  workflow running, saga running")
        assert f"/workflows/{handle.id}/" in run.out


async def test_a_workflow_that_is_not_a_saga(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        order = Order(new_id("plain"))
        handle = await start(client, CliNotASaga.run, order, tq, sagakit_status=False)
        runs = list(
            await asyncio.gather(
                cli("show", handle.id),
                cli("parked", handle.id),
                cli("resolve", handle.id, "1", "skip", "--reason", "why not"),
            )
        )
        await handle.terminate()
        # Closed, it is still no saga: the worker's answer to the query says so.
        runs += await asyncio.gather(
            cli("resolve", handle.id, "1", "skip"),
            cli("parked", handle.id),
        )
    for run in runs:
        assert run.code == 4, run
        assert run.error.startswith(
            f"sagakit: '{handle.id}' is not a saga: its workflow CliNotASaga has no sagakit_"
        )
    # With no worker to ask, nothing tells whether it ran a saga; it is closed all the same.
    unknown = await cli("resolve", handle.id, "1", "skip", "--worker-timeout", "1")
    assert (unknown.code, unknown.error) == (
        1,
        f"sagakit: nothing to resolve in '{handle.id}': its workflow is terminated",
    ), unknown


async def test_an_unknown_workflow_or_run(cli: Cli, client: Client) -> None:
    handle = await start(client, CliNotASaga.run, Order(new_id("lonely")), new_id("nobody"))
    other_run = str(uuid.uuid4())
    no_wf, no_run, bad_run, no_wf_resolve = await asyncio.gather(
        cli("show", "no-such-saga"),
        cli("show", handle.id, "--run-id", other_run),
        cli("show", handle.id, "--run-id", "not-a-run-id"),
        cli("resolve", "no-such-saga", "2", "retry"),
    )
    assert (no_wf.code, no_wf.error) == (
        4,
        "sagakit: no workflow 'no-such-saga' in namespace 'default'",
    ), no_wf
    assert (no_run.code, no_run.error) == (
        4,
        f"sagakit: no run {other_run} of workflow '{handle.id}' in namespace 'default'",
    ), no_run
    assert bad_run.code == 2, bad_run
    assert bad_run.error.startswith("sagakit: --run-id not-a-run-id: ")
    assert no_wf_resolve.code == 4, no_wf_resolve
    await handle.terminate()
