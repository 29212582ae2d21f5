"""The Temporal backend: each `StepCall` as an activity, a child workflow or inline code.

The core (`sagakit._saga`) decides what runs and in which order; this module
only translates a `StepCall` into temporalio: an activity, a local activity, a
child workflow, or an `async def` run in the workflow itself (in a step that
says `inline=True`). It also shows where the saga stands (current details, the
`SagaStatus` search attribute, metrics), which the core leaves to adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import Callable
from enum import Enum
from typing import Any

import temporalio.common
from temporalio import workflow

from sagakit._alert import HOOK_NAME
from sagakit._backend import Backend, StepCall
from sagakit._checks import default_name, is_async_callable
from sagakit._context import Phase, _activity_id
from sagakit._exceptions import (
    OptionsError,
    PayloadTooLargeError,
    SagaDefinitionError,
    StepDefinitionError,
)
from sagakit._options import RetryPolicy, SagaOptions, StepOptions
from sagakit._parking import parking
from sagakit._plan import PlannedUndo, UndoPlan
from sagakit._report import ParkedUndo, SagaStatus, UndoStatus
from sagakit._saga import Saga
from sagakit._tasks import ended
from sagakit.temporal._failure import explain
from sagakit.temporal._header import run_saga_base
from sagakit.temporal._operate import SAGA_STATUS, count_status
from sagakit.temporal._pack import pack_payload, unpack_payload
from sagakit.temporal._private import (
    being_evicted,
    is_activity,
    is_eviction,
    is_workflow_run_fn,
    workflow_run_fn,
)
from sagakit.temporal._refs import ActivityRef, ChildWorkflowRef

__all__ = [
    "Interrupted",
    "TemporalBackend",
    "check_deadline",
    "encode_args",
    "next_index",
    "untravelled",
]


class _Kind(Enum):
    ACTIVITY = "an activity"
    CHILD = "a child workflow"
    INLINE = "inline workflow code"


class _Target:
    """What `fn` turned out to be, and what to hand temporalio for it."""

    __slots__ = ("kind", "ref", "result_type")

    def __init__(self, kind: _Kind, ref: Any, result_type: type | None = None) -> None:
        self.kind = kind
        self.ref = ref
        self.result_type = result_type


def _describe(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _resolve(fn: Any) -> _Target:
    """Classify a do or undo; raise `StepDefinitionError` for what a workflow cannot run."""
    if isinstance(fn, ActivityRef):
        return _Target(_Kind.ACTIVITY, fn.name, fn.result_type)
    if isinstance(fn, ChildWorkflowRef):
        return _Target(_Kind.CHILD, fn.name, fn.result_type)
    if isinstance(fn, str):
        # As in `workflow.execute_activity("name")`: a bare string is an activity name.
        return _Target(_Kind.ACTIVITY, fn)
    if is_activity(fn):
        return _Target(_Kind.ACTIVITY, fn)
    if isinstance(fn, type):
        run_fn = workflow_run_fn(fn)
        if run_fn is None:
            raise StepDefinitionError(
                f"class {_describe(fn)} is not a workflow: decorate it with @workflow.defn "
                f"to run it as a child workflow step, or pass an @activity.defn function"
            )
        return _Target(_Kind.CHILD, run_fn)
    if is_workflow_run_fn(fn):
        return _Target(_Kind.CHILD, fn)
    if getattr(fn, "__name__", None) == "<lambda>":
        raise StepDefinitionError(
            "a lambda cannot be a step on Temporal: a workflow may not do I/O itself; "
            "make it an @activity.defn function registered on the worker (or an "
            "`async def` run inline in the workflow with inline=True)"
        )
    if is_async_callable(fn):
        return _Target(_Kind.INLINE, fn)
    raise StepDefinitionError(
        f"{_describe(fn)} is a plain sync function, which a Temporal workflow cannot "
        f"run: decorate it with @activity.defn and register it on the worker (it then "
        f"runs as an activity), or make it `async def` and pass inline=True to run it "
        f"in the workflow (for workflow code only: waiting for a signal, a nested saga)"
    )


# One of sagakit's two caches (the other: the core's check_step). Classification is
# pure, and every do and undo asks it twice (check, call): 4.6 us uncached for an
# activity, 0.3 us cached (timeit), in each replay too (bench/temporal_history.py's
# replay CPU per activity). Weak keys: a worker does not pin functions it no longer runs.
_targets: weakref.WeakKeyDictionary[Any, _Target] = weakref.WeakKeyDictionary()


def _target(fn: Any) -> _Target:
    try:
        cached = _targets.get(fn)
    except TypeError:  # unhashable or not weak-referenceable: classify every time
        return _resolve(fn)
    if cached is None:
        cached = _resolve(fn)
        with contextlib.suppress(TypeError):
            _targets[fn] = cached
    return cached


def _retry(policy: RetryPolicy | None) -> temporalio.common.RetryPolicy | None:
    if policy is None:
        return None
    return temporalio.common.RetryPolicy(
        initial_interval=policy.initial_interval,
        backoff_coefficient=policy.backoff_coefficient,
        maximum_interval=policy.maximum_interval,
        maximum_attempts=policy.maximum_attempts,
        non_retryable_error_types=list(policy.non_retryable_error_types) or None,
    )


async def _settle(handle: asyncio.Future[Any]) -> Any:
    """Await an activity or child handle; if cancelled, cancel it and wait until it stopped.

    temporalio's own await of a handle swallows the task cancel (it turns into an
    `ActivityError` caused by `CancelledError` later), so the core could not tell
    a cancelled saga from a failed one. Waiting on the handle without awaiting it
    keeps the cancel ours: we request it once, wait for the do to end (the
    cancellation type is WAIT_CANCELLATION_COMPLETED), then re-raise it.
    """
    try:
        await ended(handle)
    except asyncio.CancelledError:
        err = await _stop(handle)
        if is_eviction(err):
            raise err from None  # type: ignore[misc]
        raise
    return handle.result()


async def _stop(handle: asyncio.Future[Any]) -> BaseException | None:
    """Cancel `handle` and wait until it has ended; its error, retrieved (no GC warning).

    A second cancel of the waiting task changes nothing: the do (or child) must
    stop before the core may start its undo.
    """
    handle.cancel()
    while not handle.done():
        with contextlib.suppress(asyncio.CancelledError):
            await ended(handle)
    return None if handle.cancelled() else handle.exception()


def _span(seconds: float) -> str:
    """`seconds` as an operator reads it: 45s, 4m, 2h 5m."""
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 >= 60 else f"{s // 3600}h"


def check_deadline(options: SagaOptions) -> None:
    """Refuse a deadline the workflow's own run or execution timeout would end first.

    When the workflow's timeout fires no workflow code runs, so nothing would
    be compensated: the deadline must fall before both.

    Raises:
        OptionsError: naming the deadline and both timeouts.
    """
    deadline = options.deadline
    if deadline is None:
        return
    info = workflow.info()
    # Both from this run's start event: exact for a first run; after a
    # continue-as-new or a retry the execution began earlier, so less is left
    # of its timeout than this says (docs/temporal.md: keep a margin).
    elapsed = workflow.now() - info.workflow_start_time
    run, execution = info.run_timeout, info.execution_timeout
    left = {
        "run timeout": None if run is None else run - elapsed,
        "execution timeout": None if execution is None else execution - elapsed,
    }
    short = {k: v for k, v in left.items() if v is not None and deadline >= v}
    if short:
        told = "; ".join(f"{k} {v} left" if v is not None else f"no {k}" for k, v in left.items())
        raise OptionsError(
            f"SagaOptions(deadline={deadline}) is at or past the workflow's "
            f"{' and '.join(short)} ({told}): when a workflow timeout fires no workflow "
            f"code runs, so nothing would be compensated; shorten the deadline or give the "
            f"workflow longer run and execution timeouts"
        )


def _parked_detail(p: ParkedUndo) -> str:
    why = [f"{p.attempts} attempts"] if p.attempts else []
    if p.error is not None:
        why.append(p.error.type)
    return p.undo + (f" ({', '.join(why)})" if why else "")


def _parked_list(parked: list[ParkedUndo]) -> str:
    return "parked: " + "; ".join(map(_parked_detail, parked))


class Interrupted(BaseException):
    """A `KeyboardInterrupt` or `SystemExit` from an inline step, on its way to `run`."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


