"""The `Saga` builder: register each step's undo, run its do through the backend, record.

A step is registered (and so is its undo) *before* its do starts: a do that
fails, times out or is cancelled after it took effect is compensated too.
`run_saga` runs a saga function on a `Saga`; when it raises, `_unwind.py`
undoes what was registered and the run's `UndoFailurePolicy` (also there)
decides what becomes of an undo that finally failed. docs/core.md follows one
step through these modules.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar, TypeVarTuple, Unpack, overload

from sagakit._backend import Backend, StepCall
from sagakit._checks import check_kind, check_step, default_name, is_async_callable
from sagakit._context import Phase, StepContext, _current, _reset
from sagakit._deadline import by_deadline, deadline_exceeded, watch_deadline
from sagakit._exceptions import (
    OptionsError,
    SagaFailed,
    SagaStateError,
    StepDefinitionError,
)
from sagakit._options import SagaOptions, StepOptions, StepOptionsKw, merge
from sagakit._parking import Park
from sagakit._plan import UndoPlan, check_plan
from sagakit._record import Record, Run, State, carry, failure_message, take
from sagakit._report import (
    ErrorInfo,
    SagaReport,
    SagaStatus,
    StepKind,
    StepStatus,
)
from sagakit._sub import run_sub, start_body
from sagakit._tasks import gather
from sagakit._unwind import UndoFailurePolicy, unwind

__all__ = ["Saga", "run_saga"]

R = TypeVar("R")
Ts = TypeVarTuple("Ts")


class Saga:
    """The builder a saga function receives: `await saga.step(do, undo, *args)`.

    Executors make one per run; a saga function never constructs it. The same
    saga function runs on every backend and must not know which.
    """

    def __init__(self, backend: Backend, options: SagaOptions | None = None) -> None:
        options = options if options is not None else SagaOptions()
        self._run = Run(backend, options)
        self._defaults = merge(options, None)  # what a step without options runs with
        self._created = 0
        self._unstarted: dict[int, tuple[Coroutine[Any, Any, Any], Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run_saga
        self._sub: str | None = None  # the path of a sub-saga's builder
        choice = options.on_undo_failure
        policy = (
            UndoFailurePolicy()
            if choice == "fail"
            else Park(options.park_timeout)
            if choice == "park"
            else choice()
        )
        if not isinstance(policy, UndoFailurePolicy):
            raise OptionsError(
                f"on_undo_failure={choice!r} made {policy!r}: give 'fail', 'park', or a "
                f"callable (a subclass of sagakit.backend.UndoFailurePolicy) that makes one"
            )
        self.policy = policy
        """What becomes of an undo that finally failed (`SagaOptions.on_undo_failure`)."""

    @property
    def saga_id(self) -> str:
        """Unique per saga run; stable across replays and worker restarts."""
        return self._run.saga_id

    @property
    def options(self) -> SagaOptions:
        """The saga-wide options this run uses."""
        return self._run.options

    @overload
    def step(
        self,
        do: str | type[Any],
        undo: str | type[Any] | Callable[..., Any] | None,
        /,
        *args: Any,
        pass_result: bool = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, Any]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], Awaitable[R]],
        undo: Callable[[*Ts], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[False] = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], Awaitable[R]],
        undo: Callable[[*Ts, R | None], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[True],
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], R],
        undo: Callable[[*Ts], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[False] = False,
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    @overload
    def step(
        self,
        do: Callable[[*Ts], R],
        undo: Callable[[*Ts, R | None], Any] | str | None,
        /,
        *args: *Ts,
        pass_result: Literal[True],
        **options: Unpack[StepOptionsKw],
    ) -> Coroutine[Any, Any, R]: ...

    # mypy cannot match a TypeVarTuple overload against an `Any` implementation.
    def step(  # type: ignore[misc]
        self, do: Any, undo: Any, /, *args: Any, **options: Any
    ) -> Coroutine[Any, Any, Any]:
        """Register `undo`, then run `do(*args)` through the backend and return its result.

        Await it (or pass it to `saga.gather`): a step never awaited when the
        saga function returns fails the saga with `SagaStateError`.

        Args:
            do (Callable | str): the forward action (a function, or on Temporal an
                activity, a child workflow or an inline `async def`).
            undo (Callable | str | None): what reverses it, called with the same
                `*args`; `None` when there is nothing to undo. Registered before
                `do` starts, so it runs even if `do` fails or times out after
                taking effect.
            *args: positional args of both `do` and `undo`.
            **options (StepOptions): `StepOptions` fields: `name`, `kind`, `pass_result`,
                `start_to_close_timeout`, `schedule_to_close_timeout`,
                `heartbeat_timeout`, `retry_policy`, `undo_retry_policy`,
                `task_queue`, `local`, `summary`. Unset ones take the saga's
                defaults. With `pass_result=True` the undo is called as
                `undo(*args, result)`: the do's result if it succeeded, else `None`.

        Returns:
            A coroutine whose result is the do's.

        Raises:
            StepDefinitionError: do/undo unusable, args they cannot take, or a
                step that breaks the rules of step kinds (when awaited).
            OptionsError: an unknown or out-of-range option.
            SagaStateError: the saga has ended or is unwinding.
            Exception: whatever `do` finally raised; the executor unwinds.
        """
        key = self._created = self._created + 1
        coro = self._step(key, do, undo, args, options)
        # Until it starts, kept to tell a step never awaited (and to close it quietly).
        self._unstarted[key] = (coro, do)
        return coro

    async def _step(
        self, key: int, do: Any, undo: Any, args: tuple[Any, ...], options: dict[str, Any]
    ) -> Any:
        del self._unstarted[key]
        run = self._run
        if run.state is not State.OPEN:
            raise SagaStateError(
                f"saga.step({default_name(do)}) after the saga "
                + ("started unwinding" if run.state is State.UNWINDING else "ended")
                + ": every step must be awaited inside the saga function, before it returns"
            )
        name, opts = self._prepare(do, undo, len(args), options)
        context = StepContext(run.saga_id, len(run.records) + 1, name, Phase.DO)
        call = StepCall(do, args, opts, opts.retry_policy, context)
        record = Record(call, undo, run.backend.time(), asyncio.current_task(self._loop), self._sub)
        run.records.append(record)  # the undo is registered from here on
        if opts.kind is StepKind.PIVOT:
            run.pivot = record
        token = _current.set(context)
        try:
            result = await run.backend.call(call)
        except GeneratorExit:
            raise  # closed by the garbage collector (a worker shut down): touch nothing
        except BaseException as e:
            cancelled = isinstance(e, asyncio.CancelledError)
            self._do_ended(record, StepStatus.CANCELLED if cancelled else StepStatus.FAILED, e)
            raise
        else:
            if opts.pass_result or run.options.record_values:
                record.result = result
            self._do_ended(record, StepStatus.SUCCEEDED, None)
            return result
        finally:
            _reset(_current, token)

    def _prepare(
        self, do: Any, undo: Any, nargs: int, options: dict[str, Any]
    ) -> tuple[str, StepOptions]:
        """The step's name and options, once the core and the backend accepted it."""
        opts, own = self._defaults, None
        if options:
            try:
                own = StepOptions(**options)
            except OptionsError as e:
                raise OptionsError(f"step {default_name(do)!r}: {e}") from None
            opts = merge(self._run.options, own)
        try:
            name = check_step(do, undo, nargs, opts.pass_result)
        except StepDefinitionError:
            # A step-kind rule broken too names the real mistake (a pivot given an undo).
            self._check_kind(opts.name or default_name(do), undo, opts, own)
            raise
        name = opts.name or name
        if self._sub is not None and opts.kind is StepKind.PIVOT:
            raise StepDefinitionError(
                f"step {name!r} is a pivot inside sub-saga {self._sub!r}: a sub-saga that "
                f"fails undoes its own steps, which a pivot forbids; run the pivot in the "
                f"saga itself, after saga.sub(...) returned"
            )
        opts = self._check_kind(name, undo, opts, own)
        self._run.backend.check(do, undo, opts)
        return name, opts

    def _check_kind(
        self, name: str, undo: Any, opts: StepOptions, own: StepOptions | None
    ) -> StepOptions:
        pivot = self._run.pivot
        if opts.kind is StepKind.COMPENSATABLE and pivot is None:
            return opts  # most steps of most sagas
        running = [r.name for r in self._run.records if r.status is StepStatus.RUNNING]
        if pivot is None:
            return check_kind(name, undo, opts, own, None, None, running)
        return check_kind(name, undo, opts, own, pivot.name, pivot.status, running)

    def _do_ended(self, record: Record, status: StepStatus, error: BaseException | None) -> None:
        run = self._run
        record.status = status
        record.ended = run.backend.time()
        if error is not None:
            record.error = run.describe(error)
            if status is StepStatus.CANCELLED and not record.error.message:
                why = "the saga's deadline passed" if run.deadline_passed else "in flight"
                record.error = ErrorInfo(type=record.error.type, message=f"cancelled: {why}")
        if record.stopped is not None and not record.stopped.done():
            record.stopped.set_result(None)
        if record is run.pivot and run.pivot_ended is not None:
            run.pivot_ended.set()  # a deadline that passed meanwhile may act now

    async def sub(
        self, fn: Callable[..., Coroutine[Any, Any, R]], /, *args: Any, name: str | None = None
    ) -> R:
        """Run `fn(sub, *args)`, a saga inside this one, as part of this run (API.md §10).

        Its steps are steps of the run (their own `seq` and idempotency key; the
        report names the sub-saga). If `fn` raises, its own undos run first, last
        registered first, and `SagaFailed` is raised: catch it to try something
        else, those undos never run again. If it returns, its undos stay
        registered and run, in LIFO order among the others, if the saga unwinds.

        Args:
            fn: an `async def` taking the sub-saga's `Saga` first (on Temporal,
                also a child workflow's run method: see `sagakit.temporal`).
            *args: `fn`'s own args.
            name: the sub-saga's name in the report (default: `fn`'s name);
                a repeated name is numbered (`hotels[2]`).

        Raises:
            SagaFailed: `fn` raised and its steps were undone; `__cause__` is
                the error, `.report` the sub-saga's steps.
            StepDefinitionError: `fn` is not an `async def` taking the saga, or
                `name` holds a "/" (it joins nested names).
            SagaStateError: the saga has ended or is unwinding.
        """
        run = self._run
        label = name if name is not None else default_name(fn)
        if run.state is not State.OPEN:
            raise SagaStateError(
                f"saga.sub({label}) after the saga "
                + ("started unwinding" if run.state is State.UNWINDING else "ended")
                + ": await every sub-saga inside the saga function, before it returns"
            )
        apart = run.backend.sub_apart(fn)
        if apart is not None:  # a child workflow (Temporal): it unwinds itself
            return await apart(self, fn, args, label)  # type: ignore[no-any-return]
        return await run_sub(self, fn, args, label)

    def _child(self, path: str) -> Saga:
        """A builder on this run for sub-saga `path` (`sagakit._sub`): its steps are the run's."""
        child = Saga.__new__(Saga)
        child._run, child._defaults, child.policy = self._run, self._defaults, self.policy
        child._created, child._unstarted, child._loop = 0, {}, self._loop
        child._sub = path
        return child

    def undo_plan(self) -> UndoPlan:
        """The undos registered and not yet run, in registration order, as data (API.md §11).

        Give it to the next run, `executor.run(fn, *args, resume=plan)` (on
        Temporal, as a `workflow.continue_as_new` arg): if that run unwinds,
        these undos run last, LIFO, each with the idempotency key it had here.

        Raises:
            SagaStateError: a step is in flight.
            StepDefinitionError: an undo that cannot travel (on Temporal,
                anything but an activity), named; or (on Temporal) the plan is
                past the payload limit: `PayloadTooLargeError`, naming its size
                and the limit.
        """
        return self._run.backend.pack_plan(take(self._run))

    async def gather(self, *steps: Awaitable[R]) -> list[R]:
        """Run steps concurrently; on the first failure cancel the rest, await them, re-raise.

        Unlike `asyncio.gather`, no sibling is left running after a failure, and
        the results come back in argument order. The saga then unwinds every
        registered step, including the cancelled ones (their outcome is unknown).

        Raises:
            Exception: the first error any of the steps raised.
        """
        return await gather(list(steps))

    @property
    def status(self) -> SagaStatus:
        """Where the run stands now (cheaper than `report().status`)."""
        return self._run.status

    def report(self) -> SagaReport:
        """A snapshot of the run so far (cheap enough to serve a query)."""
        return self._run.report()

    def _check_ended(self) -> None:
        """The saga function returned: refuse a step it never awaited, or left running."""
        never = self._close_unstarted()
        if never:
            raise SagaStateError(
                f"the saga function returned without awaiting saga.step({never[0]}) "
                f"(steps never run: {never}): await every saga.step(...), or pass them "
                f"to saga.gather"
            )
        run = self._run
        mine = [r for r in run.records if r.sub == self._sub] if self._sub else run.records
        stray = [r.name for r in mine if r.status is StepStatus.RUNNING]
        if stray:
            raise SagaStateError(
                f"the saga function returned while steps {stray} were still running: "
                f"await every saga.step(...) (use saga.gather for concurrent steps)"
            )

    def _close_unstarted(self) -> list[str]:
        """Stop the step coroutines never started, quietly; their names.

        A bare coroutine is closed (no "never awaited" warning). One a task wraps
        is stopped by cancelling its task: closed under it, the task would fail
        with "cannot reuse already awaited coroutine", logged as never retrieved.
        """
        if not self._unstarted:
            return []
        names = [default_name(do) for _, do in self._unstarted.values()]
        # Every task of the loop is looked at, only on this mistake's path.
        tasks = {id(task.get_coro()): task for task in asyncio.all_tasks(self._loop)}
        for coro, _ in self._unstarted.values():  # in step order: the same in a replay
            task = tasks.get(id(coro))
            if task is not None:
                task.cancel()  # not started: it ends cancelled without running a line
            else:
                coro.close()
        self._unstarted.clear()
        return names


