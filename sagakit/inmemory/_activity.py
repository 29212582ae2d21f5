"""A temporalio activity function run in this process, with a real activity context.

The in-memory backend runs `@activity.defn` steps so, and the DBOS backend does
too (inside its DBOS step): `activity.info()` and `activity.heartbeat()` work as
on a worker, so the same step functions run on every backend.
"""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime
from typing import Any

from sagakit._backend import StepCall
from sagakit._context import _activity_id

__all__ = ["run_activity"]


async def run_activity(
    call: StepCall, attempt: int, now: datetime, workflow_id: str, workflow_type: str
) -> Any:
    """Run `call.fn`, an activity, as attempt `attempt`; its result.

    Args:
        call: The do or undo.
        attempt: Its attempt number, from 1 (`activity.info().attempt`).
        now: The time the attempt is scheduled and starts, on the backend's clock.
        workflow_id: What `activity.info().workflow_id` answers (the saga id).
        workflow_type: What `activity.info().workflow_type` answers.
    """
    # temporalio's own test environment; imported here, where a step is an activity.
    from temporalio.testing import ActivityEnvironment

    env = ActivityEnvironment()
    defn = getattr(call.fn, "__temporal_activity_definition")
    env.info = dataclasses.replace(
        env.info,
        activity_id=_activity_id(call.context),
        activity_type=defn.name or call.fn.__name__,
        attempt=attempt,
        workflow_id=workflow_id,
        workflow_type=workflow_type,
        heartbeat_timeout=call.options.heartbeat_timeout,
        start_to_close_timeout=call.options.start_to_close_timeout,
        schedule_to_close_timeout=call.options.schedule_to_close_timeout,
        scheduled_time=now,
        started_time=now,
        current_attempt_scheduled_time=now,
    )
    env.on_heartbeat = lambda *details: None
    result = env.run(call.fn, *call.args)
    return await result if inspect.isawaitable(result) else result
