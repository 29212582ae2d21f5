"""API.md §7: compensatable, pivot and retriable steps, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sagakit import RetryPolicy, Saga, SagaStatus, StepKind, StepStatus

from ._runner import Backend, Outcome, options
from ._shared import DO, UNDO, Plan, SagaFn, attempts, journal, ran

LIMITED = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    maximum_interval=timedelta(milliseconds=200),
    maximum_attempts=2,
)
"""Two attempts, 100 ms apart: a saga-wide default that limits attempts."""


async def a_pivot_b_retriable_c(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan)
    b = await saga.step(DO["b"], None, plan, kind="pivot")
    c = await saga.step(DO["c"], None, plan, kind="retriable")
    return [a, b, c]


async def pivot_with_an_undo(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan, kind="pivot")


async def two_pivots(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(DO["c"], None, plan, kind="pivot")


async def compensatable_after_the_pivot(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(DO["c"], UNDO["c"], plan)


async def default_kind_after_the_pivot_without_undo(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(DO["c"], None, plan)


async def body_raises_after_the_pivot(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    raise ValueError("the body changed its mind")


async def retriable_with_an_undo(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(DO["c"], UNDO["c"], plan, kind="retriable")


async def retriable_with_a_limiting_policy(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(DO["c"], None, plan, kind="retriable", retry_policy=LIMITED)


async def retriable_with_a_deadline(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], None, plan, kind="pivot")
    await saga.step(
        # Room for a retry even on a busy machine, where the dev server takes ~1 s a retry.
        DO["c"],
        None,
        plan,
        kind="retriable",
        schedule_to_close_timeout=timedelta(seconds=4),
    )


async def b_fails_before_the_pivot_c(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.step(DO["b"], UNDO["b"], plan)
    await saga.step(DO["c"], None, plan, kind="pivot")


async def registered_while_the_pivot_runs(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.gather(
        saga.step(DO["b"], None, plan, kind="pivot"), saga.step(DO["c"], UNDO["c"], plan)
    )


async def pivot_registered_while_another_runs(saga: Saga, plan: Plan) -> None:
    await saga.step(DO["a"], UNDO["a"], plan)
    await saga.gather(
        saga.step(DO["c"], UNDO["c"], plan), saga.step(DO["b"], None, plan, kind="pivot")
    )


def assert_committed_and_nothing_undone(outcome: Outcome, plan: Plan) -> None:
    """The saga failed after its pivot: COMMITTED_FAILED, and not one undo ran."""
    assert outcome.error == "SagaFailed"
    assert outcome.report.status is SagaStatus.COMMITTED_FAILED
    assert not [e for e in journal(plan) if e.phase == "undo"]
    assert outcome.report.compensation_order == []


def assert_refused(outcome: Outcome, error_type: str, *words: str) -> None:
    """The saga failed because a step was refused with `error_type`, naming `words`."""
    assert outcome.error == "SagaFailed"
    assert outcome.cause is not None
    assert outcome.cause.type == error_type
    for word in words:
        assert word in outcome.cause.message


class TestReportShowsKinds:
    async def test_each_step_reports_its_kind(self, backend: Backend) -> None:
        """The report gives every step its kind; a step that names none is compensatable."""
        plan = Plan()
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options())
        assert outcome.result == ["did a", "did b", "did c"]
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert [(s.name, s.kind) for s in outcome.report.steps] == [
            ("do_a", StepKind.COMPENSATABLE),
            ("do_b", StepKind.PIVOT),
            ("do_c", StepKind.RETRIABLE),
        ]
        timeline = outcome.report.timeline(color=False)
        assert "pivot" in timeline
        assert "retriable" in timeline

    def test_step_kind_values_are_the_option_strings(self) -> None:
        """StepKind's values are the strings `kind=` takes."""
        assert [k.value for k in StepKind] == ["compensatable", "pivot", "retriable"]


