"""Payloads: pydantic models as step args and results; nothing readable with a codec."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pytest
from conftest import new_id, saga_worker
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from workflows.activities import ALL, JOURNAL, Job, events
from workflows.models import ACTIVITIES, LEDGER, Booking, Trip, TripWorkflow
from workflows.sagas import StepsWorkflow

from sagakit import SagaStatus, StepStatus
from sagakit.temporal import SagakitPlugin, report_from_failure

pytestmark = pytest.mark.temporal


async def plugin_client(env: WorkflowEnvironment, converter: DataConverter) -> Client:
    """A client whose SagakitPlugin sets the data converter (it reaches the workers too)."""
    config = env.client.config()
    config["plugins"] = [SagakitPlugin(data_converter=converter)]
    return Client(**config)


class TestPydantic:
    async def test_models_round_trip_through_steps(self, temporal_env: WorkflowEnvironment) -> None:
        """Pydantic args and results (dates, decimals) survive activities and the saga."""
        client = await plugin_client(temporal_env, pydantic_data_converter)
        trip = Trip(run=new_id("run"), city="Oslo", start=date(2026, 12, 1), budget=Decimal("800"))
        async with saga_worker(
            client, workflows=[TripWorkflow], activities=ACTIVITIES, plugins=[]
        ) as w:
            result = await client.execute_workflow(
                TripWorkflow.run, trip, id=new_id(), task_queue=w.task_queue
            )
        assert result == [
            Booking(ref="car-Oslo", price=Decimal("200"), day=date(2026, 12, 1)),
            Booking(ref="hotel-Oslo", price=Decimal("400"), day=date(2026, 12, 1)),
        ]

    async def test_failed_saga_report_validates(self, temporal_env: WorkflowEnvironment) -> None:
        """With the pydantic converter the SagaFailed details still read back as a SagaReport."""
        client = await plugin_client(temporal_env, pydantic_data_converter)
        trip = Trip(
            run=new_id("run"),
            city="Rome",
            start=date(2026, 12, 1),
            budget=Decimal(1),
            fail_hotel=True,
        )
        async with saga_worker(
            client, workflows=[TripWorkflow], activities=ACTIVITIES, plugins=[]
        ) as w:
            with pytest.raises(WorkflowFailureError) as ei:
                await client.execute_workflow(
                    TripWorkflow.run, trip, id=new_id(), task_queue=w.task_queue
                )
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        report = report_from_failure(ei.value)
        assert report is not None
        assert [(s.name, s.status) for s in report.steps] == [
            ("book_car", StepStatus.SUCCEEDED),
            ("book_hotel", StepStatus.FAILED),
        ]
        assert report.compensation_order == ["book_car"]
        do, undo = LEDGER[trip.run]
        assert do.split(":", 1)[1] == undo.split(":", 1)[1]


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole payload, as in temporalio's encryption sample."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aes = AESGCM(AESGCM.generate_key(bit_length=256))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            data = nonce + self._aes.encrypt(nonce, p.SerializeToString(), None)
            out.append(Payload(metadata={"encoding": b"binary/encrypted"}, data=data))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != b"binary/encrypted":
                out.append(p)
                continue
            plain = self._aes.decrypt(p.data[:12], p.data[12:], None)
            out.append(Payload.FromString(plain))
        return out


class TestEncryptingCodec:
    async def test_no_plaintext_value_reaches_the_history(
        self, temporal_env: WorkflowEnvironment
    ) -> None:
        """With an encrypting codec no arg or result value appears in the stored history."""
        pytest.importorskip("cryptography")
        converter = dataclasses.replace(
            DataConverter.default,
            payload_codec=EncryptionCodec(),
            # Error messages and stack traces are encrypted too.
            failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
        )
        client = await plugin_client(temporal_env, converter)
        secret = f"s3cr3t-{new_id()}"
        job = Job(run=new_id("run"), steps=["a", "b", "c"], fail=["c"], secret=secret)
        async with saga_worker(client, workflows=[StepsWorkflow], activities=ALL, plugins=[]) as w:
            handle = await client.start_workflow(
                StepsWorkflow.run, job, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            # Read the history as stored, without the codec.
            raw = await temporal_env.client.get_workflow_handle(handle.id).fetch_history()
        stored = b"".join(e.SerializeToString() for e in raw.events)
        assert secret.encode() not in stored
        assert job.run.encode() not in stored
        # The saga still ran and unwound, and the worker (with the codec) saw the values.
        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        assert all(e.key for e in JOURNAL[job.run])
        # The report travels encrypted as the failure's details...
        assert b'"st":[' not in stored
        # ...and the client with the codec reads it back.
        assert isinstance(ei.value.cause, ApplicationError)
        assert ei.value.cause.type == "SagaFailed"
        report = report_from_failure(ei.value)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        assert report.error is not None
        assert report.error.type == "Boom"
        assert report.compensation_order == ["do_c", "do_b", "do_a"]