class TemporalBackend(Backend):
    """One saga run inside one workflow run."""

    def __init__(self, index: int, payload_limit: int) -> None:
        info = workflow.info()
        self._index = index
        self._payload_limit = payload_limit
        base = self._base = run_saga_base(info.workflow_id, info.run_id)
        # The n-th saga of a workflow run is told apart by its start order, which
        # replays identically.
        self._saga_id = base if index == 1 else f"{base}/{index}"
        self._workflow_id = info.workflow_id
        # Upserted only when the workflow was started with it: then the namespace has
        # it registered, and every replay makes the same decision.
        self._upsert = info.typed_search_attributes.get(SAGA_STATUS) is not None
        self._status = SagaStatus.RUNNING
        count_status(SagaStatus.RUNNING)
        self.saga: Saga | None = None
        """The saga this backend serves, for what the UI shows of it."""
        self.sub: str | None = None
        """In a child workflow run as a sub-saga (`saga.sub`), its name: undos must travel."""
        self.run_apart: Callable[..., Any] | None = None
        """What runs a child workflow given to `saga.sub` (`sagakit.temporal._child.run_child`,
        set by the executor: that module builds on this one)."""

    def saga_id(self) -> str:
        """`workflow_id/run_id`, plus `/n` for the n-th saga (n >= 2) of the run."""
        return self._saga_id

    def show(self, status: SagaStatus, detail: str) -> None:
        """Show where the saga stands in the UI (current details); count and upsert a new status."""
        run = None if self.saga is None else self.saga._run
        if status is SagaStatus.RUNNING and run is not None and run.deadline is not None:
            detail += f"; deadline in {_span(run.deadline - workflow.time())}"
        workflow.set_current_details(f"saga {self._index}: {detail}" if self._index > 1 else detail)
        if status is self._status:
            return
        self._status = status
        count_status(status)
        if self._upsert:
            workflow.upsert_search_attributes([SAGA_STATUS.value_set(status.value)])

    def _parked(self) -> list[ParkedUndo]:
        """The undos an operator can resolve now (none unless the saga waits for operators)."""
        park = None if self.saga is None else parking(self.saga.policy)
        return [] if park is None else park.parked()

    def show_ended(self, saga: Saga) -> None:
        """Show how the saga ended, naming the undos that failed."""
        status = saga.status
        detail = status.value.replace("_", " ")
        failed = [r.name for r in saga._run.records if r.undo_status is UndoStatus.FAILED]
        self.show(status, f"{detail}: {', '.join(failed)}" if failed else detail)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """A workflow condition: durable, and in history only as one timer, with a timeout."""
        park = None if self.saga is None else parking(self.saga.policy)
        # Two waiters: the park policy (for operators) and the deadline (beside the saga).
        parked = park is not None and park.waiting
        if parked:
            self.show(SagaStatus.PARKED, _parked_list(self._parked()))
        try:
            await workflow.wait_condition(
                event.is_set,
                timeout=seconds,
                timeout_summary="sagakit park_timeout" if parked else "sagakit deadline",
            )
        except TimeoutError:
            return False
        return True

    def time(self) -> float:
        """`workflow.time()`: deterministic, the time of the current workflow task."""
        return workflow.time()

    def check(self, do: Any, undo: Any, options: StepOptions) -> None:
        """Accept activities, child workflows and, said `inline=True`, workflow code.

        An `async def` that is neither an activity nor a workflow runs inside the
        workflow only when its step says `inline=True` (a forgotten
        `@activity.defn` would otherwise run I/O and clocks in the workflow,
        silently); a step said `inline=True` needs its do or its undo to be such
        code. Activities need a timeout.
        """
        kinds = [self._check_one(do, Phase.DO, options)]
        if undo is not None:
            kinds.append(self._check_one(undo, Phase.UNDO, options))
            if self.sub is not None and kinds[1] is not _Kind.ACTIVITY:
                step = options.name or _describe(do)
                raise untravelled(self.sub, step, _describe(undo), kinds[1].value)
        if options.inline and _Kind.INLINE not in kinds:
            told = (
                f"the undo {_describe(undo)} is {kinds[1].value}"
                if undo is not None
                else "it has no undo"
            )
            raise StepDefinitionError(
                f"step {options.name or _describe(do)!r} says inline=True, but its do "
                f"{_describe(do)} is {kinds[0].value} and {told}: nothing would run inline; "
                f"drop inline=True"
            )

    def _check_one(self, fn: Any, phase: Phase, options: StepOptions) -> _Kind:
        def what() -> str:  # made only for an error: check runs for every do and undo
            return f"the {phase.value} {_describe(fn)}" + (
                f" of step {options.name!r}" if options.name else ""
            )

        if isinstance(fn, str) and not fn.strip():
            # Scheduled, it would fail every workflow task ("activityType is not set")
            # or, blank, retry forever as an activity no worker has.
            raise StepDefinitionError(
                f"{what()} is {'a blank' if fn else 'an empty'} activity name: give the name "
                f"the activity is registered under on the worker, as in "
                f'saga.step("book_car", "cancel_car", trip)'
                + (", or None when the step has nothing to undo" if phase is Phase.UNDO else "")
            )
        target = _target(fn)
        if target.kind is _Kind.INLINE and not options.inline:
            raise StepDefinitionError(self._not_said_inline(fn, phase, options, what()))
        if target.kind is _Kind.ACTIVITY:
            if options.start_to_close_timeout is None and options.schedule_to_close_timeout is None:
                raise OptionsError(
                    f"{what()} is an activity and has no timeout: set start_to_close_timeout "
                    f"(each attempt) or schedule_to_close_timeout (all attempts) on "
                    f"saga.step(...) or once for all steps in SagaOptions(...)"
                )
        elif options.local:
            raise OptionsError(
                f"{what()} is {target.kind.value}, but local=True applies only to "
                f"activities: drop local=True for this step"
            )
        return target.kind

    @staticmethod
    def _not_said_inline(fn: Any, phase: Phase, options: StepOptions, what: str) -> str:
        """Why an `async def` neither activity nor workflow is refused, naming the fixes."""
        if options.name == HOOK_NAME:
            return (
                f"the {HOOK_NAME} hook {_describe(fn)} is an `async def` that is neither an "
                f"activity nor a workflow: on Temporal the hook runs as an activity; decorate "
                f"it with @activity.defn and register it on the worker"
            )
        return (
            f"{what} is an `async def` that is neither an activity nor a workflow: decorate "
            f"it with @activity.defn and register it on the worker to run it as an activity, "
            f"or, if it is workflow code (waiting for a signal, a nested saga), pass "
            f"inline=True to saga.step(...) to run it inside the workflow"
        )

    async def call(self, call: StepCall) -> Any:
        """Run the do or undo as an activity, local activity, child workflow or inline."""
        target = _target(call.fn)
        opts = call.options
        ctx = call.context
        if ctx.seq:  # not the alert hook (seq 0)
            if ctx.phase is Phase.DO:
                self.show(SagaStatus.RUNNING, f"step {ctx.seq} {ctx.name}")
            elif waiting := self._parked():  # an operator's retry, while others wait
                self.show(SagaStatus.PARKED, f"compensating {ctx.name}; {_parked_list(waiting)}")
            else:
                self.show(SagaStatus.COMPENSATING, f"compensating {ctx.name}")
        if target.kind is _Kind.INLINE:
            try:
                return await call.fn(*call.args)
            except (KeyboardInterrupt, SystemExit) as e:
                # Raised in any task but the workflow's main one, asyncio re-raises
                # these out of the event loop, which stops the worker's workflow
                # thread: carry them as a plain BaseException to TemporalExecutor.run.
                raise Interrupted(e) from e
        # The step itself travels in the `sagakit` header, which the workflow
        # interceptor adds; the id keeps the format running workflows replay.
        step_id = _activity_id(ctx, self._index)
        args = self._encode(call)
        retry = _retry(call.retry_policy)
        if target.kind is _Kind.CHILD:
            return await self._child(target, call, args, step_id, retry)
        # What a local and a remote activity share; only a remote one has a task
        # queue and heartbeats.
        shared: dict[str, Any] = {
            "args": args,
            "result_type": target.result_type,
            "schedule_to_close_timeout": opts.schedule_to_close_timeout,
            "start_to_close_timeout": opts.start_to_close_timeout,
            "retry_policy": retry,
            "cancellation_type": workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            "activity_id": step_id,
            "summary": opts.summary,
        }
        handle: asyncio.Future[Any]
        if opts.local:
            handle = workflow.start_local_activity(target.ref, **shared)
        else:
            handle = workflow.start_activity(
                target.ref,
                task_queue=opts.task_queue,
                heartbeat_timeout=opts.heartbeat_timeout,
                **shared,
            )
        return await _settle(handle)

    def _encode(self, call: StepCall) -> list[Any]:
        """The call's args as payloads (`encode_args`), refused here if they cannot travel.

        Refused, the call never started (`attempts = 0`), so its undo is not run.
        """
        what = f"the {call.phase.value} of step {call.context.name!r}"
        try:
            return encode_args(call.args, what, self._payload_limit)
        except StepDefinitionError:
            call.attempts = 0
            raise

    async def _child(
        self,
        target: _Target,
        call: StepCall,
        args: list[Any],
        step_id: str,
        retry: temporalio.common.RetryPolicy | None,
    ) -> Any:
        opts = call.options
        # Started in its own task so a cancel during the start stays ours too
        # (temporalio re-raises only a workflow cancel there); the task copies
        # this context, so the interceptor still sees the step and adds its header.
        start = asyncio.ensure_future(
            workflow.start_child_workflow(
                target.ref,
                args=args,
                id=f"{self._workflow_id}.{step_id}",
                task_queue=opts.task_queue,
                result_type=target.result_type,
                execution_timeout=opts.schedule_to_close_timeout,
                run_timeout=opts.start_to_close_timeout,
                retry_policy=retry,
                cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
                static_summary=opts.summary,
            )
        )
        try:
            handle: asyncio.Future[Any] = await _settle(start)
        except asyncio.CancelledError:
            if start.done() and not start.cancelled() and start.exception() is None:
                # It started before the cancel took: stop it before any undo runs.
                await _stop(start.result())
            raise
        return await _settle(handle)

    def pack_plan(self, plan: UndoPlan) -> UndoPlan:
        """Each undo by activity name, its args (and result) as payloads; refused past the limit.

        The args are encoded by the workflow's payload converter, as a call
        would encode them, and kept compactly (`_pack`): a JSON payload as its
        value. The plan is measured as `pydantic_data_converter` writes it.

        Raises:
            StepDefinitionError: an undo that is not an activity (inline code,
                a child workflow): only an activity's name and args can travel.
            PayloadTooLargeError: the plan is past the payload limit.
        """
        converter = workflow.payload_converter()
        undos = []
        for u in plan.undos:
            target = _target(u.undo)
            if target.kind is not _Kind.ACTIVITY:
                raise StepDefinitionError(
                    f"saga.undo_plan(): the undo {_describe(u.undo)} of step {u.seq} {u.name!r} "
                    f"is {target.kind.value}, which cannot travel to another run (a plan "
                    f"holds each undo by activity name, with its args): make the undo an "
                    f"@activity.defn function registered on the worker"
                )
            name = target.ref if isinstance(target.ref, str) else default_name(target.ref)
            try:
                args = [pack_payload(p) for p in converter.to_payloads(u.args)] if u.args else []
                result = None
                if plan.options[u.options].pass_result and u.result is not None:
                    [payload] = converter.to_payloads([u.result])
                    result = pack_payload(payload)
            except Exception as e:  # what the converter could encode once, it should again
                raise StepDefinitionError(
                    f"saga.undo_plan(): the args or result of step {u.seq} {u.name!r} cannot "
                    f"be encoded by the workflow's data converter ({type(e).__name__}: {e})"
                ) from None
            undos.append(u.model_copy(update={"undo": name, "args": args, "result": result}))
        packed = plan.model_copy(update={"undos": undos})
        size = len(packed.model_dump_json())
        if size > self._payload_limit:
            raise PayloadTooLargeError(
                f"saga.undo_plan(): the plan of {len(undos):,} pending undo(s)",
                size,
                self._payload_limit,
                subject="it encodes",
                fix=(
                    "it must fit one payload to travel to the next run; give the undos "
                    "smaller args (a key rather than the data), or end the saga (and start "
                    "another) before it holds this many"
                ),
            )
        return packed

    def unpack_undo(self, undo: PlannedUndo) -> tuple[Any, tuple[Any, ...], Any]:
        """The activity's name, and its args and result as `RawValue`s it decodes by its hints.

        Raises:
            SagaDefinitionError: not a packed undo (a hand-edited plan).
        """
        try:
            if not isinstance(undo.undo, str) or not undo.undo.strip():
                raise ValueError(f"'undo' is an activity's name, not {undo.undo!r}")
            args = tuple(temporalio.common.RawValue(unpack_payload(a)) for a in undo.args)
            result = None
            if undo.result is not None:
                result = temporalio.common.RawValue(unpack_payload(undo.result))
        except Exception as e:  # raised out of the workflow task, it would retry forever
            raise SagaDefinitionError(
                f"resume= takes the UndoPlan that saga.undo_plan() returned; its undo "
                f"{undo.seq} {undo.name!r} is malformed ({type(e).__name__}: {e}): nothing ran"
            ) from None
        return undo.undo, args, result

    def sub_apart(self, fn: Any) -> Any:
        """A child workflow's `@workflow.run` method runs apart, as a child workflow saga.

        See `sagakit.temporal._child`: its undo plan comes back with its result
        and joins this saga's stack.
        """
        if not is_workflow_run_fn(fn) or self.run_apart is None:
            return None
        return functools.partial(self.run_apart, self)

    def describe_error(self, exc: BaseException) -> tuple[str, str]:
        """See through `ActivityError` / `ChildWorkflowError` to the error inside."""
        return explain(exc.original if isinstance(exc, Interrupted) else exc)

    def passes_through(self, exc: BaseException) -> bool:
        """Eviction and continue-as-new end the workflow task, not the saga: never compensate."""
        if is_eviction(exc) or isinstance(exc, workflow.ContinueAsNewError):
            return True
        return isinstance(exc, asyncio.CancelledError) and being_evicted()