class TestPivotRules:
    async def test_a_pivot_with_an_undo_is_refused(self, backend: Backend) -> None:
        """A pivot given an undo is refused before its do runs; the steps before it unwind."""
        plan = Plan()
        outcome = await backend.run(pivot_with_an_undo, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "pivot")
        assert ran(plan) == ["do:a", "undo:a"]
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_second_pivot_is_refused(self, backend: Backend) -> None:
        """A second pivot is refused; the first has committed the saga, so nothing is undone."""
        plan = Plan()
        outcome = await backend.run(two_pivots, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "pivot")
        assert ran(plan) == ["do:a", "do:b"]
        assert_committed_and_nothing_undone(outcome, plan)

    @pytest.mark.parametrize(
        "saga_fn",
        [
            pytest.param(compensatable_after_the_pivot, id="with-undo"),
            pytest.param(default_kind_after_the_pivot_without_undo, id="undo-none"),
        ],
    )
    async def test_a_compensatable_step_after_the_pivot_is_refused(
        self, backend: Backend, saga_fn: SagaFn
    ) -> None:
        """After the pivot succeeded every step must be retriable; any other is refused unrun."""
        plan = Plan()
        outcome = await backend.run(saga_fn, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "retriable")
        assert ran(plan) == ["do:a", "do:b"]
        assert_committed_and_nothing_undone(outcome, plan)

    async def test_a_step_registered_while_the_pivot_runs_is_refused(
        self, backend: Backend
    ) -> None:
        """A step registered while the pivot runs is refused; with no pivot done, all unwinds."""
        plan = Plan(hang=["b"])
        outcome = await backend.run(registered_while_the_pivot_runs, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "pivot")
        assert "do:c" not in ran(plan)
        assert outcome.report.step("do_b").status is StepStatus.CANCELLED
        # The pivot was cancelled at once: on Temporal, maybe before its activity started.
        assert [r for r in ran(plan) if r != "do:b"] == ["do:a", "undo:a"]
        assert outcome.report.compensation_order == ["do_a"]
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_pivot_registered_while_another_step_runs_is_refused(
        self, backend: Backend
    ) -> None:
        """The pivot runs alone: registered while another step is in flight, it is refused."""
        plan = Plan(hang=["c"])
        outcome = await backend.run(pivot_registered_while_another_runs, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "pivot")
        assert "do:b" not in ran(plan)
        assert outcome.report.step("do_c").status is StepStatus.CANCELLED
        # c was cancelled at once: on Temporal, maybe before its activity started.
        assert [r for r in ran(plan) if r != "do:c"] == ["do:a", "undo:c", "undo:a"]
        assert outcome.report.compensation_order == ["do_c", "do_a"]
        assert outcome.report.status is SagaStatus.COMPENSATED


