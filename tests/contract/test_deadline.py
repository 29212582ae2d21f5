"""API.md §12: a deadline that compensates, on every backend.

`SagaOptions(deadline=...)` counts from the saga's start on the backend's
clock (virtual in memory, moved here by `run.pass_time`; the workflow's timer
on Temporal). When it passes while the saga function runs, the steps in
flight are cancelled and awaited, the saga unwinds, and it fails with
`SagaDeadlineExceeded` as the cause.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from sagakit import DoOutcome, Saga, SagaStatus, StepStatus
from sagakit.temporal import SagakitPlugin

from ._runner import Backend, options
from ._shared import (
    ACTIVITIES,
    DO,
    UNDO,
    Plan,
    SagaCall,
    attempts,
    journal,
    ran,
    register,
    steps,
    until,
)
from ._workflow import ContractSaga

DEADLINE = timedelta(seconds=2)


async def a_pivot_b_retriable_c(saga: Saga, plan: Plan) -> list[str]:
    a = await saga.step(DO["a"], UNDO["a"], plan)
    b = await saga.step(DO["b"], None, plan, kind="pivot")
    c = await saga.step(DO["c"], None, plan, kind="retriable")
    return [a, b, c]


class TestWhenTheDeadlinePasses:
    async def test_the_step_in_flight_is_cancelled_and_every_undo_runs(
        self, backend: Backend
    ) -> None:
        """Step b hangs past the deadline: it is cancelled and awaited, then b and a undone."""
        plan = Plan(hang=["b"], undo_delay=0.2)
        async with backend.start(steps, plan, options=options(deadline=DEADLINE)) as run:
            assert await until(lambda: "do:b" in ran(plan), seconds=10)
            await run.pass_time(DEADLINE.total_seconds() + 0.5)
            outcome = await run.outcome()
        assert outcome.error == "SagaFailed"
        assert outcome.cause is not None
        assert outcome.cause.type == "SagaDeadlineExceeded"
        events = [f"{e.event}:{e.phase}:{e.name}" for e in journal(plan)]
        assert events == [
            "ran:do:a",
            "ran:do:b",
            "cancelled:do:b",
            "ran:undo:b",
            "ended:undo:b",  # not cut short by the deadline
            "ran:undo:a",
            "ended:undo:a",
        ]
        [undo_b] = attempts(plan, "undo", "b")
        assert undo_b.step.do_outcome is DoOutcome.UNKNOWN
        report = outcome.report
        assert report.status is SagaStatus.COMPENSATED
        assert report.deadline_passed
        assert report.deadline == report.started_at + DEADLINE
        assert not report.cancelled
        assert report.step("do_b").status is StepStatus.CANCELLED
        assert report.error is not None
        assert report.error.type == "SagaDeadlineExceeded"
        assert "deadline passed" in report.timeline(color=False).splitlines()[0]

    async def test_a_saga_that_ends_in_time_is_untouched(self, backend: Backend) -> None:
        """Well before its deadline the saga succeeds as it would without one."""
        plan = Plan()
        outcome = await backend.run(steps, plan, options=options(deadline=timedelta(hours=1)))
        assert outcome.error is None
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert not outcome.report.deadline_passed
        assert outcome.report.deadline == outcome.report.started_at + timedelta(hours=1)


class TestAPivot:
    async def test_after_it_succeeded_the_deadline_no_longer_applies(
        self, backend: Backend
    ) -> None:
        """The retriable step after the pivot runs past the deadline and the saga succeeds."""
        plan = Plan(flaky={"c": 15})  # 15 retries, 100-200 ms apart: about 3 s
        deadline = timedelta(seconds=1)
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options(deadline=deadline))
        assert outcome.error is None
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert len(attempts(plan, "do", "c")) == 16
        assert not outcome.report.deadline_passed

    async def test_one_in_flight_is_not_cancelled_and_decides(self, backend: Backend) -> None:
        """The pivot still retrying when the deadline passes runs on; it succeeds: committed."""
        plan = Plan(flaky={"b": 15})
        deadline = timedelta(seconds=1)
        outcome = await backend.run(a_pivot_b_retriable_c, plan, options=options(deadline=deadline))
        assert outcome.error is None
        assert outcome.report.status is SagaStatus.SUCCEEDED
        assert ran(plan)[-1] == "do:c"
        assert not outcome.report.deadline_passed


@pytest.mark.temporal
class TestOnTemporalTheWorkflowsTimeouts:
    """A deadline the workflow's own timeout would beat is refused before any step."""

    @pytest.mark.parametrize(
        ("timeouts", "deadline", "refused"),
        [
            ({"run_timeout": timedelta(seconds=30)}, timedelta(seconds=30), "run timeout"),
            ({"execution_timeout": timedelta(seconds=20)}, timedelta(minutes=1), "execution"),
            ({"run_timeout": timedelta(minutes=5)}, timedelta(seconds=10), None),
        ],
        ids=["at the run timeout", "past the execution timeout", "below: accepted"],
    )
    async def test_at_or_past_either_is_refused(
        self,
        temporal_env: WorkflowEnvironment,
        timeouts: dict[str, timedelta],
        deadline: timedelta,
        refused: str | None,
    ) -> None:
        """Refused: `OptionsError` naming the timeout, nothing ran; below both: it runs."""
        client = temporal_env.client
        plan = Plan()
        task_queue = f"deadline-{uuid.uuid4()}"
        call = SagaCall(
            saga=register(steps), options=options(deadline=deadline).model_dump_json(), plan=plan
        )
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[ContractSaga],
            activities=ACTIVITIES,
            plugins=[SagakitPlugin()],
        ):
            run = client.execute_workflow(
                ContractSaga.run,
                call,
                id=f"deadline-{uuid.uuid4()}",
                task_queue=task_queue,
                **timeouts,
            )
            if refused is None:
                assert await run == ["did a", "did b", "did c"]
                return
            with pytest.raises(WorkflowFailureError) as ei:
                await run
        cause = ei.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "OptionsError"
        assert refused in cause.message
        assert "deadline" in cause.message
        assert ran(plan) == []
