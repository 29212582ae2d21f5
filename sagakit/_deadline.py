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


async def watch_deadline(run: Run, task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` (the saga function's) if the deadline passes while it runs."""
    assert run.deadline is not None
    assert task is not None
    while run.state is State.OPEN and not run.committed:
        left = run.deadline - run.backend.time()
        if left > 0 and await run.backend.wait(run.settled, left):
            run.settled.clear()  # the function ended, or the pivot did: look again
            continue
        pivot = run.pivot
        if pivot is not None and pivot.status is StepStatus.RUNNING:
            await run.backend.wait(run.settled, None)  # a pivot in flight decides
            run.settled.clear()
            continue
        run.deadline_passed = True
        task.cancel()
        return


def by_deadline(run: Run, raised: BaseException) -> bool:
    """Whether `raised` is the cancel the deadline sent (then it is taken back)."""
    if not run.deadline_passed or not isinstance(raised, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    # Cancelled from outside too (more cancels pending): that cancel wins.
    return task is None or task.uncancel() == 0


def deadline_exceeded(run: Run) -> SagaDeadlineExceeded:
    """The error a saga whose deadline passed fails with."""
    assert run.deadline is not None
    due = to_datetime(run.deadline)
    took = run.options.deadline
    return SagaDeadlineExceeded(
        f"the saga's deadline of {took} passed at {due:%Y-%m-%d %H:%M:%S} UTC: its steps in "
        f"flight were cancelled and it was unwound"
    )
