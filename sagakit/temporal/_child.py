"""Child workflows as sub-sagas (API.md §10.5): `await saga.sub(Hotels.run, trip)` on Temporal.

The parent (`run_child`) starts the child with the memo `sagakit_sub`, the
sub-saga's name. That mark makes the child's `TemporalExecutor`

* refuse, before the do runs, a step whose undo could not travel (anything
  but an activity: `TemporalBackend.check`), and
* hand its undo plan back with its result (`as_sub_saga`): taken in the saga
  function, once it returned, so a plan that cannot travel fails the child's
  saga, which then undoes its own steps.

The plugin's workflow interceptor (`enveloped`) puts that plan in the metadata
of the child's result payload (`sagakit-undo-plan`), so the result reads as it
would unmarked (in the UI, too). The parent decodes the result by the run
method's return type and joins the plan to its stack as carried steps of the
sub-saga (`sagakit._record.carry`): each undo keeps the idempotency key its do saw in the child,
and runs as an activity of the parent, LIFO among the others, if the parent
unwinds later.

A child whose saga failed has undone its own steps: the parent's `saga.sub`
raises `SagaFailed` with the child's report and the child's original error
as `__cause__`. A cancelled parent cancels the child (`WAIT_CANCELLATION_COMPLETED`)
and waits until it has compensated itself and ended, before it unwinds.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Final

import temporalio.common
import temporalio.exceptions
from pydantic import ValidationError
from temporalio import workflow
from temporalio.api.common.v1 import Payload

from sagakit._backend import StepCall
from sagakit._checks import is_async_callable
from sagakit._context import Phase, StepContext
from sagakit._exceptions import (
    OptionsError,
    SagaDefinitionError,
    SagaFailed,
    StepDefinitionError,
)
from sagakit._options import StepOptions
from sagakit._plan import UndoPlan
from sagakit._record import OUTCOME, Record, Run, carry
from sagakit._report import SagaReport, SagaStatus, to_datetime
from sagakit._saga import Saga
from sagakit._sub import sub_path
from sagakit._tasks import ended
from sagakit.temporal._backend import TemporalBackend, _settle, _stop, encode_args
from sagakit.temporal._failure import SAGA_FAILED_TYPE, report_from_failure
from sagakit.temporal._private import is_eviction, workflow_type

__all__ = [
    "PLAN_METADATA",
    "SUB_MEMO",
    "as_sub_saga",
    "enveloped",
    "run_child",
]

SUB_MEMO: Final = "sagakit_sub"
"""Memo key of a child workflow run as a sub-saga; its value is the sub-saga's name."""

PLAN_METADATA: Final = "sagakit-undo-plan"
"""Metadata key of a sub-saga child's result payload: its undo plan, as JSON."""

# A failed child saga's error, by its type, that is a mistake in the code rather than
# a failure to fall back from: raised as such in the parent too, as an inline sub-saga does.
_DEFINITION_ERRORS: Final[dict[str, type[SagaDefinitionError]]] = {
    "SagaDefinitionError": SagaDefinitionError,
    "StepDefinitionError": StepDefinitionError,
    "PayloadTooLargeError": StepDefinitionError,
    "OptionsError": OptionsError,
}


class _SubRun:
    """A child run as a sub-saga: the plans its sagas hand back, in the order they ended."""

    __slots__ = ("path", "plans", "sagas")

    def __init__(self, path: str) -> None:
        self.path = path
        self.sagas = 0
        """How many sagas the child started (one that failed, unwound, hands back no plan)."""
        self.plans: list[tuple[UndoPlan, str]] = []
        """The plan of each saga that succeeded, and its JSON."""


# Set by the interceptor in the workflow's main task; the executor's task is it, or a
# copy of its context: both see the same `_SubRun`.
_sub_run: ContextVar[_SubRun | None] = ContextVar("sagakit_sub_run", default=None)


