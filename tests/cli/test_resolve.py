"""`sagakit parked` and `sagakit resolve`: an operator finishes a saga whose undo parked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from sagakit import SagaReport, SagaStatus, UndoStatus
from sagakit.temporal import REPORT_QUERY, parked

from ._acts import REFUND_DOWN, Order
from ._sagas import CliParkingOrder
from .conftest import Cli, new_id, start, worker
from .test_list import listed

pytestmark = pytest.mark.temporal


async def parked_refund(client: Client, tq: str) -> tuple[WorkflowHandle[Any, Any], Order]:
    """A saga whose refund is down: it fails at ship and its refund undo parks."""
    order = Order(new_id("parks"))
    REFUND_DOWN.add(order.id)
    handle = await start(client, CliParkingOrder.run, order, tq)
    for _ in range(200):
        if await parked(handle):
            return handle, order
        await asyncio.sleep(0.05)
    raise AssertionError("the refund never parked")


async def report(handle: WorkflowHandle[Any, Any]) -> SagaReport:
    return SagaReport.model_validate(await handle.query(REPORT_QUERY))


async def test_an_operator_finds_reads_and_retries_a_parked_undo(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        handle, order = await parked_refund(client, tq)
        await listed(client, f'WorkflowId = "{handle.id}" AND SagaStatus = "parked"', handle.id)
        found, shown, listing, refused = await asyncio.gather(
            cli("list", "--status", "parked"),
            cli("show", handle.id),
            cli("parked", handle.id),
            cli("resolve", handle.id, "3", "retry"),  # ship's undo ran: nothing parked there
        )
        assert found.code == 0, found
        (row,) = [r for r in found.out.splitlines() if r.startswith(handle.id + " ")]
        assert row.split()[1:3] == ["CliParkingOrder", "parked"]

        assert shown.code == 0, shown
        assert "report: live, from the sagakit_report query" in shown.out
        assert "PARKED" in shown.out
        assert "charge (refund)" in shown.out

        assert listing.code == 0, listing
        (line,) = listing.out.splitlines()
        assert line.startswith("2. charge (undo refund): ")
        assert line.endswith("PaymentDown: payment service down")

        assert refused.code == 1, refused
        assert refused.error.startswith("sagakit: rejected: ")

        REFUND_DOWN.discard(order.id)  # the payment service is fixed
        resolved = await cli("resolve", handle.id, "2", "retry", "--reason", "PSP back up")
        assert resolved.code == 0, resolved
        assert resolved.out == (
            f"{handle.id}: the undo of step 2 resolved with retry (PSP back up)\n"
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await report(handle)
        after, ended = await asyncio.gather(cli("show", handle.id), cli("parked", handle.id))
    assert final.status == SagaStatus.COMPENSATED
    undo = final.steps[1].undo
    assert undo is not None
    assert undo.status == UndoStatus.COMPENSATED
    (decision,) = undo.resolutions
    assert (decision.action, decision.reason) == ("retry", "PSP back up")
    assert decision.by is not None
    assert decision.by.startswith("sagakit:")
    assert after.code == 0, after
    assert "COMPENSATED" in after.out
    assert after.out.splitlines()[0].endswith("  workflow failed, saga compensated")
    # The saga's status, not the workflow's; and, the worker gone, from the run's failure.
    gone = await cli("parked", handle.id, "--worker-timeout", "60")
    for run in (ended, gone):
        assert (run.code, run.out, run.err) == (
            0,
            f"no parked undo in {handle.id}: its saga is compensated (workflow failed)\n",
            "",
        ), run
    assert gone.seconds < 30  # no wait for a worker

    closed = await cli("resolve", handle.id, "2", "retry", "--worker-timeout", "60")
    assert (closed.code, closed.error) == (
        1,
        f"sagakit: nothing to resolve in '{handle.id}': its saga is compensated (workflow failed)",
    ), closed
    assert closed.seconds < 30


async def test_skip_records_who_and_why(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        handle, _ = await parked_refund(client, tq)
        run = await cli(
            "resolve", handle.id, "2", "skip", "--reason", "refunded by hand", "--identity", "alice"
        )
        assert run.code == 0, run
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        final = await report(handle)
    undo = final.steps[1].undo
    assert undo is not None
    assert undo.status == UndoStatus.DONE_BY_HAND
    (decision,) = undo.resolutions
    assert (decision.action, decision.reason, decision.by) == ("skip", "refunded by hand", "alice")


async def test_resolve_without_a_worker_says_so(cli: Cli, client: Client) -> None:
    tq = new_id("tq")
    async with worker(client, tq):
        handle, _ = await parked_refund(client, tq)
    run = await cli("resolve", handle.id, "2", "skip", "--worker-timeout", "1")
    assert run.code == 1, run
    assert run.error == (
        "sagakit: no worker answered the sagakit_resolve update within 1s: it needs a running "
        f"worker on task queue '{tq}' (or raise --worker-timeout); it may still reach the saga "
        f"when a worker starts: check with `sagakit parked {handle.id}`"
    )
    await handle.terminate()
    # Terminated while parked: the saga's last word (SagaStatus), and nothing to resolve.
    listing, resolving = await asyncio.gather(
        cli("parked", handle.id, "--worker-timeout", "1"),
        cli("resolve", handle.id, "2", "skip", "--worker-timeout", "1"),
    )
    assert (listing.code, listing.out) == (
        0,
        f"no parked undo in {handle.id} can be resolved: its saga is parked "
        "(workflow terminated)\n",
    ), listing
    assert (resolving.code, resolving.error) == (
        1,
        f"sagakit: nothing to resolve in '{handle.id}': its saga is parked (workflow terminated)",
    ), resolving
