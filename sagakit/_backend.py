"""The seam between the core and a backend.

The core (`_saga.py`) owns registration, ordering, unwinding, error collection
and the report. A backend answers four questions: what is this saga run
called, what time is it, can you run this callable, and run this one (with its
retries and timeouts). Two more have defaults: how to wait for an operator (for
parked undos) and whether to be told where the saga stands. Adapters
translate; they never decide what to compensate.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from typing import Any

from sagakit._context import Phase, StepContext
from sagakit._options import RetryPolicy, StepOptions
from sagakit._report import SagaStatus

__all__ = ["Backend", "StepCall"]


class StepCall:
    """One do or undo the core asks a backend to run; one per do and one per undo."""

    __slots__ = ("args", "attempts", "context", "fn", "options", "retry_policy")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        options: StepOptions,
        retry_policy: RetryPolicy | None,
        context: StepContext,
    ) -> None:
        self.fn = fn
        """The do or undo, exactly as the user passed it."""
        self.args = args
        """Positional args; the same for the do and the undo of a step."""
        self.options = options
        """The step's options merged over the saga's defaults."""
        self.retry_policy = retry_policy
        """The policy of this phase; `None` means the backend's default."""
        self.context = context
        """What `current_step()` answers inside the call."""
        self.attempts: int | None = None
        """Set by the backend: attempts made, when known; 0: never started (no undo then)."""

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
        every step.

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

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait until `event` is set (True), or `seconds` pass on this clock (False).

        What a saga with parked undos waits on for an operator's decision; the
        core sets `event` when one arrives. This default waits in real time;
        the in-memory backend waits on its virtual clock, the Temporal one on a
        workflow condition (durable: one timer at most, only with a timeout).
        """
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def progress(self, status: SagaStatus, detail: str) -> None:  # noqa: B027 - optional hook
        """Told where the saga stands whenever that changes; by default, ignored.

        Called when a step starts ("step 3 charge_payment"), as the unwind
        goes ("compensating 2/4 refund_payment"), when undos park and when the
        saga ends. Only backends whose `tracks_progress` is true are told:
        the Temporal one shows it in the UI and search attributes.
        """

    tracks_progress: bool = False
    """Whether the core calls `progress` (formatting its detail costs per step)."""

    def passes_through(self, exc: BaseException) -> bool:
        """Errors that end the saga's task without compensation.

        On Temporal, a workflow evicted from the worker's cache is torn down by
        an internal `BaseException`: compensating then would run undos of a
        saga that is still alive in the server's history.
        """
        return False