def _marked() -> str | None:
    """The sub-saga name this workflow run was started under, or `None` (a dict lookup)."""
    path = workflow.memo_value(SUB_MEMO, None)
    return path if isinstance(path, str) and path else None


# -- the child ---------------------------------------------------------------------------


def enveloped(run: Coroutine[Any, Any, Any]) -> Coroutine[Any, Any, Any]:
    """The workflow's run coroutine, its result enveloped if it runs as a sub-saga.

    Called by the plugin's workflow interceptor; a workflow not started by
    `saga.sub` gets `run` itself back.
    """
    path = _marked()
    if path is None:
        return run
    sub = _SubRun(path)
    _sub_run.set(sub)
    return _hand_back(run, sub)


async def _hand_back(run: Coroutine[Any, Any, Any], sub: _SubRun) -> Any:
    result = await run
    if not sub.sagas:
        return result  # it ran no saga: the parent refuses that, by the missing plan
    converter = workflow.payload_converter()
    payload = (
        result.payload
        if isinstance(result, temporalio.common.RawValue)
        else converter.to_payload(result)
    )
    out = Payload()
    out.CopyFrom(payload)
    if len(sub.plans) == 1:
        packed = sub.plans[0][1]
    else:  # a child that ran several sagas (or one that failed, and was caught)
        packed = _merge([plan for plan, _ in sub.plans]).model_dump_json(exclude_defaults=True)
    out.metadata[PLAN_METADATA] = packed.encode()
    return temporalio.common.RawValue(out)


def _merge(plans: list[UndoPlan]) -> UndoPlan:
    """One plan of several sagas' (a child that ran more than one), in the order they ran."""
    runs: list[str] = []
    options: list[Any] = []
    undos = []
    for plan in plans:
        r, o = len(runs), len(options)
        runs += plan.runs
        options += plan.options
        undos += [
            u.model_copy(update={"run": u.run + r, "options": u.options + o}) for u in plan.undos
        ]
    return UndoPlan(runs=runs, options=options, undos=undos)


def as_sub_saga(
    backend: TemporalBackend,
    saga_fn: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[Any, ...],
) -> Callable[..., Coroutine[Any, Any, Any]]:
    """`saga_fn`, or in a child run as a sub-saga, `saga_fn` that hands its plan back.

    Marks `backend` as serving a sub-saga (`TemporalBackend.sub`), so that it
    refuses undos that cannot travel.

    Raises:
        StepDefinitionError: the workflow runs as a sub-saga on a worker without
            `SagakitPlugin`, whose interceptor sends the plan back.
    """
    sub = _sub_run.get()  # set by the interceptor when the memo marks the run
    if sub is None:
        path = _marked()
        if path is None:
            return saga_fn
        raise StepDefinitionError(
            f"this workflow runs as sub-saga {path!r} of its parent, but its worker has no "
            f"SagakitPlugin, whose interceptor hands the sub-saga's undo plan back: add "
            f"plugins=[SagakitPlugin()] to the worker (or to its client)"
        )
    backend.sub = sub.path
    sub.sagas += 1
    if not is_async_callable(saga_fn) or not _binds(saga_fn, args):
        return saga_fn  # run_saga refuses it as it is, naming why

    async def sub_saga(saga: Saga, *args: Any) -> Any:
        result = await saga_fn(saga, *args)
        # Taken and encoded in the saga function: a plan that cannot travel (an undo
        # that is not an activity, a plan past the payload limit) fails the saga, which
        # then undoes its own steps.
        plan = saga.undo_plan()
        sub.plans.append((plan, plan.model_dump_json(exclude_defaults=True)))
        return result

    return sub_saga


def _binds(fn: Callable[..., Any], args: tuple[Any, ...]) -> bool:
    try:
        inspect.signature(fn).bind(None, *args)
    except TypeError:
        return False
    except ValueError:  # no signature to read: call it and see
        pass
    return True


# -- the parent ----------------------------------------------------------------------------


