"""Payloads: pydantic models as step args and results; nothing readable with a codec."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pytest
from conftest import new_id, saga_worker, story
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from workflows.activities import ALL, JOURNAL, Job, events
from workflows.models import ACTIVITIES, LEDGER, Booking, Trip, TripWorkflow
from workflows.sagas import StepsWorkflow
from workflows.secrets import CALLS, DECLINES, SECRET_ACTIVITIES, Card, PayWorkflow

from sagakit import SagaReport, SagaStatus, StepStatus
from sagakit.temporal import REPORT_QUERY, SagakitPlugin, report_from_failure

pytestmark = pytest.mark.temporal


async def plugin_client(
    env: WorkflowEnvironment, converter: DataConverter | None, *, encode: bool = False
) -> Client:
    """A client whose SagakitPlugin sets the data converter (it reaches the workers too)."""
    config = env.client.config()
    config["plugins"] = [SagakitPlugin(data_converter=converter, encode_failure_attributes=encode)]
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
            handle = await client.start_workflow(
                TripWorkflow.run, trip, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        err = ei.value.cause
        assert isinstance(err, ApplicationError)
        # The full report (the query's, through the same converter): both steps.
        assert [(s.name, s.status) for s in full.steps] == [
            ("book_car", StepStatus.SUCCEEDED),
            ("book_hotel", StepStatus.FAILED),
        ]
        assert full.compensation_order == ["book_car"]
        # The failure's report: both steps, as the query's, through the same converter.
        report = report_from_failure(ei.value)
        assert report is not None
        assert story(report) == story(full)
        assert report.error is not None
        assert report.error.type == "ValueError"
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
            full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
            # Read the history as stored, without the codec.
            raw = await temporal_env.client.get_workflow_handle(handle.id).fetch_history()
        stored = b"".join(e.SerializeToString() for e in raw.events)
        assert secret.encode() not in stored
        assert job.run.encode() not in stored
        # The saga still ran and unwound, and the worker (with the codec) saw the values.
        assert events(job.run) == ["do:a", "do:b", "do:c", "undo:c", "undo:b", "undo:a"]
        assert all(e.key for e in JOURNAL[job.run])
        # The report travels encrypted as the failure's details...
        assert report_encodings(raw) == {b"binary/encrypted"}
        # ...and the client with the codec reads it back: all three steps undone.
        assert isinstance(ei.value.cause, ApplicationError)
        assert ei.value.cause.type == "SagaFailed"
        report = report_from_failure(ei.value)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        assert report.error is not None
        assert report.error.type == "Boom"
        assert report.compensation_order == full.compensation_order == ["do_c", "do_b", "do_a"]
        assert story(report) == story(full)


def stored(history: WorkflowHistory) -> bytes:
    """The whole history as stored: every event's protobuf bytes, and its JSON."""
    raw = b"".join(e.SerializeToString() for e in history.events)
    return raw + history.to_json().encode()


def workflow_failure_message(history: WorkflowHistory) -> str:
    """The top-level failure message of the closed run, as stored."""
    (event,) = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    ]
    return event.workflow_execution_failed_event_attributes.failure.message


def report_encodings(history: WorkflowHistory) -> set[bytes]:
    """The encodings of the closed run's failure details (the saga's report), as stored."""
    (event,) = [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    ]
    failure = event.workflow_execution_failed_event_attributes.failure
    payloads = failure.application_failure_info.details.payloads
    assert payloads, "the failure carries no report"
    return {p.metadata["encoding"] for p in payloads}


