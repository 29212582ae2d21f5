"""The seam between the core and a backend.

The core (`_saga.py`) owns registration, ordering, unwinding, error collection
and the report. A backend only answers four questions: which callables can you
run, run this one (with its retries and timeouts), what time is it, and what is
this saga run called. Adapters translate; they never decide what to compensate.

A backend may also offer the core a cheaper path (the in-memory one does; the
Temporal one need not): `inline` lets the core await a plain first attempt
itself and hand it back through `retry` only if it fails, `shapes` shares the
checked step shapes across runs, and `clock` lets the core read the time
without a call.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from sagakit._context import Phase, StepContext, _ContextSource
from sagakit._options import RetryPolicy, StepOptions

__all__ = ["Backend", "StepCall"]


class StepCall(_ContextSource):
    """One do or undo the core asks a backend to run.

    The core's record of a step is itself the `StepCall` of its do (one object
    per step, not three): `retry_policy` and `context` are properties so that
    record can derive them only when a backend or the step reads them.
    """

    __slots__ = ("_context", "_retry_policy", "args", "attempts", "fn", "options")

    fn: Callable[..., Any]
    """The do or undo, exactly as the user passed it."""
    args: tuple[Any, ...]
    """Positional args; the same for the do and the undo of a step."""
    options: StepOptions
    """The step's options merged over the saga's defaults (the name is `context.name`)."""
    attempts: int | None
    """Set by the backend: attempts made, when it can know (in memory always;
    on Temporal only for failures that say so)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        options: StepOptions,
        retry_policy: RetryPolicy | None,
        context: StepContext,
        attempts: int | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.options = options
        self._retry_policy = retry_policy
        self._context = context
        self.attempts = attempts

    @property
    def retry_policy(self) -> RetryPolicy | None:
        """The policy for this phase; `None` means the backend's default.

        The undo's is resolved from `undo_retry_policy`.
        """
        return self._retry_policy

    @property
    def context(self) -> StepContext:
        """What `current_step()` answers inside the call."""
        return self._context

    @property
    def phase(self) -> Phase:
        """Do or undo."""
        return self.context.phase

    def __repr__(self) -> str:
        return f"StepCall({self.fn!r}, {self.args!r}, {self.context!r}, attempts={self.attempts!r})"


class Backend(abc.ABC):
    """What an executor plugs into the core. One instance serves one saga run."""

    @abc.abstractmethod
    def saga_id(self) -> str:
        """A name for this saga run: unique, and stable across replays and restarts."""

    @abc.abstractmethod
    def time(self) -> float:
        """Seconds since the epoch on this backend's clock (virtual, or `workflow.now()`)."""

    @abc.abstractmethod
    def check(self, fn: Any, phase: Phase, options: StepOptions) -> None:
        """Refuse, before anything runs, a do or undo this backend cannot run.

        The core has already refused non-callables and coroutine objects and
        checked the arity; this adds what the backend alone knows. It runs for
        every step, so a backend caches what is costly to find out about `fn`.

        Raises:
            StepDefinitionError: with a message that names the fix.
            OptionsError: an option this backend needs is missing (a timeout on Temporal).
        """

    @abc.abstractmethod
    async def call(self, call: StepCall) -> Any:
        """Run `call.fn(*call.args)` to its end: retries, timeouts and all.

        Returns the result of the final attempt or raises its error. Set
        `call.attempts` when known. Cancellation of the awaiting task must
        cancel the call and return only once it has really stopped, so the core
        never starts an undo while its do may still be running.
        """

    # -- optional: a cheaper path for backends that can offer one -------------

    def inline(self, fn: Any, phase: Phase, options: StepOptions) -> bool:
        """Whether the core may make the first attempt of `fn` itself.

        `True` promises that a first attempt is exactly `await fn(*args)`: no
        timeout to enforce, no fault to inject, no context to set up around it.
        The core then awaits `fn` directly, saving a frame per step, and hands
        the call back through `retry` only if that attempt raises. Asked once
        per step shape after `check` accepted it, and cached in `shapes()`.
        The default, `False`, sends every call through `call`.
        """
        return False

    async def retry(self, call: StepCall, error: Exception) -> Any:
        """Go on with `call` after its inline first attempt raised `error`.

        Makes attempts 2 and on by the call's retry policy, as `call` would
        have, and returns the result or raises the final error (`error` itself
        when it is not retryable). Only backends whose `inline` can say `True`
        need it.
        """
        try:
            raise error
        finally:
            del error  # this frame, in the traceback, must not hold the error: no cycle

    def shapes(self) -> dict[Any, Any] | None:
        """Where the core may remember the step shapes this backend accepted.

        A step shape is (do, undo, number of args) under the saga's default
        options. Returning the same dict for many runs lets them skip the
        checks of shapes already seen; clear it when an answer of `check` or
        `inline` would change. `None` (the default) keeps a cache per run.
        """
        return None

    clock: Any = None
    """An object whose `seconds` attribute is always this backend's `time()`, if set.

    For a clock that moves only when told (a virtual one): the core reads the
    attribute instead of calling `time()`, twice per step. `None` (the default)
    means call `time()`.
    """

    inline_log: list[Any] | None = None
    """Where the core appends each call whose inline first attempt succeeded, if set."""

    def describe_error(self, exc: BaseException) -> tuple[str, str]:
        """(type name, message) of an error for the report.

        An error with string `type` and `message` attributes (temporalio's
        `ApplicationError`) is described by those, so a business error reads the
        same on every backend. Adapters override it to see through their
        wrappers (Temporal's `ActivityError` to the `ApplicationError` inside).
        """
        kind, message = getattr(exc, "type", None), getattr(exc, "message", None)
        if isinstance(kind, str) and kind and isinstance(message, str):
            return kind, message
        return type(exc).__name__, str(exc)

    def passes_through(self, exc: BaseException) -> bool:
        """Errors that end the saga's task without compensation.

        On Temporal, a workflow evicted from the worker's cache is torn down by
        an internal `BaseException`: compensating then would run undos of a
        saga that is still alive in the server's history.
        """
        return False