async def run_saga(
    saga: Saga,
    fn: Callable[..., Coroutine[Any, Any, R]],
    args: tuple[Any, ...],
    resume: UndoPlan | Any = None,
) -> R:
    """Run a saga function to its end on `saga`'s backend; the heart of every executor.

    `resume`, an `UndoPlan` (or its JSON as a dict), puts its undos at the
    bottom of the run's stack before `fn` runs (API.md §11).

    Raises:
        StepDefinitionError: `fn` is not an `async def` taking the saga first.
        SagaDefinitionError: `resume` is not a plan, or a malformed one.
        SagaFailed: the saga raised and was unwound; `__cause__` is the error.
        asyncio.CancelledError: the saga was cancelled, and was unwound first.
        BaseException: a `KeyboardInterrupt`, `SystemExit` (any non-`Exception`)
            raised in the saga, re-raised as it is once the saga was unwound.
    """
    if not is_async_callable(fn):
        raise StepDefinitionError(
            f"a saga must be an `async def` that takes the Saga first, like "
            f"`async def book_trip(saga: Saga, trip): ...`; got {fn!r}"
        )
    run = saga._run
    if resume is not None:
        carry(run, check_plan(resume), run.backend.unpack_undo)
    saga.policy.prepare(run)
    # Named when asking for a step's task: asyncio then skips finding the running loop.
    saga._loop = loop = asyncio.get_running_loop()
    body = start_body(fn, saga, args, "a saga function")
    task = asyncio.current_task()
    if run.deadline is not None and task is not None:
        run.cancels_before = task.cancelling()
        run.watch = loop.create_task(watch_deadline(run, task))
    try:
        if run.deadline is not None:
            await asyncio.sleep(0)  # the deadline's timer is set before the first step starts
        result = await body
        saga._check_ended()
    except GeneratorExit:
        raise  # closed by the garbage collector (a worker shut down): touch nothing
    except BaseException as error:
        if run.backend.passes_through(error):
            raise
        if inspect.getcoroutinestate(body) == inspect.CORO_CREATED:
            body.close()  # cancelled before it started
        # A fresh error (never raised: no traceback holds this frame) when the deadline passed.
        deadline = deadline_exceeded(run) if by_deadline(run) else None
        # A sub-saga's failure left uncaught: the saga fails with what failed there.
        while isinstance(error, SagaFailed) and error._sub_of is run:
            if error.__cause__ is None:
                break
            error = error.__cause__
        saga._close_unstarted()
        run.state = State.UNWINDING
        if run.settled is not None:
            run.settled.set()  # the deadline no longer applies: undos are not cut short
        run.error = run.describe(deadline or error)
        run.cancelled = deadline is None and isinstance(error, asyncio.CancelledError)
        comp_error = await unwind(run, saga.policy)
        run.state = State.CLOSED
        run.ended = run.backend.time()
        if deadline is None and not isinstance(error, Exception):
            # Cancellation, KeyboardInterrupt, SystemExit: unwound, then re-raised as they
            # are. Wrapped in SagaFailed (an Exception) they could be caught and ignored.
            raise
        if run.cancelled:
            # The body failed, then the caller cancelled us during the unwind.
            raise asyncio.CancelledError() from error
        if comp_error is not None:
            comp_error.report = saga.report()
            raise SagaFailed(failure_message(run), comp_error.report, comp_error) from (
                deadline or error
            )
        # Built on first read: a caller that only catches the failure pays nothing for it.
        raise SagaFailed(failure_message(run), run.report, None) from deadline or error
    run.state = State.CLOSED
    run.ended = run.backend.time()
    if run.settled is not None:
        run.settled.set()  # the deadline's timer ends (not awaited: a cancel here must not land)
    return result
