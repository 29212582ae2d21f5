"""How an undo plan travels on Temporal, without a server: its payloads and its options.

`saga.undo_plan()` keeps each undo's args as payloads, compactly
(`sagakit.temporal._pack`), and the plan is a pydantic model that
`pydantic_data_converter` carries through `continue_as_new`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from sagakit import DoOutcome, PlannedUndo, RetryPolicy, StepKind, StepOptions, UndoPlan
from sagakit.temporal._pack import RAW_KEY, pack_payload, unpack_payload


@dataclass
class Trip:
    city: str
    nights: int


CONVERTERS = [DataConverter.default.payload_converter, pydantic_data_converter.payload_converter]


class TestPayloads:
    @pytest.mark.parametrize("converter", CONVERTERS, ids=["default", "pydantic"])
    @pytest.mark.parametrize(
        "value",
        [None, 0, -7, 2**70, 1.5, "x", "", [], {}, [1, "a", None], {"k": [1.25]}, True],
    )
    def test_a_value_comes_back_as_the_converter_decodes_it(
        self, converter: Any, value: Any
    ) -> None:
        """Packed and unpacked, a payload decodes to the value the converter encoded."""
        [payload] = converter.to_payloads([value])
        [back] = converter.from_payloads([unpack_payload(pack_payload(payload))])
        assert back == value
        assert type(back) is type(value)

    def test_a_dataclass_decodes_by_the_undos_type_hint(self) -> None:
        """A dataclass is kept as its JSON; the undo's hint makes it a dataclass again."""
        converter = DataConverter.default.payload_converter
        [payload] = converter.to_payloads([Trip("Rome", 3)])
        packed = pack_payload(payload)
        assert packed == {"city": "Rome", "nights": 3}
        [back] = converter.from_payloads([unpack_payload(packed)], [Trip])
        assert back == Trip("Rome", 3)

    def test_a_json_payload_is_its_value_and_any_other_is_kept_whole(self) -> None:
        """Bytes (binary/plain) and a JSON dict that reads like a kept payload stay whole."""
        converter = DataConverter.default.payload_converter
        [raw] = converter.to_payloads([b"\x00\xffbytes"])
        kept = pack_payload(raw)
        assert set(kept) == {RAW_KEY}
        assert unpack_payload(kept) == raw
        [tricky] = converter.to_payloads([{RAW_KEY: [{}, ""]}])
        assert set(pack_payload(tricky)) == {RAW_KEY}
        assert converter.from_payloads([unpack_payload(pack_payload(tricky))]) == [
            {RAW_KEY: [{}, ""]}
        ]
        nan = Payload(metadata={"encoding": b"json/plain"}, data=b"NaN")
        assert unpack_payload(pack_payload(nan)) == nan  # JSON has no NaN: kept whole

    @pytest.mark.parametrize(
        "bad",
        [{RAW_KEY: "x"}, {RAW_KEY: [{}, "not base64!"]}, {RAW_KEY: [{"encoding": "@@"}, ""]}],
    )
    def test_a_malformed_kept_payload_is_refused(self, bad: Any) -> None:
        with pytest.raises(ValueError, match=r"holds \[metadata, data\]|base64|Incorrect padding"):
            unpack_payload(bad)


class TestThePlanTravels:
    def test_every_option_round_trips_through_pydantic_data_converter(self) -> None:
        """timedelta, RetryPolicy (with error types), kinds and flags: the plan comes back equal."""
        policy = RetryPolicy(
            initial_interval=timedelta(milliseconds=250),
            backoff_coefficient=1.5,
            maximum_interval=timedelta(seconds=3),
            maximum_attempts=4,
            non_retryable_error_types=("Refused", "Gone"),
        )
        options = StepOptions(
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(minutes=5, microseconds=1),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=policy,
            undo_retry_policy=RetryPolicy(maximum_attempts=2),
            task_queue="refunds",
            kind=StepKind.COMPENSATABLE,
            pass_result=True,
            name="refund",
            local=True,
            summary="refund one item",
        )
        plan = UndoPlan(
            runs=["wf/run-1", "wf/run-2"],
            options=[StepOptions(), options],
            undos=[
                PlannedUndo(seq=1, name="a", undo="undo_a", args=["x", 1]),
                PlannedUndo(
                    run=1,
                    seq=7,
                    name="refund",
                    undo="reverse_refund",
                    args=[{"city": "Rome", "nights": 3}, {RAW_KEY: [{"encoding": "YQ=="}, ""]}],
                    options=1,
                    outcome=DoOutcome.UNKNOWN,
                    result={"id": 9},
                    sub="payments/cards",
                ),
            ],
            deadline=datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC),
        )
        converter = pydantic_data_converter.payload_converter
        [back] = converter.from_payloads(converter.to_payloads([plan]), [UndoPlan])
        assert back == plan
        assert back.options[1].retry_policy == policy
        assert back.key(back.undos[1]) == "wf/run-2#7"
