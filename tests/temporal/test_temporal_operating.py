"""Operating a saga on Temporal: what an operator sees and does from outside (API.md §8).

Parked undos are resolved through the `sagakit_resolve` update, whose
validator refuses a wrong request without touching the history; the saga
shows where it stands in the UI (current details) and, when started with it,
in the `SagaStatus` search attribute; the `on_compensation_failed` activity
runs once; metrics count sagas by how they end.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from conftest import new_id, saga_worker
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from workflows.activities import ALL, STARTED, Job
from workflows.operating import ACTIVITIES, ALERTS, FIXED, HELD, OperatedOrder, Order
from workflows.sagas import DeadlineWorkflow, StepsWorkflow

from sagakit import SagaStateError, SagaStatus, UndoStatus
from sagakit.temporal import (
    RESOLVE_UPDATE,
    SAGA_STATUS,
    parked,
    report_from_failure,
    resolve,
    saga_search_attributes,
)

pytestmark = pytest.mark.temporal


@pytest.fixture
def pclient(temporal_env: WorkflowEnvironment) -> Client:
    """The dev server, through a client on the pydantic converter (the hook gets a SagaReport)."""
    return Client(**{**temporal_env.client.config(), "data_converter": pydantic_data_converter})


@pytest.fixture
async def status_attribute(pclient: Client) -> None:
    """`SagaStatus` registered on the namespace (the fixture's dev server may already have it)."""
    ns = pclient.namespace
    have = await pclient.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=ns)
    )
    if "SagaStatus" not in have.custom_attributes:
        await pclient.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=ns,
                search_attributes={"SagaStatus": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
            )
        )


async def until_parked(handle: WorkflowHandle[Any, Any]) -> None:
    async with asyncio.timeout(20):
        while not await parked(handle):  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)


