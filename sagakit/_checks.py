"""What the core refuses before a step runs: unusable dos and undos, and broken step kinds."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NoReturn, ParamSpec, TypeVar, cast

from sagakit._exceptions import OptionsError, PayloadTooLargeError, StepDefinitionError
from sagakit._options import StepOptions
from sagakit._report import StepKind, StepStatus

if TYPE_CHECKING:
    from sagakit._backend import StepCall

__all__ = [
    "PAYLOAD_LIMIT",
    "cached_when_hashable",
    "check_kind",
    "check_payload_size",
    "check_step",
    "default_name",
    "is_async_callable",
    "refuse_temporal_only",
]

P = ParamSpec("P")
T = TypeVar("T")

PAYLOAD_LIMIT: Final = 2 * 1024 * 1024
"""Temporal's default limit on the payloads of one call (bytes), checked before scheduling."""


def cached_when_hashable(maxsize: int) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """`functools.lru_cache(maxsize)`, except that unhashable args are computed every time.

    Callables are usually hashable, but a user's may not be; it must still work.
    """

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        cached = cast(Callable[P, T], functools.lru_cache(maxsize=maxsize)(fn))

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                hash(args)
            except TypeError:
                return fn(*args, **kwargs)
            return cached(*args, **kwargs)

        return call

    return decorate


def check_payload_size(call: StepCall, size: int, limit: int) -> None:
    """Refuse a call whose args encode to more than `limit` bytes, as never started.

    Its `attempts` becomes 0, so the core does not run the step's undo.
    """
    if size > limit:
        call.attempts = 0
        what = f"the {call.phase.value} of step {call.context.name!r}"
        raise PayloadTooLargeError(what, size, limit)


def default_name(fn: Any) -> str:
    if isinstance(fn, str):
        return fn
    # temporalio stores an activity's registered name on the function itself.
    defn = getattr(fn, "__temporal_activity_definition", None)
    if defn is not None and isinstance(getattr(defn, "name", None), str):
        return str(defn.name)
    if isinstance(fn, functools.partial):
        return default_name(fn.func)
    name = getattr(fn, "__name__", None)
    return name if isinstance(name, str) else type(fn).__name__


def refuse_temporal_only(fn: Any, where: str) -> None:
    """Refuse, on a backend other than Temporal, a step Temporal alone runs.

    Args:
        fn: The do or undo.
        where: The backend, as the message says it ("in memory", "on DBOS").

    Raises:
        StepDefinitionError: an activity name, a Temporal ref, or a workflow class.
    """
    if isinstance(fn, str):
        raise StepDefinitionError(
            f"{where} a step is a callable, not an activity name ({fn!r}): pass the function itself"
        )
    if getattr(type(fn), "__sagakit_temporal_only__", False):
        raise StepDefinitionError(
            f"{fn!r} names a Temporal activity or workflow, which runs only on Temporal: "
            f"{where} pass a function that does the same"
        )
    if isinstance(fn, type) and hasattr(fn, "__temporal_workflow_definition"):
        raise StepDefinitionError(
            f"{fn.__name__} is a Temporal workflow: child-workflow steps run only on "
            f"Temporal; {where} pass a function that does the same"
        )


def is_async_callable(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects count too
    )


