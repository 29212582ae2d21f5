"""The adapter's pure parts, without a server: the header codec, refusals, failure reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, ChildWorkflowError, RetryState

from sagakit import (
    DoOutcome,
    ErrorInfo,
    Phase,
    SagaReport,
    SagaStateError,
    SagaStatus,
    StepContext,
    StepDefinitionError,
    StepOptions,
    StepReport,
    StepStatus,
    UndoReport,
    UndoStatus,
)
from sagakit.temporal import (
    SAGA_FAILED_TYPE,
    ActivityRef,
    ChildWorkflowRef,
    TemporalExecutor,
    report_from_failure,
)
from sagakit.temporal._executor import _TemporalBackend
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

    @pytest.mark.parametrize("ref", [ActivityRef, ChildWorkflowRef])
    @pytest.mark.parametrize("name", ["", "  ", "\t\n"])
    def test_empty_or_blank_name_is_refused(self, ref: type, name: str) -> None:
        """A ref needs the name it is registered under: empty or blank is refused at once."""
        with pytest.raises(StepDefinitionError, match="registered under"):
            ref(name)

    def test_a_name_that_is_not_a_string_is_refused(self) -> None:
        """A ref of a function, not of its name, says so (still a TypeError, as before)."""
        with pytest.raises(TypeError, match="registered under"):
            ActivityRef(len)  # type: ignore[arg-type]

    def test_calling_a_ref_directly_explains_itself(self) -> None:
        """A ref is not callable outside a saga step."""
        with pytest.raises(SagaStateError, match=r"saga\.step"):
            ActivityRef("book_car")()


class TestBackendCheck:
    """`_TemporalBackend.check`, which needs no workflow: the refusals before anything runs."""

    @staticmethod
    def check(fn: object, phase: Phase) -> None:
        backend = object.__new__(_TemporalBackend)  # __init__ reads workflow.info()
        backend.check(fn, phase, StepOptions(start_to_close_timeout=timedelta(seconds=1)))

    @pytest.mark.parametrize("phase", [Phase.DO, Phase.UNDO])
    @pytest.mark.parametrize(("name", "kind"), [("", "empty"), (" ", "blank"), ("\t\n", "blank")])
    def test_empty_or_blank_activity_name_is_refused(
        self, phase: Phase, name: str, kind: str
    ) -> None:
        """A name that cannot be an activity type is refused, naming the half and the fix."""
        with pytest.raises(StepDefinitionError) as ei:
            self.check(name, phase)
        message = str(ei.value)
        assert message.startswith(f"the {phase.value} {name!r} is ")
        assert f"{kind} activity name" in message
        assert "registered under" in message
        assert ("None" in message) is (phase is Phase.UNDO)  # an undo may be None instead

    def test_a_name_is_accepted(self) -> None:
        """A real name passes: whether it is registered is the worker's to say."""
        self.check("book_car", Phase.DO)
        self.check("cancel_car", Phase.UNDO)


class TestOutsideAWorkflow:
    async def test_run_outside_a_workflow_is_refused(self) -> None:
        """TemporalExecutor.run outside a workflow names the in-memory executor instead."""

        async def saga_fn(saga: object) -> None:
            return None

        with pytest.raises(SagaStateError, match="InMemoryExecutor"):
            await TemporalExecutor().run(saga_fn)


REPORT = SagaReport(
    saga_id=BASE,
    status=SagaStatus.COMPENSATED,
    started_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    error=ErrorInfo(type="Boom", message="no"),
    steps=[
        StepReport(
            seq=1,
            name="a",
            status=StepStatus.SUCCEEDED,
            undo=UndoReport(name="undo_a", status=UndoStatus.COMPENSATED, order=2),
        ),
        StepReport(
            seq=2,
            name="b",
            status=StepStatus.FAILED,
            error=ErrorInfo(type="Boom", message="no"),
            undo=UndoReport(name="b", status=UndoStatus.COMPENSATED, order=1),
        ),
    ],
)


def saga_failed(*details: object) -> ApplicationError:
    return ApplicationError("saga failed", *details, type=SAGA_FAILED_TYPE, non_retryable=True)


class TestReportFromFailure:
    def test_reads_through_the_cause_chain(self) -> None:
        """From a client's WorkflowFailureError or a parent's ChildWorkflowError to the report."""
        inner = saga_failed(REPORT.to_compact(saga_id=False))
        child = ChildWorkflowError(
            "child failed",
            namespace="default",
            workflow_id="wf-1",
            run_id="run-1",
            workflow_type="Child",
            initiated_event_id=1,
            started_event_id=2,
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        )
        child.__cause__ = inner
        for err in (inner, WorkflowFailureError(cause=inner), WorkflowFailureError(cause=child)):
            assert report_from_failure(err, saga_id=BASE) == REPORT

    def test_no_saga_failed_or_no_details_is_none(self) -> None:
        """Another failure, or a SagaFailed without details (report_in_failure=False): None."""
        other = ApplicationError("x", REPORT.to_compact(), type="Other")
        assert report_from_failure(WorkflowFailureError(cause=other)) is None
        assert report_from_failure(saga_failed()) is None
        assert report_from_failure(ValueError("x")) is None

    def test_full_report_details_still_read(self) -> None:
        """Details holding the full JSON report (as earlier builds wrote) validate as before."""
        err = saga_failed(REPORT.model_dump(mode="json", exclude_none=True))
        assert report_from_failure(err) == REPORT

    def test_unreadable_details_raise(self) -> None:
        """Details of an unknown compact version raise ValueError rather than pass silently."""
        with pytest.raises(ValueError, match="version"):
            report_from_failure(saga_failed({"v": 99}))


class TestExports:
    def test_all_is_sorted_and_documented(self) -> None:
        """__all__ is sorted (constants, classes, functions); classes and functions have docs."""
        import sagakit.temporal

        def kind(name: str) -> tuple[int, str]:
            return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

        names = sagakit.temporal.__all__
        assert names == sorted(names, key=kind)
        assert "report_from_failure" in names
        for name in names:
            obj = getattr(sagakit.temporal, name)
            if not isinstance(obj, str):  # constants are documented where they are defined
                assert (obj.__doc__ or "").strip(), name