class TestCommitted:
    async def test_a_failure_after_the_pivot_runs_no_undo(self, backend: Backend) -> None:
        """A step failing for good after the pivot ends COMMITTED_FAILED, and no undo runs."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "do:c"]
        assert outcome.cause is not None
        assert (outcome.cause.type, outcome.cause.message) == ("Boom", "do c failed")
        assert_committed_and_nothing_undone(outcome, plan)

    async def test_the_body_raising_after_the_pivot_runs_no_undo(self, backend: Backend) -> None:
        """The saga body raising after the pivot ends COMMITTED_FAILED, and no undo runs."""
        plan = Plan()
        outcome = await backend.run(body_raises_after_the_pivot, plan, options=options())
        assert ran(plan) == ["do:a", "do:b"]
        assert outcome.cause is not None
        assert outcome.cause.type == "ValueError"
        assert_committed_and_nothing_undone(outcome, plan)


class TestRetriable:
    async def test_a_retriable_step_retries_past_a_saga_wide_attempt_limit(
        self, backend: Backend
    ) -> None:
        """A retriable step is retried until it succeeds, past the saga's maximum_attempts=2."""
        plan = Plan(flaky={"c": 3})
        outcome = await backend.run(
            a_pivot_b_retriable_c, plan, options=options(retry_policy=LIMITED)
        )
        assert [e.attempt for e in attempts(plan, "do", "c")] == [1, 2, 3, 4]
        assert outcome.error is None
        assert outcome.result == ["did a", "did b", "did c"]
        assert outcome.report.status is SagaStatus.SUCCEEDED

    async def test_a_compensatable_step_keeps_the_saga_wide_attempt_limit(
        self, backend: Backend
    ) -> None:
        """The saga-wide limit still applies to a compensatable step: two attempts, then unwind."""
        plan = Plan(flaky={"a": 3})
        outcome = await backend.run(
            a_pivot_b_retriable_c, plan, options=options(retry_policy=LIMITED)
        )
        assert [e.attempt for e in attempts(plan, "do", "a")] == [1, 2]
        assert outcome.report.status is SagaStatus.COMPENSATED

    async def test_a_retriable_step_with_an_undo_is_refused(self, backend: Backend) -> None:
        """A retriable step given an undo is refused before its do runs."""
        plan = Plan()
        outcome = await backend.run(retriable_with_an_undo, plan, options=options())
        assert_refused(outcome, "StepDefinitionError", "retriable")
        assert ran(plan) == ["do:a", "do:b"]
        assert_committed_and_nothing_undone(outcome, plan)

    async def test_a_retriable_step_whose_policy_limits_attempts_is_refused(
        self, backend: Backend
    ) -> None:
        """A retriable step's own retry policy may not limit attempts: OptionsError, unrun."""
        plan = Plan()
        outcome = await backend.run(retriable_with_a_limiting_policy, plan, options=options())
        assert_refused(outcome, "OptionsError", "maximum_attempts")
        assert ran(plan) == ["do:a", "do:b"]
        assert_committed_and_nothing_undone(outcome, plan)

    async def test_a_non_retryable_error_still_ends_a_retriable_step(
        self, backend: Backend
    ) -> None:
        """An error marked non-retryable ends a retriable step on its first attempt."""
        plan = Plan(fail=["c"])
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options())
        assert [e.attempt for e in attempts(plan, "do", "c")] == [1]
        assert outcome.report.step("do_c").status is StepStatus.FAILED
        assert_committed_and_nothing_undone(outcome, plan)

    async def test_schedule_to_close_timeout_still_ends_a_retriable_step(
        self, backend: Backend
    ) -> None:
        """A retriable step that keeps failing ends when its schedule_to_close_timeout runs out."""
        plan = Plan(flaky={"c": 1000})
        outcome = await backend.run(retriable_with_a_deadline, plan, options=options())
        # Retried (the saga's policy limits no attempts), until the deadline ended it. The
        # error is the deadline's in memory; on Temporal, the last attempt's (Flaky).
        assert len(attempts(plan, "do", "c")) >= 2
        assert outcome.report.step("do_c").status is StepStatus.FAILED
        assert_committed_and_nothing_undone(outcome, plan)


class TestFailureAtOrBeforeThePivot:
    async def test_the_pivot_failing_unwinds_the_steps_before_it(self, backend: Backend) -> None:
        """A pivot that fails commits nothing: the steps before it unwind as usual."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "undo:a"]
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert outcome.report.compensation_order == ["do_a"]
        assert outcome.report.step("do_b").undo is None

    async def test_a_step_before_the_pivot_failing_unwinds_as_usual(self, backend: Backend) -> None:
        """A step failing before the pivot is reached unwinds LIFO, and the pivot never runs."""
        plan = Plan(fail=["b"])
        outcome = await backend.run(b_fails_before_the_pivot_c, plan, options=options())
        assert ran(plan) == ["do:a", "do:b", "undo:b", "undo:a"]
        assert outcome.report.status is SagaStatus.COMPENSATED
        assert [s.name for s in outcome.report.steps] == ["do_a", "do_b"]