def _check_callable(fn: Any, role: str, nargs: int, pass_result: bool = False) -> None:
    if inspect.isawaitable(fn):
        raise StepDefinitionError(
            f"the {role} is an awaitable ({fn!r}), not a function: pass the function and "
            f"its args separately, saga.step(book_car, cancel_car, trip), not "
            f"saga.step(book_car(trip), ...)"
        )
    if not callable(fn) and not isinstance(fn, str):
        raise StepDefinitionError(
            f"the {role} must be a function (or an activity/workflow on Temporal), "
            f"got {type(fn).__name__} {fn!r}"
        )
    if isinstance(fn, str | type) or hasattr(fn, "__temporal_workflow_definition"):
        return  # names, workflow classes and run methods are the backend's to check
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return  # no signature to read (some builtins): the call itself will tell
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    most = None if any(p.kind is p.VAR_POSITIONAL for p in params) else len(positional)
    kwonly = [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
    name = default_name(fn)
    if kwonly:
        raise StepDefinitionError(
            f"{role} {name}() has required keyword-only parameters {kwonly}: a step "
            f"passes only positional args (the same to do and undo); give them defaults "
            f"or bind them with functools.partial"
        )
    if nargs < required or (most is not None and nargs > most):
        want = f"{required}" if most == required else f"{required} to {most or 'any'}"
        how = (
            "saga.step(do, undo, *args, pass_result=True) calls undo(*args, result), so "
            "the undo takes the step's args and then the do's result"
            if pass_result
            else "saga.step(do, undo, *args) calls do(*args) and undo(*args) with the same "
            "args, so both must accept them"
        )
        raise StepDefinitionError(
            f"{role} {name}() takes {want} positional args but the step passes {nargs}: {how}"
        )


# One of sagakit's two caches (the other: the Temporal adapter's `_targets`). Reading
# signatures costs 25 us a step uncached, 0.2 us cached, where a whole no-op step costs
# 6 us (bench/inmem_overhead.py, growth table): each (do, undo, nargs) is checked once.
@cached_when_hashable(maxsize=1024)
def check_step(do: Any, undo: Any, nargs: int, pass_result: bool) -> str:
    """Refuse an unusable do/undo or args they cannot take; return the do's default name."""
    _check_callable(do, "do", nargs)
    if undo is not None:
        _check_callable(undo, "undo", nargs + pass_result, pass_result)
    return default_name(do)


def check_kind(
    name: str,
    undo: Any,
    opts: StepOptions,
    own: StepOptions | None,
    pivot: str | None,
    pivot_status: StepStatus | None,
    running: list[str],
) -> StepOptions:
    """Refuse a step that breaks the rules of step kinds; the options it runs with.

    Args:
        name: The step's name, for the message.
        undo: The step's undo.
        opts: Its options, merged over the saga's.
        own: The options it set itself, if any.
        pivot: The name of the saga's pivot so far, if it has one.
        pivot_status: How that pivot's do stands.
        running: The names of the steps in flight.
    """
    kind = opts.kind

    def refuse(rule: str) -> NoReturn:
        raise StepDefinitionError(f"step {name!r} ({kind.value}) is refused: {rule}")

    if pivot is not None and pivot_status is StepStatus.RUNNING:
        refuse(f"the pivot {pivot!r} runs alone: register steps after it has succeeded")
    if (
        pivot is not None
        and pivot_status is StepStatus.SUCCEEDED
        and kind is not StepKind.RETRIABLE
    ):
        refuse(
            f"the pivot {pivot!r} has succeeded, so the saga is committed: every "
            f"later step must be kind='retriable' (no undo, retried until it succeeds)"
        )
    if kind is StepKind.COMPENSATABLE:
        return opts
    if undo is not None:
        refuse(f"a {kind.value} step has no undo: pass None as its undo")
    if kind is StepKind.PIVOT:
        if pivot is not None:
            refuse(f"a saga has at most one pivot, and {pivot!r} is one")
        if running:
            refuse(f"the pivot runs alone, but steps {running} are still in flight")
        return opts
    # Retriable: retried until it succeeds, so no policy of its own may limit attempts,
    # and a saga-wide limit does not apply to it.
    policy = opts.retry_policy
    if own is not None and own.retry_policy is not None and own.retry_policy.maximum_attempts:
        raise OptionsError(
            f"step {name!r} is retriable, so it is retried until it succeeds: its "
            f"retry_policy may not limit attempts (maximum_attempts="
            f"{own.retry_policy.maximum_attempts}); bound it with "
            f"schedule_to_close_timeout if it must end"
        )
    if policy is not None and policy.maximum_attempts:
        unlimited = policy.model_copy(update={"maximum_attempts": 0})
        return opts.model_copy(update={"retry_policy": unlimited})
    return opts
