"""OpenTelemetry spans per step and per undo, with temporalio's own tracing interceptor.

sagakit adds no tracing of its own: each do and undo is an activity (or child
workflow), so `temporalio.contrib.opentelemetry.TracingInterceptor` on the
client gives a span per do and per undo, under the workflow's span. This is
the recipe docs/operating.md gives, run for real.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import new_id, saga_worker
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from workflows.operating import ACTIVITIES, OperatedOrder, Order

pytestmark = pytest.mark.temporal


async def test_each_do_and_undo_is_a_span(temporal_env: WorkflowEnvironment) -> None:
    """A failed order: one span runs each do (reserve, charge, ship) and each undo."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = Client(
        **{
            **temporal_env.client.config(),
            "data_converter": pydantic_data_converter,
            "interceptors": [TracingInterceptor(provider.get_tracer("sagakit-test"))],
        }
    )
    async with saga_worker(client, workflows=[OperatedOrder], activities=ACTIVITIES) as w:
        with pytest.raises(WorkflowFailureError):
            await client.execute_workflow(
                OperatedOrder.run, Order(id=str(uuid.uuid4())), id=new_id(), task_queue=w.task_queue
            )
    ran = [s.name for s in exporter.get_finished_spans() if s.name.startswith("RunActivity:")]
    assert sorted(ran) == sorted(
        f"RunActivity:{n}" for n in ("reserve", "charge", "ship", "refund", "release")
    )
    runs = [s for s in exporter.get_finished_spans() if s.name.startswith("RunWorkflow:")]
    assert {s.context.trace_id for s in runs} == {
        s.context.trace_id for s in exporter.get_finished_spans()
    }  # one trace: the workflow and every step's span
