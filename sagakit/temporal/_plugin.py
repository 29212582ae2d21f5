"""`SagakitPlugin`: the worker side of sagakit on Temporal.

It does two things a worker needs for sagas:

* installs an interceptor that carries the running step (`current_step()`,
  `idempotency_key()`) across the worker boundary in the `sagakit` header:
  written when a workflow schedules an activity, local activity or child
  workflow inside a step, read back when the activity or child workflow runs;
* passes `sagakit` through the workflow sandbox, so the workflow code, the
  interceptor and the executor share one `sagakit._context._current` (a
  sandbox re-import would make a second, empty one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from sagakit._context import _current, _get
from sagakit.temporal._header import STEP_HEADER, decode_step, encode_step, run_saga_base

__all__ = ["SagakitInterceptor", "SagakitPlugin"]


def _with_step(headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
    ctx = _get()
    if ctx is None:
        return headers
    info = workflow.info()
    return {**headers, STEP_HEADER: encode_step(ctx, run_saga_base(info.workflow_id, info.run_id))}


class _ActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        payload = input.headers.get(STEP_HEADER)
        ctx = None
        if payload is not None:
            info = activity.info()
            base = (
                run_saga_base(info.workflow_id, info.workflow_run_id)
                if info.workflow_id and info.workflow_run_id
                else ""  # not scheduled by a workflow: only an absolute saga id decodes
            )
            ctx = decode_step(payload, base)
        if ctx is None:
            return await self.next.execute_activity(input)
        # Set in this activity's own task; sync activities on a thread pool get a
        # copy of this context from temporalio, so they see it too.
        token = _current.set(ctx)
        try:
            return await self.next.execute_activity(input)
        finally:
            _current.reset(token)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    # These run synchronously in the task that schedules the activity or child,
    # which is the task the core set `_current` in.
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_step(input.headers)
        return self.next.start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_step(input.headers)
        return self.next.start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = _with_step(input.headers)
        return await self.next.start_child_workflow(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        payload = input.headers.get(STEP_HEADER)
        parent = workflow.info().parent
        # The parent scheduled this child, so ids relative to a run are the parent's.
        base = run_saga_base(parent.workflow_id, parent.run_id) if parent else ""
        ctx = decode_step(payload, base) if payload is not None else None
        if ctx is not None:
            # A child workflow run as a step: its code (and the activities it
            # schedules outside a saga of its own) sees the parent's step.
            _current.set(ctx)
        return await self.next.execute_workflow(input)


class SagakitInterceptor(Interceptor):
    """Carries the current step to activities and child workflows in a header.

    `SagakitPlugin` installs it; add it yourself only to a worker or replayer
    configured without plugins.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap an activity so it sees the step that scheduled it."""
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        """Wrap workflows so they send the step out and read it in."""
        return _WorkflowInbound


def _passthrough(runner: WorkflowRunner | None) -> WorkflowRunner:
    if runner is None:
        # temporalio always configures a runner; None would mean a caller bypassed it.
        return SandboxedWorkflowRunner(
            restrictions=SandboxedWorkflowRunner().restrictions.with_passthrough_modules("sagakit")
        )
    if isinstance(runner, SandboxedWorkflowRunner):
        return dataclasses.replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules("sagakit")
        )
    return runner


class SagakitPlugin(SimplePlugin):
    """The worker (and replayer) plugin every worker that runs sagakit code needs.

    Install it on workers that run saga workflows and on workers that run their
    activities: `Worker(client, ..., plugins=[SagakitPlugin()])`, or on the
    client to reach every worker made from it.

    Example:
        ```python
        worker = Worker(
            client,
            task_queue="trips",
            workflows=[BookTrip],
            activities=[book_car, cancel_car],
            plugins=[SagakitPlugin()],
        )
        ```

    Args:
        data_converter: A data converter for the client and replayer, for
            example `temporalio.contrib.pydantic.pydantic_data_converter` to
            pass pydantic models as step args and results; `None` keeps the
            client's.
    """

    def __init__(self, *, data_converter: DataConverter | None = None) -> None:
        super().__init__(
            "sagakit.SagakitPlugin",
            data_converter=data_converter,
            interceptors=[SagakitInterceptor()],
            workflow_runner=_passthrough,
        )
