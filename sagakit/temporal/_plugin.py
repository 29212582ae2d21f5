"""`SagakitPlugin`: the worker side of sagakit on Temporal.

It does two things a worker needs for sagas:

* installs an interceptor that carries the running step (`current_step()`,
  `idempotency_key()`) across the worker boundary in the `sagakit` header:
  written when a workflow schedules an activity, local activity or child
  workflow inside a step, read back when the activity or child workflow runs;
* passes `sagakit` through the workflow sandbox, so the workflow code, the
  interceptor and the executor share one `sagakit._context._current` (a
  sandbox re-import would make a second, empty one).

On request (`encode_failure_attributes=True`) it also makes the client's data
converter encode failure messages and stack traces, so that a payload codec
covers them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
)
from temporalio.exceptions import ApplicationError
from temporalio.plugin import SimplePlugin
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkerConfig,
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


_PROBE = "sagakit: failure attribute probe"


def _encodes_failure_attributes(converter: DataConverter) -> bool:
    """Whether `converter` moves failure messages and stack traces into encoded attributes.

    Checked by converting a probe error, so it holds for any failure converter,
    not only temporalio's own.
    """
    failure = Failure()
    converter.failure_converter.to_failure(
        ApplicationError(_PROBE), converter.payload_converter, failure
    )
    return failure.HasField("encoded_attributes") and _PROBE not in failure.message


def _with_encoded_failure_attributes(converter: DataConverter) -> DataConverter:
    """`converter`, changed if needed to encode failure messages and stack traces.

    Its payload converter, codec and everything else are kept; only the failure
    converter becomes `DefaultFailureConverterWithEncodedAttributes`.

    Raises:
        ValueError: `converter` has a failure converter of its own that does not
            encode them; sagakit does not replace it.
    """
    if _encodes_failure_attributes(converter):
        return converter
    if converter.failure_converter_class is not DefaultFailureConverter:
        raise ValueError(
            "encode_failure_attributes=True, but the data converter's failure converter "
            f"{converter.failure_converter_class.__qualname__} does not encode failure "
            "attributes, and sagakit does not replace a failure converter of your own: "
            "make it encode them (a DefaultFailureConverter subclass passes "
            "encode_common_attributes=True to its __init__)"
        )
    return dataclasses.replace(
        converter, failure_converter_class=DefaultFailureConverterWithEncodedAttributes
    )


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

        With an encrypting codec, on the client, so that its workers encode
        failures too:

        ```python
        converter = dataclasses.replace(pydantic_data_converter, payload_codec=MyCodec())
        client = await Client.connect(
            "localhost:7233",
            plugins=[SagakitPlugin(data_converter=converter, encode_failure_attributes=True)],
        )
        ```

    Args:
        data_converter: A data converter for the client and replayer, for
            example `temporalio.contrib.pydantic.pydantic_data_converter` to
            pass pydantic models as step args and results; `None` keeps the
            client's.
        encode_failure_attributes: Make the client's (and replayer's) data
            converter, `data_converter` if given, encode failure messages and
            stack traces (temporalio's
            `DefaultFailureConverterWithEncodedAttributes`), so that its
            payload codec encrypts them: a failed saga's message repeats its
            step's error message. A worker uses its client's data converter,
            so put the plugin on the client; on a worker whose client does not
            encode them it raises `ValueError`. Without a payload codec this
            hides nothing (the attributes are then plain JSON payloads).

    Raises:
        ValueError: `encode_failure_attributes=True` with a data converter
            whose own failure converter does not encode them (when the plugin
            is made, or when it configures a client or replayer with one), or
            on a worker whose client's converter does not encode them.
    """

    def __init__(
        self,
        *,
        data_converter: DataConverter | None = None,
        encode_failure_attributes: bool = False,
    ) -> None:
        self._encode_failure_attributes = encode_failure_attributes
        converter: DataConverter | Callable[[DataConverter | None], DataConverter] | None
        if not encode_failure_attributes:
            converter = data_converter
        elif data_converter is not None:
            # Checked now, so a custom failure converter is refused where it is passed.
            converter = _with_encoded_failure_attributes(data_converter)
        else:
            converter = _encode_existing
        super().__init__(
            "sagakit.SagakitPlugin",
            data_converter=converter,
            interceptors=[SagakitInterceptor()],
            workflow_runner=_passthrough,
        )

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """See base class; also refuses a worker that would not encode failures as asked."""
        client = config.get("client")
        if (
            self._encode_failure_attributes
            and client is not None
            and not _encodes_failure_attributes(client.data_converter)
        ):
            raise ValueError(
                "SagakitPlugin(encode_failure_attributes=True) is on a worker whose client "
                "does not encode failure attributes; a worker uses its client's data "
                "converter, so put the plugin on the client instead: "
                "Client.connect(..., plugins=[SagakitPlugin(encode_failure_attributes=True)])"
            )
        return super().configure_worker(config)


def _encode_existing(existing: DataConverter | None) -> DataConverter:
    return _with_encoded_failure_attributes(existing or DataConverter.default)