# Workflow instances may use __slots__; then the per-run saga counter lives here.
_counters: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_COUNTER_ATTR = "_sagakit_saga_count"


def next_index() -> int:
    inst = workflow.instance()
    try:
        n = int(getattr(inst, _COUNTER_ATTR, 0)) + 1
        setattr(inst, _COUNTER_ATTR, n)
    except AttributeError:
        n = _counters.get(inst, 0) + 1
        _counters[inst] = n
    return n


def encode_args(args: tuple[Any, ...], what: str, limit: int) -> list[Any]:
    """`args` as payloads of the workflow's converter, handed to temporalio as `RawValue`s.

    Encoded once, here (temporalio sends a `RawValue` as it is): an arg the
    converter cannot encode, or args over the payload limit, would otherwise
    fail every workflow task from then on.

    Args:
        args: A step's args, or a child workflow sub-saga's.
        what: Whose args they are, for the message ("the do of step 'charge'").
        limit: The payload limit, in bytes.

    Raises:
        StepDefinitionError: an arg the converter cannot encode.
        PayloadTooLargeError: the args encode to more than `limit`.
    """
    try:
        payloads = workflow.payload_converter().to_payloads(args)
    except Exception as e:
        raise StepDefinitionError(
            f"{what}: its args cannot be encoded by the workflow's data converter "
            f"({type(e).__name__}: {e}): pass values it can serialise (JSON types, "
            f"dataclasses; pydantic models with pydantic_data_converter)"
        ) from None
    size = sum(p.ByteSize() for p in payloads)
    if size > limit:
        raise PayloadTooLargeError(what, size, limit)
    return [temporalio.common.RawValue(p) for p in payloads]


def untravelled(path: str, step: str, undo: str, kind: str) -> StepDefinitionError:
    """The refusal of a step, in a child run as sub-saga `path`, whose undo cannot travel."""
    return StepDefinitionError(
        f"step {step!r}: its undo {undo} is {kind}, which cannot travel: this workflow runs "
        f"as sub-saga {path!r} of its parent, whose saga runs the undos of this one's steps "
        f"if it unwinds later, as activities; make the undo an @activity.defn activity, or "
        f"run this workflow as a step (saga.step(ChildWorkflow, undo, ...)) rather than a "
        f"sub-saga"
    )
