"""The adapter's pure parts, without a server: the header codec and refusals."""

from __future__ import annotations

import pytest

from sagakit import DoOutcome, Phase, SagaStateError, StepContext
from sagakit.temporal import ActivityRef, ChildWorkflowRef, TemporalExecutor
from sagakit.temporal._header import decode_step, encode_step

BASE = "wf-1/run-1"


class TestHeader:
    @pytest.mark.parametrize(
        "saga_id", [BASE, f"{BASE}/2", "parent-wf/parent-run", "parent-wf/parent-run/3"]
    )
    def test_round_trip(self, saga_id: str) -> None:
        """A step context survives encoding relative to the scheduling run."""
        ctx = StepContext(saga_id, 7, "book car", Phase.UNDO, DoOutcome.UNKNOWN)
        assert decode_step(encode_step(ctx, BASE), BASE) == ctx

    def test_first_saga_of_the_run_sends_no_saga_id(self) -> None:
        """The common case carries only seq, name, phase and outcome: history bytes matter."""
        ctx = StepContext(BASE, 1, "a", Phase.DO)
        assert encode_step(ctx, BASE).data == b'[1,"a","d","p"]'

    @pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'[1,"a","x","p"]', b"\xff"])
    def test_foreign_payloads_are_ignored(self, data: bytes) -> None:
        """A header sagakit did not write decodes to None instead of failing the activity."""
        from temporalio.api.common.v1 import Payload

        assert decode_step(Payload(data=data), BASE) is None


class TestRefs:
    def test_refs_name_their_step(self) -> None:
        """A ref's __name__ is the registered name, so the step is named after it."""
        assert ActivityRef("book_car").__name__ == "book_car"
        assert ChildWorkflowRef("Child").__name__ == "Child"

    def test_calling_a_ref_directly_explains_itself(self) -> None:
        """A ref is not callable outside a saga step."""
        with pytest.raises(SagaStateError, match=r"saga\.step"):
            ActivityRef("book_car")()


class TestOutsideAWorkflow:
    async def test_run_outside_a_workflow_is_refused(self) -> None:
        """TemporalExecutor.run outside a workflow names the in-memory executor instead."""

        async def saga_fn(saga: object) -> None:
            return None

        with pytest.raises(SagaStateError, match="InMemoryExecutor"):
            await TemporalExecutor().run(saga_fn)
