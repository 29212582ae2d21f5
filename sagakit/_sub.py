"""Sub-sagas (API.md §10): a saga inside a saga, as part of the same run.

`saga.sub(fn)` hands `fn` a builder on the same `Run` whose only difference is
its path (`Saga._sub`: `"hotels"`, `"hotels/rooms"`). Its steps are records of
the run like any other, each noting its `sub`, so seq, keys and the report
need nothing new. A sub-saga that raises has the records under its path
undone by the same `Unwind` (`unwind(run, policy, records)`), which marks
them done, so the saga's own unwind later skips them; one that returns leaves
its records where they stand, to unwind LIFO among the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, Self, TypeVar

from sagakit._checks import is_async_callable
from sagakit._exceptions import SagaDefinitionError, SagaFailed, StepDefinitionError
from sagakit._record import Run, failure_message, unwound_status
from sagakit._report import SagaReport, to_datetime
from sagakit._unwind import UndoFailurePolicy, unwind

__all__ = ["run_sub", "start_body", "sub_path"]

R = TypeVar("R")


class Builder(Protocol):
    """What this module reads of the builder (`sagakit._saga.Saga`, which imports it)."""

    _run: Run
    _sub: str | None
    policy: UndoFailurePolicy

    def _child(self, path: str) -> Self:
        """A builder on the same run for sub-saga `path`."""

    def _check_ended(self) -> None:
        """Refuse a step the saga function never awaited, or left running."""

    def _close_unstarted(self) -> list[str]:
        """Stop the step coroutines never started; their names."""


async def run_sub(
    parent: Builder, fn: Callable[..., Coroutine[Any, Any, R]], args: tuple[Any, ...], label: str
) -> R:
    """Run `fn(sub, *args)` inline as sub-saga `label` of `parent` (`Saga.sub`)."""
    run = parent._run
    if not is_async_callable(fn):
        raise StepDefinitionError(
            f"a sub-saga must be an `async def` that takes the Saga first, like "
            f"`async def book_hotels(saga: Builder, trip): ...`; got {fn!r}"
        )
    child = parent._child(sub_path(parent, label))
    started = run.backend.time()
    body = start_body(fn, child, args, "a sub-saga function")
    try:
        result = await body
        child._check_ended()
    except (SagaDefinitionError, GeneratorExit):
        raise  # a mistake in the code (the saga unwinds), or a worker shut down
    except BaseException as error:
        if run.backend.passes_through(error):
            raise
        child._close_unstarted()
        failed = await _unwind(child, error, started)
        if isinstance(error, Exception):
            raise failed from error
        # Cancelled (by the saga's cancel, its deadline, or a sibling's failure in a
        # gather): its own steps are undone, and the cancel goes on.
        raise
    return result


def sub_path(saga: Builder, label: str) -> str:
    """The path of `saga`'s next sub-saga named `label`, numbered if the name repeats.

    For a backend that runs sub-sagas apart (`Backend.sub_apart`), to name them
    as the core names an inline one.

    Raises:
        StepDefinitionError: `label` is empty or holds a "/".
    """
    if "/" in label or not label:
        raise StepDefinitionError(
            f"sub-saga name {label!r}: give a non-empty name without '/' "
            f"('/' joins the names of nested sub-sagas in the report)"
        )
    run = saga._run
    path = label if saga._sub is None else f"{saga._sub}/{label}"
    subs = run.subs if run.subs is not None else {}
    run.subs = subs
    n = subs[path] = subs.get(path, 0) + 1
    return path if n == 1 else f"{path}[{n}]"


async def _unwind(sub: Builder, error: BaseException, started: float) -> BaseException:
    """Undo the steps of sub-saga `sub` after `error`; what `saga.sub` raises then."""
    run = sub._run
    path = sub._sub
    assert path is not None
    inside = path + "/"
    records = [r for r in run.records if r.sub == path or (r.sub or "").startswith(inside)]
    cancelled = run.cancelled
    run.sub_unwinds += 1
    try:
        comp_error = await unwind(run, sub.policy, records)
    finally:
        run.sub_unwinds -= 1
    if run.cancelled and not cancelled:  # a cancel arrived meanwhile: the saga unwinds on
        return asyncio.CancelledError()
    report = SagaReport(
        saga_id=run.saga_id,
        status=unwound_status(records, True),
        started_at=to_datetime(started),  # type: ignore[arg-type]
        ended_at=to_datetime(run.backend.time()),
        error=run.describe(error),
        steps=[r.to_report(run.options.record_values) for r in records],
    )
    message = failure_message(run, records, report.error, f"sub-saga {path!r} of ")
    if comp_error is not None:
        comp_error.report = report
    failed = SagaFailed(message, report, comp_error)
    failed._sub_of = run  # uncaught, the saga fails with its cause
    return failed


def start_body(
    fn: Callable[..., Coroutine[Any, Any, R]], saga: Builder, args: tuple[Any, ...], what: str
) -> Coroutine[Any, Any, R]:
    """`fn(saga, *args)`, the coroutine of a saga function (`what`), not yet started."""
    try:
        return fn(saga, *args)
    except TypeError as e:  # an `async def` raises here only when the args do not bind
        raise StepDefinitionError(
            f"{what} takes the Saga first, then its own args, like "
            f"`async def book_trip(saga: Builder, trip): ...`; {fn!r} cannot be called as "
            f"fn(saga, {', '.join(type(a).__name__ for a in args)}): {e}"
        ) from None