async def events(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [e async for e in handle.fetch_history_events()]


async def failure(handle: WorkflowHandle[Any, Any]) -> WorkflowFailureError:
    with pytest.raises(WorkflowFailureError) as ei:
        await asyncio.wait_for(handle.result(), 30)
    return ei.value


@pytest.fixture
async def queue(pclient: Client) -> AsyncIterator[str]:
    async with saga_worker(pclient, workflows=[OperatedOrder], activities=ACTIVITIES) as w:
        yield w.task_queue


async def start(pclient: Client, queue: str, order: Order, **kw: Any) -> WorkflowHandle[Any, Any]:
    return await pclient.start_workflow(
        OperatedOrder.run, order, id=new_id("order"), task_queue=queue, **kw
    )


class TestTheUpdateValidator:
    async def test_a_wrong_request_is_refused_without_a_history_event(
        self, pclient: Client, queue: str
    ) -> None:
        """Unknown seq, unknown action, a malformed request: refused, the history unchanged."""
        order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True)
        handle = await start(pclient, queue, order)
        await until_parked(handle)
        before = len(await events(handle))
        with pytest.raises(SagaStateError, match="no parked undo"):
            await resolve(handle, 1, "retry")
        with pytest.raises(SagaStateError, match="unknown action"):
            await resolve(handle, 2, "redo")  # type: ignore[arg-type]
        with pytest.raises(WorkflowUpdateFailedError) as ei:
            await handle.execute_update(RESOLVE_UPDATE, {"action": "skip"})
        assert "takes {'seq': int" in str(ei.value.cause)
        assert len(await events(handle)) == before
        await resolve(handle, 2, "skip", reason="refunded by hand")
        report = report_from_failure(await failure(handle))
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        # The failure keeps the operator's decision: what, why, who and when.
        [step_2] = [s for s in report.steps if s.seq == 2]
        assert step_2.undo is not None
        [decision] = step_2.undo.resolutions
        assert (decision.action, decision.reason) == ("skip", "refunded by hand")
        assert decision.by  # the resolving client's identity
        assert decision.at is not None
        accepted = [
            e
            for e in await events(handle)
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert len(accepted) == 1  # only the good one reached the history


class TestNothingChangesForASagaThatNeverParks:
    async def test_park_mode_adds_no_history_event(self, pclient: Client, queue: str) -> None:
        """A failing saga whose undos all succeed writes the same events with "park" as without."""
        plain = await start(pclient, queue, Order(id=str(uuid.uuid4())))
        parking = await start(pclient, queue, Order(id=str(uuid.uuid4()), park=True))
        await failure(plain)
        await failure(parking)
        kinds = [[e.event_type for e in await events(h)] for h in (plain, parking)]
        assert kinds[0] == kinds[1]


class TestVisibleFromOutside:
    async def test_the_search_attribute_follows_the_saga(
        self, pclient: Client, queue: str, status_attribute: None
    ) -> None:
        """Started with `saga_search_attributes()`, the saga keeps `SagaStatus` current."""
        order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True)
        handle = await start(pclient, queue, order, search_attributes=saga_search_attributes())
        await until_parked(handle)
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(SAGA_STATUS) == "parked"
        query = f'SagaStatus = "parked" AND WorkflowId = "{handle.id}"'
        async with asyncio.timeout(20):  # visibility is eventually consistent
            while not [w async for w in pclient.list_workflows(query)]:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        FIXED.add(order.id)
        await resolve(handle, 2, "retry")
        await failure(handle)
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(SAGA_STATUS) == "compensated"

    async def test_without_it_nothing_is_upserted(self, pclient: Client, queue: str) -> None:
        """Started without the attribute, the saga upserts none (it may not be registered)."""
        handle = await start(pclient, queue, Order(id=str(uuid.uuid4())))
        await failure(handle)
        upserts = [
            e
            for e in await events(handle)
            if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        ]
        assert upserts == []

    async def test_current_details_say_what_is_parked(self, pclient: Client, queue: str) -> None:
        """The UI's current details name the parked undo and its error."""
        order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True)
        handle = await start(pclient, queue, order)
        await until_parked(handle)
        metadata = await handle.query("__temporal_workflow_metadata")
        details = metadata.current_details if hasattr(metadata, "current_details") else metadata
        assert "parked: refund" in str(details)
        assert "CardDeclined" in str(details)
        await resolve(handle, 2, "skip")
        await failure(handle)

    async def test_while_a_retry_runs_the_other_parked_undo_stays_shown(
        self, pclient: Client, queue: str
    ) -> None:
        """An operator's retry of one undo: the saga stays PARKED, listing the other one."""
        order = Order(id=str(uuid.uuid4()), broken=["release", "refund"], park=True)
        handle = await start(pclient, queue, order)
        await until_parked(handle)
        assert [p.seq for p in await parked(handle)] == [1, 2]
        FIXED.add(order.id)
        HELD[order.id] = asyncio.Event()
        await resolve(handle, 1, "retry")
        async with asyncio.timeout(20):
            while "compensating reserve" not in (shown := await current_details(handle)):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert shown == "compensating reserve; parked: refund (CardDeclined)"
        assert [p.seq for p in await parked(handle)] == [2]
        await resolve(handle, 2, "skip", reason="refunded by hand")
        HELD[order.id].set()
        report = report_from_failure(await failure(handle))
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED

    @pytest.mark.parametrize(
        ("deadline", "shown"),
        [(90.0, "step 2 do_b; deadline in 1m"), (0.0, "step 2 do_b")],
        ids=["with a deadline", "without one"],
    )
    async def test_current_details_count_down_to_the_deadline(
        self, temporal_env: WorkflowEnvironment, deadline: float, shown: str
    ) -> None:
        """While b runs under a 90 s deadline the details say "deadline in 1m"; at the end, not."""
        client = temporal_env.client
        job = Job(run=new_id("run"), steps=["a", "b"], block=["b"], deadline=deadline)
        workflow = DeadlineWorkflow if deadline else StepsWorkflow
        async with saga_worker(client, workflows=[workflow], activities=ALL) as w:
            handle = await client.start_workflow(
                workflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            await asyncio.wait_for(STARTED[job.run].wait(), 20)
            desc = await handle.describe()
            assert desc.status is WorkflowExecutionStatus.RUNNING
            assert await current_details(handle) == shown
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await asyncio.wait_for(handle.result(), 30)
            assert "deadline" not in await current_details(handle)


async def current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the UI shows as the workflow's current details (`workflow.set_current_details`)."""
    metadata = await handle.query("__temporal_workflow_metadata")
    return str(metadata.current_details if hasattr(metadata, "current_details") else metadata)


class TestTheHook:
    async def test_it_runs_once_when_an_undo_finally_fails(
        self, pclient: Client, queue: str
    ) -> None:
        """`on_compensation_failed` gets the report once, the saga compensation failed."""
        order = Order(id=str(uuid.uuid4()), broken=["refund", "release"], alert=True)
        handle = await start(pclient, queue, order)
        report = report_from_failure(await failure(handle))
        assert report is not None
        assert report.status is SagaStatus.COMPENSATION_FAILED
        mine = [r for r in ALERTS if r.saga_id.startswith(handle.id)]
        assert len(mine) == 1
        assert mine[0].status is SagaStatus.COMPENSATION_FAILED
        assert {s.name: s.undo.status for s in mine[0].steps if s.undo} == {
            "reserve": UndoStatus.FAILED,
            "charge": UndoStatus.FAILED,
        }

    async def test_it_runs_once_when_undos_park(self, pclient: Client, queue: str) -> None:
        """Parked, the hook is told so once; a retry that parks again does not call it again."""
        order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True, alert=True)
        handle = await start(pclient, queue, order)
        await until_parked(handle)
        await resolve(handle, 2, "retry")  # still broken: it parks again
        await asyncio.sleep(0.5)
        await until_parked(handle)
        await resolve(handle, 2, "skip")
        await failure(handle)
        mine = [r for r in ALERTS if r.saga_id.startswith(handle.id)]
        assert [r.status for r in mine] == [SagaStatus.PARKED]
        assert [p.seq for p in mine[0].parked] == [2]


