"""`SagakitPlugin`: the worker side of sagakit on Temporal.

It does two things a worker needs for sagas:

* installs an interceptor that carries the running step (`current_step()`,
  `idempotency_key()`) across the worker boundary, as temporalio's own
  OpenTelemetry interceptor carries its trace context: the `sagakit` header
  goes with every activity and child workflow scheduled while a step is
  current, and the activity or child reads it back (see
  `sagakit.temporal._header`). It also counts every attempt of an undo in the
  activity metric `sagakit_undo_attempts` (a counter, with temporalio's
  activity attributes);
* passes `sagakit` through the workflow sandbox, so the workflow code, the
  interceptor and the executor share one `sagakit._context._current` (a
  sandbox re-import would make a second, empty one).

On request (`encode_failure_attributes=True`) it also makes the client's data
converter encode failure messages and stack traces, so that a payload codec
covers them too.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Callable, Coroutine, Mapping
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

from sagakit._context import Phase, StepContext, _current
from sagakit.temporal._child import enveloped
from sagakit.temporal._header import (
    STEP_HEADER,
    decode_step,
    encode_step,
    run_saga_base,
    step_from_id,
)

__all__ = ["SagakitInterceptor", "SagakitPlugin"]


def _child_step_id(child_id: str, parent_id: str) -> str | None:
    prefix = parent_id + "."
    return child_id[len(prefix) :] if child_id.startswith(prefix) else None


def _activity_step(input: ExecuteActivityInput) -> StepContext | None:
    info = activity.info()
    base = (
        run_saga_base(info.workflow_id, info.workflow_run_id)
        if info.workflow_id and info.workflow_run_id
        else ""  # not scheduled by a workflow: only a header with a whole saga id decodes
    )
    payload = input.headers.get(STEP_HEADER)
    if payload is not None:
        return decode_step(payload, base)
    # No header: scheduled by a workflow started before sagakit sent it always.
    return step_from_id(info.activity_id, base) if base else None


class _InStep:
    """A sync activity run in another process, with the step set around it there.

    The process boundary drops context variables; this travels (pickled, like
    the function it wraps) and sets the step again in the child process.
    """

    __slots__ = ("ctx", "fn")

    def __init__(self, fn: Callable[..., Any], ctx: StepContext) -> None:
        self.fn = fn
        self.ctx = ctx

    def __call__(self, *args: Any) -> Any:
        _current.set(self.ctx)
        return self.fn(*args)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_InStep, (self.fn, self.ctx))


_UNDO_ATTEMPTS = "sagakit_undo_attempts"


class _ActivityInbound(ActivityInboundInterceptor):
    # A plain method that returns the next interceptor's coroutine: no frame of
    # sagakit's sits in the activity's stack trace (which the history keeps).
    def execute_activity(self, input: ExecuteActivityInput) -> Coroutine[Any, Any, Any]:
        ctx = _activity_step(input)
        if ctx is not None:
            # Set in this activity's own task (temporalio runs each in a task of its
            # own, so nothing leaks); a thread-pool activity gets a copy of this
            # context from temporalio, a process-pool one gets it through _InStep.
            _current.set(ctx)
            if input.executor is not None and not isinstance(
                input.executor, concurrent.futures.ThreadPoolExecutor
            ):
                input.fn = _InStep(input.fn, ctx)
            if ctx.phase is Phase.UNDO:
                _count_undo_attempt()
        return self.next.execute_activity(input)


def _count_undo_attempt() -> None:
    """Add 1 to the counter `sagakit_undo_attempts` (with the activity type)."""
    try:
        meter = activity.metric_meter()
    except RuntimeError:  # a process-pool activity: temporalio offers it no meter
        return
    meter.create_counter(
        _UNDO_ATTEMPTS, "Attempts of saga undos (compensations), retries included."
    ).add(1)


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    """Adds the `sagakit` header to what is scheduled while a step is current.

    Its methods run synchronously in the task that schedules the activity or
    child, which is the task the core set `_current` in (or a task copied from it).
    """

    _base: str | None = None

    def _with_step(self, headers: Mapping[str, Payload]) -> Mapping[str, Payload]:
        ctx = _current.get()
        if ctx is None:
            return headers
        base = self._base
        if base is None:  # one instance per workflow run: its saga base never changes
            info = workflow.info()
            base = self._base = run_saga_base(info.workflow_id, info.run_id)
        return {**headers, STEP_HEADER: encode_step(ctx, base)}

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._with_step(input.headers)
        return self.next.start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = self._with_step(input.headers)
        return self.next.start_local_activity(input)

    def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> Coroutine[Any, Any, workflow.ChildWorkflowHandle[Any, Any]]:
        input.headers = self._with_step(input.headers)
        return self.next.start_child_workflow(input)


class _WorkflowInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    # A plain method, as `_ActivityInbound.execute_activity`: no frame of
    # sagakit's in the stack trace of a workflow's failure.
    def execute_workflow(self, input: ExecuteWorkflowInput) -> Coroutine[Any, Any, Any]:
        info = workflow.info()
        parent = info.parent
        ctx = None
        if parent is not None:
            # The parent scheduled this child, so ids relative to a run are the parent's.
            base = run_saga_base(parent.workflow_id, parent.run_id)
            payload = input.headers.get(STEP_HEADER)
            if payload is not None:
                ctx = decode_step(payload, base)
            else:  # started by a parent from before sagakit sent the header always
                step_id = _child_step_id(info.workflow_id, parent.workflow_id)
                ctx = None if step_id is None else step_from_id(step_id, base)
        elif STEP_HEADER in input.headers:
            ctx = decode_step(input.headers[STEP_HEADER], "")
        if ctx is not None:
            # A child workflow run as a step: its code, and the activities and
            # children it schedules outside a saga of its own (which then carry
            # the parent's step, whole saga id and all), see the parent's step.
            # Set in the workflow's main task, which runs the coroutine returned here.
            _current.set(ctx)
        # Run as a sub-saga (`saga.sub`), its result goes back with its undo plan.
        return enveloped(self.next.execute_workflow(input))


class SagakitInterceptor(Interceptor):
    """Carries the current step to activities and child workflows.

    In the `sagakit` header of every activity and child workflow scheduled
    while a step is current; an activity or child without one (scheduled by a
    workflow started before sagakit sent it always) reads its step off its id.
    Counts undo attempts in `sagakit_undo_attempts`.

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
