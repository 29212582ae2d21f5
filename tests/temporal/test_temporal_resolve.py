"""The `sagakit_resolve` update against what operators and their scripts really send.

Whatever the request, the validator decides: a refusal writes nothing to the
history (no WorkflowTaskFailed, no update accepted), and the saga takes the
next good decision at once. A decision that loses a race gets `SagaStateError`,
never a raw RPC error.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from conftest import new_id, saga_worker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from workflows.operating import ACTIVITIES, OperatedOrder, Order

from sagakit import SagaStateError, SagaStatus
from sagakit.temporal import RESOLVE_UPDATE, parked, report_from_failure, resolve

pytestmark = pytest.mark.temporal

# What a refused request may never leave in the history.
_WRITTEN = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
}


@pytest.fixture
def pclient(temporal_env: WorkflowEnvironment) -> Client:
    """The dev server, through a client on the pydantic converter."""
    return Client(**{**temporal_env.client.config(), "data_converter": pydantic_data_converter})


@pytest.fixture
async def queue(pclient: Client) -> AsyncIterator[str]:
    async with saga_worker(pclient, workflows=[OperatedOrder], activities=ACTIVITIES) as w:
        yield w.task_queue


async def parked_order(pclient: Client, queue: str) -> WorkflowHandle[Any, Any]:
    """An order saga whose refund (step 2) is parked, waiting for a decision."""
    order = Order(id=str(uuid.uuid4()), broken=["refund"], park=True)
    handle = await pclient.start_workflow(
        OperatedOrder.run, order, id=new_id("order"), task_queue=queue
    )
    async with asyncio.timeout(20):
        while not await parked(handle):  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)
    return handle


async def events(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [e async for e in handle.fetch_history_events()]


async def compensated(handle: WorkflowHandle[Any, Any]) -> None:
    with pytest.raises(WorkflowFailureError) as ei:
        await asyncio.wait_for(handle.result(), 30)
    report = report_from_failure(ei.value)
    assert report is not None
    assert report.status is SagaStatus.COMPENSATED


class TestWrongTypesWriteNothing:
    @pytest.mark.parametrize(
        ("request_", "says"),
        [
            ({"seq": 2, "action": "skip", "by": 42}, "by must be a string"),
            ({"seq": 2.0, "action": "skip"}, "seq must be a step's number, an int"),
            ({"seq": True, "action": "skip"}, "seq must be a step's number, an int"),
            ({"seq": 2, "action": "skip", "reason": "x" * 1_000_000}, "at most 4096"),
            ({"seq": 2, "action": "skip", "by": "b" * 201}, "at most 200"),
            ({"seq": 2, "action": "skip", "reasons": "typo"}, "unknown keys"),
            ({"seq": 2, "action": ["skip"]}, "unknown action"),
        ],
    )
    async def test_refused_by_the_validator_and_the_next_decision_is_taken_at_once(
        self, pclient: Client, queue: str, request_: dict[str, Any], says: str
    ) -> None:
        """Refused before the history: no failed workflow task, and a good resolve goes through."""
        handle = await parked_order(pclient, queue)
        before = await events(handle)
        with pytest.raises(WorkflowUpdateFailedError) as ei:
            await handle.execute_update(RESOLVE_UPDATE, request_)
        assert says in str(ei.value.cause)
        after = await events(handle)
        assert len(after) == len(before)
        assert not [e for e in after if e.event_type in _WRITTEN]
        started = time.monotonic()
        await resolve(handle, 2, "skip", reason="refunded by hand")
        assert time.monotonic() - started < 5  # not the 20-25 s of a failed workflow task
        await compensated(handle)

    async def test_the_client_helper_raises_saga_state_error(
        self, pclient: Client, queue: str
    ) -> None:
        """`resolve` turns the validator's refusal into `SagaStateError` naming the bound."""
        handle = await parked_order(pclient, queue)
        with pytest.raises(SagaStateError, match=r"reason is 1000000 bytes; at most 4096"):
            await resolve(handle, 2, "skip", reason="x" * 1_000_000)
        with pytest.raises(SagaStateError, match="by must be a string or None, not int 42"):
            await resolve(handle, 2, "skip", by=42)  # type: ignore[arg-type]
        await resolve(handle, 2, "skip")
        await compensated(handle)