class TestEncodedFailureAttributes:
    """`SagakitPlugin(encode_failure_attributes=True)`: error messages are encrypted too."""

    async def run_pay(
        self, env: WorkflowEnvironment, *, encode: bool
    ) -> tuple[Card, str, WorkflowFailureError, WorkflowHistory, DataConverter, SagaReport]:
        """Run `PayWorkflow` (charge declined) with pydantic + an encrypting codec.

        Returns the card, the decline, the failure, the history as stored, the
        client's converter and the saga's full report (the query's).
        """
        pytest.importorskip("cryptography")
        # The user's converter (pydantic, with a codec); the plugin adds the encoding.
        converter = dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec())
        client = await plugin_client(env, converter, encode=encode)
        card = Card(run=new_id("run"), number=f"4111-{new_id('card')}")
        decline = f"declined-{new_id('reason')}"
        DECLINES[card.run] = decline
        async with saga_worker(
            client, workflows=[PayWorkflow], activities=SECRET_ACTIVITIES, plugins=[]
        ) as w:
            handle = await client.start_workflow(
                PayWorkflow.run, card, id=new_id(), task_queue=w.task_queue
            )
            with pytest.raises(WorkflowFailureError) as ei:
                await handle.result()
            full = SagaReport.model_validate(await handle.query(REPORT_QUERY))
        # Read the history as stored, without the codec.
        history = await env.client.get_workflow_handle(handle.id).fetch_history()
        assert CALLS[card.run] == ["hold", "charge", "charge", "refund", "release"]
        return card, decline, ei.value, history, client.data_converter, full

    async def test_no_arg_value_or_error_message_in_the_history(
        self, temporal_env: WorkflowEnvironment
    ) -> None:
        """With the option, neither the secret arg nor the secret error message is stored."""
        card, decline, failure, history, converter, full = await self.run_pay(
            temporal_env, encode=True
        )
        # The plugin kept the user's converter and codec and added the encoding.
        assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
        assert isinstance(converter.payload_codec, EncryptionCodec)
        raw = stored(history)
        assert card.number.encode() not in raw
        assert decline.encode() not in raw
        assert b"bad card" not in raw
        assert card.run.encode() not in raw
        assert workflow_failure_message(history) == "Encoded failure"
        # The client (with the codec and the option) reads everything back.
        err = failure.cause
        assert isinstance(err, ApplicationError)
        assert err.type == "SagaFailed"
        assert "'charge'" in err.message
        assert decline in err.message
        activity_error = err.__cause__
        assert isinstance(activity_error, ActivityError)
        step_error = activity_error.cause
        assert isinstance(step_error, ApplicationError)
        assert (step_error.type, step_error.message) == ("ValueError", f"bad card {decline}")
        report = report_from_failure(failure)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        assert report.error is not None
        assert report.error.type == "ValueError"
        assert report.error.message == f"bad card {decline}"
        # The failure's report has both steps, as the query's.
        assert story(report) == story(full)
        assert report.compensation_order == ["charge", "hold"]
        assert [(s.name, s.status) for s in full.steps] == [
            ("hold", StepStatus.SUCCEEDED),
            ("charge", StepStatus.FAILED),
        ]
        assert full.compensation_order == ["charge", "hold"]
        # A replayer with the same plugin and codec replays the encoded history.
        replayer = Replayer(
            workflows=[PayWorkflow],
            plugins=[
                SagakitPlugin(
                    data_converter=dataclasses.replace(
                        pydantic_data_converter, payload_codec=converter.payload_codec
                    ),
                    encode_failure_attributes=True,
                )
            ],
        )
        await replayer.replay_workflow(history)

    async def test_without_it_the_error_message_is_plaintext(
        self, temporal_env: WorkflowEnvironment
    ) -> None:
        """Control: with the codec alone, args stay encrypted but the message is stored as is."""
        card, decline, failure, history, _, _ = await self.run_pay(temporal_env, encode=False)
        raw = stored(history)
        assert card.number.encode() not in raw
        assert decline.encode() in raw
        # The saga's own failure message is one of the plaintext copies.
        assert decline in workflow_failure_message(history)
        assert "charge" in workflow_failure_message(history)
        # The report is a payload: encrypted either way.
        assert report_encodings(history) == {b"binary/encrypted"}
        report = report_from_failure(failure)
        assert report is not None
        assert report.error is not None
        assert report.error.message == f"bad card {decline}"

    async def test_client_converter_is_kept(self, temporal_env: WorkflowEnvironment) -> None:
        """Without `data_converter=`, the client's own converter (and codec) gets the encoding."""
        codec = EncryptionCodec()
        config = temporal_env.client.config()
        config["data_converter"] = dataclasses.replace(DataConverter.default, payload_codec=codec)
        config["plugins"] = [SagakitPlugin(encode_failure_attributes=True)]
        converter = Client(**config).data_converter
        assert converter.payload_codec is codec
        assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes

    async def test_worker_only_is_refused(self, temporal_env: WorkflowEnvironment) -> None:
        """On a worker whose client does not encode, the option could not work: refused."""
        with pytest.raises(ValueError, match="put the plugin on the client"):
            Worker(
                temporal_env.client,
                task_queue=new_id("tq"),
                workflows=[PayWorkflow],
                plugins=[SagakitPlugin(encode_failure_attributes=True)],
            )

    def test_custom_failure_converter_is_refused(self) -> None:
        """A failure converter of the user's own is never replaced."""

        class Mine(DefaultFailureConverter):
            pass

        converter = dataclasses.replace(DataConverter.default, failure_converter_class=Mine)
        with pytest.raises(ValueError, match="Mine does not encode"):
            SagakitPlugin(data_converter=converter, encode_failure_attributes=True)
        # One that already encodes is kept as it is.

        class Encoding(DefaultFailureConverter):
            def __init__(self) -> None:
                super().__init__(encode_common_attributes=True)

        encoding = dataclasses.replace(DataConverter.default, failure_converter_class=Encoding)
        plugin = SagakitPlugin(data_converter=encoding, encode_failure_attributes=True)
        assert plugin.data_converter is encoding
