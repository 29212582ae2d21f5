"""The deadline: `SagaOptions(deadline=...)`, one timer on the backend's clock.

A task beside the saga function waits (`Backend.wait`, the seam's one timer)
until the deadline or until the saga settles. If the deadline comes first
while the function still runs, it cancels the function's task; `run_saga`
tells that cancel apart (`by_deadline`) and unwinds the saga with
`SagaDeadlineExceeded` as its cause. Once a pivot succeeded the deadline no
longer applies, and a pivot in flight is not cancelled: it decides.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sagakit._exceptions import SagaDeadlineExceeded
from sagakit._record import Run, State
from sagakit._report import StepStatus, to_datetime

__all__ = ["by_deadline", "deadline_exceeded", "watch_deadline"]


async def watch_deadline(run: Run, task: asyncio.Task[Any]) -> None:
    """Cancel `task` (the saga function's) if the deadline passes while it runs.

    One timer: the wait ends at the deadline, or earlier when the function
    settles (returns or raises). A pivot still running then is waited for
    with no timer.
    """
    assert run.deadline is not None
    assert run.settled is not None
    assert run.pivot_ended is not None
    left = run.deadline - run.backend.time()
    if left > 0:
        await run.backend.wait(run.settled, left)
    # A backend may report the timeout though the saga settled in the same turn
    # (temporalio fires due timers before it checks conditions): look, don't trust.
    pivot = run.pivot
    if run.state is State.OPEN and pivot is not None and pivot.status is StepStatus.RUNNING:
        await run.backend.wait(run.pivot_ended, None)  # a pivot in flight decides
    if run.state is not State.OPEN or run.committed:
        return
    run.deadline_passed = True
    task.cancel()


def by_deadline(run: Run) -> bool:
    """Whether the deadline cancelled the saga function's task; its cancel is taken back.

    Called once, when the function raised. The cancel is taken back whatever
    the function raised (a step may have turned it into an error of its own);
    the deadline is the saga's cause unless a cancel from outside is pending too.
    """
    if not run.deadline_passed:
        return False
    task = asyncio.current_task()
    return task is None or task.uncancel() <= run.cancels_before


def deadline_exceeded(run: Run) -> SagaDeadlineExceeded:
    """The error a saga whose deadline passed fails with."""
    assert run.deadline is not None
    due = to_datetime(run.deadline)
    took = run.options.deadline
    return SagaDeadlineExceeded(
        f"the saga's deadline of {took} passed at {due:%Y-%m-%d %H:%M:%S} UTC: its steps in "
        f"flight were cancelled and it was unwound"
    )