class TestConcurrentDecisions:
    async def test_of_five_skips_one_wins_and_the_others_get_saga_state_error(
        self, pclient: Client, queue: str
    ) -> None:
        """The losers of a race are told so with `SagaStateError`, never a raw RPC error."""
        for _ in range(3):  # the race goes differently from run to run
            handle = await parked_order(pclient, queue)
            outcomes = await asyncio.gather(
                *(resolve(handle, 2, "skip", reason=f"operator {i}") for i in range(5)),
                return_exceptions=True,
            )
            assert outcomes.count(None) == 1, outcomes
            losers = [o for o in outcomes if o is not None]
            assert all(isinstance(o, SagaStateError) for o in losers), losers
            await compensated(handle)


_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
"""Any JSON value."""

_WRONG: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.sampled_from([2.0, True, "2", None, [2], {"seq": 2}, 1, 3, -1, 2**70]) | st.floats(),
    "action": st.sampled_from(["redo", "SKIP", "", None, 1, True, ["skip"], {"retry": 1}]),
    "reason": st.integers()
    | st.floats(allow_nan=False)
    | st.lists(st.text(max_size=3))
    | st.just("r" * 5000),
    "by": st.integers()
    | st.booleans()
    | st.dictionaries(st.text(max_size=3), st.integers())
    | st.just("b" * 201),
    "reasons": st.text(max_size=5),  # a key of its own
}
_near = st.sampled_from(sorted(_WRONG)).flatmap(
    lambda field: st.fixed_dictionaries(
        {
            "seq": st.just(2),
            "action": st.sampled_from(["retry", "skip"]),
            "reason": st.none() | st.text(max_size=10),
            "by": st.none() | st.text(max_size=10),
            field: _WRONG[field],
        }
    )
)
"""A good request for the parked step 2 with one field wrong: what a script gets wrong."""


def _good(request: Any) -> bool:
    """Whether `request` is a decision the saga must take (seq 2 is the one parked)."""
    if not isinstance(request, dict) or not {"seq", "action"} <= request.keys():
        return False
    reason, by = request.get("reason"), request.get("by")
    return (
        request.keys() <= {"seq", "action", "reason", "by"}
        and type(request["seq"]) is int
        and request["seq"] == 2
        and request["action"] in ("retry", "skip")
        and (reason is None or (isinstance(reason, str) and len(reason.encode()) <= 4096))
        and (by is None or (isinstance(by, str) and len(by) <= 200))
    )


class TestAnyJsonAtTheUpdate:
    async def test_is_refused_with_a_message_and_writes_nothing(
        self, pclient: Client, queue: str
    ) -> None:
        """Random JSON: each refused with a message, no event written, the saga still resolvable."""
        handle = await parked_order(pclient, queue)
        before = await events(handle)
        loop = asyncio.get_running_loop()
        sent: list[Any] = []

        def send(request: Any) -> str:
            future = asyncio.run_coroutine_threadsafe(
                handle.execute_update(RESOLVE_UPDATE, request), loop
            )
            try:
                future.result(timeout=20)
            except WorkflowUpdateFailedError as e:
                return str(e.cause)
            raise AssertionError(f"accepted: {request!r}")

        # Hypothesis drives its examples from a thread: the test's loop keeps running
        # the worker that answers them.
        @settings(
            max_examples=100,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(st.one_of(_scalar, _json, _near).filter(lambda v: not _good(v)))
        def refused(request: Any) -> None:
            sent.append(request)
            message = send(request)
            assert message.strip(), request
            assert len(message) < 1000, message  # a 5000-byte reason is not echoed back

        await asyncio.to_thread(refused)
        after = await events(handle)
        assert len(sent) >= 100
        assert len(after) == len(before), [e.event_type for e in after[len(before) :]]
        assert not [e for e in after if e.event_type in _WRITTEN]
        await resolve(handle, 2, "skip", reason="after the fuzz")
        await compensated(handle)