async def run_child(
    backend: TemporalBackend,
    saga: Saga,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    label: str,
) -> Any:
    """Run `fn`, a child workflow's run method, as sub-saga `label` of `saga`.

    Its plan joins `saga`'s run when it succeeds; its result, decoded by the
    run method's return type, is returned.

    Raises:
        SagaFailed: the child's saga failed and undid its own steps; `.report`
            is the child's, `__cause__` the child's original error.
        StepDefinitionError: the child's saga refused a step (an undo that
            cannot travel), or the child ran no saga with `TemporalExecutor`.
        temporalio.exceptions.ChildWorkflowError: the child failed otherwise
            (timed out, terminated): whether it undid its steps is unknown.
        asyncio.CancelledError: the saga was cancelled; the child was too, and
            has ended.
    """
    run = saga._run
    named = workflow_type(fn)
    assert named is not None  # sub_apart checked it
    wf_type, result_type = named
    if label == getattr(fn, "__name__", None):
        label = wf_type  # not named: "Hotels" tells more than its run method's "run"
    path = sub_path(saga, label)
    raw_args = encode_args(args, f"sub-saga {path!r}", backend._payload_limit)
    index = "" if backend._index == 1 else f"{backend._index}/"
    child_id = f"{backend._workflow_id}.{index}sub.{path}"
    backend.show(SagaStatus.RUNNING, f"sub-saga {path} (child workflow {child_id})")
    # Started in a task of its own so a cancel during the start stays ours (as a child
    # workflow step is); by name, so the result comes back raw, envelope and all.
    start = asyncio.ensure_future(
        workflow.start_child_workflow(
            wf_type,
            args=raw_args,
            id=child_id,
            result_type=temporalio.common.RawValue,
            memo={SUB_MEMO: path},
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            static_summary=f"sub-saga {path}",
        )
    )
    child = _Child(run, path, child_id, result_type, backend)
    try:
        handle: asyncio.Future[Any] = await _settle(start)
    except asyncio.CancelledError:
        if start.done() and not start.cancelled() and start.exception() is None:
            await child.stop(start.result())  # it started before the cancel took
        raise
    try:
        await ended(handle)
    except asyncio.CancelledError:
        await child.stop(handle)
        raise
    if handle.cancelled():  # defensive: temporalio fails a cancelled child's handle instead
        raise asyncio.CancelledError()
    error = handle.exception()
    if error is not None:
        raise child.failed(error)  # its cause set: the child's original error
    return child.join(handle.result())


