"""The adapter's pure parts, without a server: the header codec, refusals, failure reading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError, RetryState

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
from sagakit._context import _activity_id
from sagakit._report import OmittedSteps
from sagakit.temporal import (
    SAGA_FAILED_TYPE,
    ActivityRef,
    ChildWorkflowRef,
    TemporalExecutor,
    report_from_failure,
)
from sagakit.temporal._backend import TemporalBackend as _TemporalBackend
from sagakit.temporal._failure import decode, encode
from sagakit.temporal._header import decode_step, encode_step, step_from_id

BASE = "wf-1/run-1"


class TestStepIds:
    """Activity ids keep the format replay checks; an old run's activity reads its step off one."""

    @pytest.mark.parametrize("index", [1, 2, 12])
    @pytest.mark.parametrize("phase", [Phase.DO, Phase.UNDO])
    @pytest.mark.parametrize(
        "name", ["a", "book car", "do.b", "x/y", "1.2", "", "ünï", "line\nbreak", "a.undo.b"]
    )
    def test_round_trip(self, index: int, phase: Phase, name: str) -> None:
        """seq, name, phase and saga (the run's n-th) come back from the id."""
        saga_id = BASE if index == 1 else f"{BASE}/{index}"
        outcome = DoOutcome.PENDING if phase is Phase.DO else DoOutcome.SUCCEEDED
        ctx = StepContext(saga_id, 7, name, phase, outcome)
        assert step_from_id(_activity_id(ctx, index), BASE) == ctx

    def test_ids_are_what_sagakit_always_wrote(self) -> None:
        """Replay compares activity ids with the history: their format must never change."""
        assert _activity_id(StepContext(BASE, 3, "reserve", Phase.DO)) == "3.reserve"
        undo = StepContext(BASE, 3, "reserve", Phase.UNDO, DoOutcome.FAILED)
        assert _activity_id(undo) == "3.reserve.undo"
        assert _activity_id(StepContext(f"{BASE}/2", 1, "do_a", Phase.DO), 2) == "2/1.do_a"

    @pytest.mark.parametrize("activity_id", ["1", "12", "abc", "0.a", "1/2.a", "a.1", "/1.a"])
    def test_other_ids_name_no_step(self, activity_id: str) -> None:
        """The default ids of temporalio (1, 2, ...) and ids sagakit never makes are no step."""
        assert step_from_id(activity_id, BASE) is None


class TestHeader:
    @pytest.mark.parametrize(
        "saga_id", [BASE, f"{BASE}/2", "parent-wf/parent-run", "parent-wf/parent-run/3"]
    )
    def test_round_trip(self, saga_id: str) -> None:
        """A step context survives encoding relative to the scheduling run."""
        ctx = StepContext(saga_id, 7, "book car", Phase.UNDO, DoOutcome.UNKNOWN)
        assert decode_step(encode_step(ctx, BASE), BASE) == ctx

    @pytest.mark.parametrize(
        "ctx",
        [
            StepContext(BASE, 3, "c", Phase.UNDO, DoOutcome.FAILED),
            StepContext(BASE, 2, "x.undo", Phase.DO),
            # The hook runs as seq 0.
            StepContext(BASE, 0, "on_compensation_failed", Phase.UNDO, DoOutcome.SUCCEEDED),
        ],
    )
    def test_tells_what_an_id_could_not(self, ctx: StepContext) -> None:
        """An undo's outcome, a do named like an undo, the hook: all come back whole."""
        assert decode_step(encode_step(ctx, BASE), BASE) == ctx

    @pytest.mark.parametrize("name", ["", "ünï", 'say "hi"', "back\\slash", "line\nbreak", "\x00"])
    def test_any_name_round_trips(self, name: str) -> None:
        """The header is JSON: quotes, escapes and non-ASCII names come back as they were."""
        ctx = StepContext(f"{BASE}/3", 2, name, Phase.DO)
        assert decode_step(encode_step(ctx, BASE), BASE) == ctx

    def test_first_saga_of_the_run_sends_no_saga_id(self) -> None:
        """The common case carries only seq, name, phase and outcome: history bytes matter."""
        ctx = StepContext(BASE, 1, "a", Phase.DO)
        assert encode_step(ctx, BASE).data == b'[1,"a","d","p"]'

    @pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'[1,"a","x","p"]', b"\xff"])
    def test_foreign_payloads_are_ignored(self, data: bytes) -> None:
        """A header sagakit did not write decodes to None instead of failing the activity."""
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
        backend.sub = None  # not a child workflow run as a sub-saga
        options = StepOptions(start_to_close_timeout=timedelta(seconds=1))
        if phase is Phase.DO:
            backend.check(fn, None, options)
        else:
            backend.check("book_car", fn, options)

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
            undo=UndoReport(name="undo_a", status=UndoStatus.COMPENSATED, order=2, after=2),
        ),
        StepReport(
            seq=2,
            name="b",
            status=StepStatus.FAILED,
            error=ErrorInfo(type="Boom", message="no"),
            undo=UndoReport(name="b", status=UndoStatus.COMPENSATED, order=1, after=2),
        ),
    ],
)


def saga_failed(*details: object) -> ApplicationError:
    return ApplicationError("saga failed", *details, type=SAGA_FAILED_TYPE, non_retryable=True)


class TestReportFromFailure:
    def test_reads_through_the_cause_chain(self) -> None:
        """From a client's WorkflowFailureError or a parent's ChildWorkflowError to the report."""
        inner = saga_failed(encode(REPORT))
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
        # Every step and undo, as the saga reported them (this report has no step times).
        expected = REPORT.model_copy(update={"omitted": OmittedSteps()})
        for err in (inner, WorkflowFailureError(cause=inner), WorkflowFailureError(cause=child)):
            assert report_from_failure(err, saga_id=BASE) == expected

    def test_the_failed_steps_error_comes_from_the_cause(self) -> None:
        """Left out of the details (the cause holds it), it is read back off the cause."""
        data = encode(REPORT, cause_tells=True)
        assert "Boom" not in str(data)
        err = saga_failed(data)
        step = ActivityError(
            "Activity task failed",
            scheduled_event_id=5,
            started_event_id=6,
            identity="worker",
            activity_type="b",
            activity_id="2.b",
            retry_state=RetryState.NON_RETRYABLE_FAILURE,
        )
        step.__cause__ = ApplicationError("no", type="Boom")
        err.__cause__ = step
        expected = REPORT.model_copy(update={"omitted": OmittedSteps()})
        assert report_from_failure(WorkflowFailureError(cause=err), saga_id=BASE) == expected

    def test_a_long_message_from_the_cause_is_cut_as_in_the_details(self) -> None:
        data = encode(REPORT, cause_tells=True)
        back = decode(data, error=ErrorInfo(type="Boom", message="x" * 500))
        assert back.error is not None
        assert len(back.error.message) == 200
        assert back.error.message.endswith("...")
        assert back.step("b").error == back.error

    def test_no_saga_failed_or_no_details_is_none(self) -> None:
        """Another failure, or a SagaFailed without details (report_in_failure=False): None."""
        other = ApplicationError("x", encode(REPORT), type="Other")
        assert report_from_failure(WorkflowFailureError(cause=other)) is None
        assert report_from_failure(saga_failed()) is None
        assert report_from_failure(ValueError("x")) is None

    def test_unreadable_details_raise(self) -> None:
        """Details of an unknown version raise ValueError rather than pass silently."""
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
