"""The private temporalio names sagakit reads (`sagakit.temporal._private`) still work.

One class per name; each fails here, by name, if a temporalio upgrade renames
or changes what sagakit reads. The eviction test runs a real worker that
evicts a real workflow.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from workflows.sagas import StepsWorkflow

from sagakit.temporal import SagakitPlugin
from sagakit.temporal._private import (
    being_evicted,
    client_identity,
    is_activity,
    is_eviction,
    is_workflow_run_fn,
    workflow_run_fn,
    workflow_type,
)


@activity.defn
async def an_activity() -> None:
    """An activity never scheduled: only its definition is read."""


async def a_coroutine_function() -> None:
    """Neither an activity nor a workflow."""


def a_function() -> None:
    """Neither an activity nor a workflow."""


class NotAWorkflow:
    async def run(self) -> None:
        """Named like a workflow's run method, but no `@workflow.defn`."""


class TestActivityDefinition:
    def test_tells_an_activity_from_other_callables(self) -> None:
        assert is_activity(an_activity)
        assert not is_activity(a_function)
        assert not is_activity(a_coroutine_function)
        assert not is_activity("an_activity")


class TestWorkflowDefinition:
    def test_finds_the_run_method_of_a_workflow_class(self) -> None:
        assert workflow_run_fn(StepsWorkflow) is StepsWorkflow.run
        assert workflow_run_fn(NotAWorkflow) is None

    def test_tells_a_run_method(self) -> None:
        assert is_workflow_run_fn(StepsWorkflow.run)
        assert not is_workflow_run_fn(NotAWorkflow.run)
        assert not is_workflow_run_fn(a_coroutine_function)

    def test_names_a_run_method_and_its_return_type(self) -> None:
        assert workflow_type(StepsWorkflow.run) == ("StepsWorkflow", list[str])
        assert workflow_type(NotAWorkflow.run) is None


# run -> [(being_evicted(), is_eviction(what a new command raised))], per cancel seen.
SEEN: defaultdict[str, list[tuple[bool, bool]]] = defaultdict(list)


@workflow.defn
class Probe:
    """Waits for ever; when its task is cancelled, notes what sagakit reads of the cancel."""

    @workflow.run
    async def run(self, run: str) -> None:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            evicting = being_evicted()
            try:
                # Any command: an evicted workflow refuses it with the eviction error.
                await workflow.sleep(0.1)
                refused = False
            except BaseException as e:  # the eviction error is a BaseException
                refused = is_eviction(e)
            SEEN[run].append((evicting, refused))
            raise


def probe_worker(client: Client, **kwargs: Any) -> Worker:
    return Worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        workflows=[Probe],
        workflow_runner=UnsandboxedWorkflowRunner(),
        plugins=[SagakitPlugin()],
        **kwargs,
    )


async def seen(run: str) -> tuple[bool, bool]:
    async with asyncio.timeout(10):
        # The workflow runs in the worker's workflow thread: no event to wait on.
        while not SEEN[run]:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return SEEN[run][0]


@pytest.mark.temporal
class TestEviction:
    async def test_an_evicted_workflow_knows_it(self, client: Client) -> None:
        """With no workflow cache, every task ends in an eviction that cancels the workflow."""
        run = f"run-{uuid.uuid4()}"
        async with probe_worker(client, max_cached_workflows=0) as worker:
            handle = await client.start_workflow(
                Probe.run, run, id=f"wf-{uuid.uuid4()}", task_queue=worker.task_queue
            )
            assert await seen(run) == (True, True)
            await handle.terminate()

    async def test_a_cancelled_workflow_is_not_evicted(self, client: Client) -> None:
        run = f"run-{uuid.uuid4()}"
        async with probe_worker(client) as worker:
            handle = await client.start_workflow(
                Probe.run, run, id=f"wf-{uuid.uuid4()}", task_queue=worker.task_queue
            )
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        assert await seen(run) == (False, False)

    def test_outside_a_workflow(self) -> None:
        assert not being_evicted()
        assert not is_eviction(asyncio.CancelledError())
        assert not is_eviction(None)


class TestClientIdentity:
    @pytest.mark.temporal
    def test_a_handle_tells_its_clients_identity(self, client: Client) -> None:
        handle = client.get_workflow_handle(f"wf-{uuid.uuid4()}")
        assert client.identity
        assert client_identity(handle) == client.identity