class TestMetrics:
    async def test_sagas_are_counted_by_how_they_end(
        self, temporal_env: WorkflowEnvironment
    ) -> None:
        """The workflow metric meter counts sagas started and compensated."""
        buffer = MetricBuffer(1000)
        runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
        config = temporal_env.client.config()
        client = await Client.connect(
            temporal_env.client.service_client.config.target_host,
            namespace=config["namespace"],
            runtime=runtime,
            data_converter=pydantic_data_converter,
        )
        async with saga_worker(client, workflows=[OperatedOrder], activities=ACTIVITIES) as w:
            handle = await start(client, w.task_queue, Order(id=str(uuid.uuid4())))
            await failure(handle)
        counts: dict[str, int] = {}
        for update in buffer.retrieve_updates():
            name = update.metric.name
            if name.startswith("sagakit_"):
                counts[name] = counts.get(name, 0) + int(update.value)
        assert counts.get("sagakit_sagas_started") == 1
        assert counts.get("sagakit_sagas_compensated") == 1


class TestParkTimeout:
    async def test_days_of_waiting_pass_at_once_on_the_time_skipping_server(
        self, temporal_time_skipping_env: WorkflowEnvironment
    ) -> None:
        """A three-day `park_timeout` runs out (a durable timer), and the saga fails as before."""
        env = temporal_time_skipping_env
        client = Client(**{**env.client.config(), "data_converter": pydantic_data_converter})
        order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True, park_timeout=3 * 86400)
        async with saga_worker(client, workflows=[OperatedOrder], activities=ACTIVITIES) as w:
            started = await env.get_current_time()
            handle = await start(client, w.task_queue, order)
            report = report_from_failure(await failure(handle))
            skipped = await env.get_current_time() - started
        assert report is not None
        assert report.status is SagaStatus.COMPENSATION_FAILED
        assert skipped >= timedelta(days=3)
        timers = [
            e for e in await events(handle) if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        ]
        assert len(timers) == 1  # one wait, not a polling loop