class _Child:
    """One child workflow run as a sub-saga, seen from its parent's saga."""

    __slots__ = ("backend", "child_id", "path", "result_type", "run")

    def __init__(
        self, run: Run, path: str, child_id: str, result_type: Any, backend: TemporalBackend
    ) -> None:
        self.run = run
        self.path = path
        self.child_id = child_id
        self.result_type = result_type
        self.backend = backend

    async def stop(self, handle: asyncio.Future[Any]) -> None:
        """Cancel the child, and wait until it has ended: compensated, or done after all.

        A child that succeeded before the cancel took hands back its plan: its steps
        are the saga's to undo now.
        """
        error = await _stop(handle)
        if is_eviction(error):
            raise error from None  # type: ignore[misc]
        if error is None and not handle.cancelled():
            self.join(handle.result())

    def join(self, raw: temporalio.common.RawValue) -> Any:
        """Join the child's plan to the run; its result, decoded."""
        payload = raw.payload
        if PLAN_METADATA not in payload.metadata:
            raise StepDefinitionError(
                f"sub-saga {self.path!r}: child workflow {self.child_id} ended without an "
                f"undo plan: it ran no saga with TemporalExecutor, so nothing it did can be "
                f"undone. Give saga.sub a workflow whose run method runs its saga with "
                f"TemporalExecutor (and SagakitPlugin on its worker)"
            )
        try:
            plan = UndoPlan.model_validate_json(payload.metadata[PLAN_METADATA])
        except ValidationError as e:
            raise StepDefinitionError(
                f"sub-saga {self.path!r}: child workflow {self.child_id} handed back an undo "
                f"plan this sagakit cannot read ({e.error_count()} error(s), first: "
                f"{e.errors()[0]['msg']}): run the same sagakit on both workers"
            ) from None
        carry(self.run, plan, self.backend.unpack_undo, self.path)
        inner = Payload()
        inner.CopyFrom(payload)
        del inner.metadata[PLAN_METADATA]
        return workflow.payload_converter().from_payload(inner, self.result_type)

    def failed(self, error: BaseException) -> BaseException:
        """What `saga.sub` raises for the child's failure `error`."""
        failure = _saga_failure(error)
        if failure is None:
            return error  # not a saga's failure: whether it undid its steps is unknown
        cause = failure.__cause__
        kind = cause.type if isinstance(cause, temporalio.exceptions.ApplicationError) else None
        mistake = _DEFINITION_ERRORS.get(kind or "")
        run_id = getattr(error, "run_id", None)
        try:
            report = report_from_failure(
                error, saga_id=f"{self.child_id}/{run_id}" if run_id else self.child_id
            )
        except ValueError:  # a report this sagakit cannot read: the child's steps go unnamed
            report = None
        report = self._named(report)
        self._keep(report)
        if mistake is not None and cause is not None:
            # A mistake in the code (an undo that cannot travel): not a failure to fall
            # back from, so not a SagaFailed; the saga unwinds, as for an inline one.
            refused = mistake(f"sub-saga {self.path!r} (child workflow {self.child_id}): {cause}")
            refused.__cause__ = error
            return refused
        message = f"sub-saga {self.path!r} of saga {self.run.saga_id} (child workflow "
        message += f"{self.child_id}): {failure.message}"
        failed = SagaFailed(message, report, None)
        failed.__cause__ = cause
        failed._sub_of = self.run  # uncaught, the saga fails with its cause
        return failed

    def _keep(self, report: SagaReport) -> None:
        """Show the failed child's steps in the run's report, as an inline sub-saga's stay.

        Undone by the child, they are not pending: no unwind of the run touches them.
        Each carries the key its do saw in the child.
        """
        run = self.run
        for s in report.steps:
            seq = len(run.records) + 1
            key = f"{report.saga_id}#{s.seq}"
            context = StepContext(run.saga_id, seq, s.name, Phase.DO, OUTCOME[s.status], key)
            undo = None if s.undo is None else s.undo.name
            do: Any = s.name  # by name: it ran in the child, and runs nowhere here
            call = StepCall(do, (), StepOptions(kind=s.kind), None, context)
            call.attempts = s.attempts
            record = Record(call, undo, None, None, s.sub)
            record.status, record.error = s.status, s.error
            if s.undo is not None:
                record.undo_status, record.undo_error = s.undo.status, s.undo.error
                record.resolutions = tuple(s.undo.resolutions)
            run.records.append(record)

    def _named(self, report: SagaReport | None) -> SagaReport:
        """The child's report (empty if it kept none), its steps named by the sub-saga."""
        if report is None:
            at = to_datetime(self.backend.time())
            assert at is not None
            return SagaReport(
                saga_id=self.child_id, status=SagaStatus.COMPENSATED, started_at=at, ended_at=at
            )
        steps = [
            s.model_copy(update={"sub": self.path if s.sub is None else f"{self.path}/{s.sub}"})
            for s in report.steps
        ]
        return report.model_copy(update={"steps": steps})


def _saga_failure(error: BaseException) -> temporalio.exceptions.ApplicationError | None:
    """The `SagaFailed` failure in `error`'s cause chain, if a saga's failure ended the child."""
    current: BaseException | None = error
    for _ in range(8):  # ChildWorkflowError -> ApplicationError: it is near the top
        if current is None:
            return None
        if (
            isinstance(current, temporalio.exceptions.ApplicationError)
            and current.type == SAGA_FAILED_TYPE
        ):
            return current
        current = current.__cause__
    return None
