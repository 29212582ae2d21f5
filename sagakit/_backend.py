"""The seam between the core and a backend: five duties, four members with defaults.

The core (`_saga.py`, `_unwind.py`) owns registration, ordering, unwinding,
error collection and the report. A backend answers five questions: what is
this saga run called (`saga_id`), what time is it (`time`), can you run this
callable (`check`), run this one with its retries and timeouts (`call`), and
wait for this event or this long (`wait`). Four more have defaults: how an
error reads in the report (`describe_error`), which errors end the saga's
task without compensation (`passes_through`), how an undo plan travels
(`pack_plan`, `unpack_undo`), and which sub-saga runs apart (`sub_apart`:
Temporal's child workflows). Adapters translate; they never decide what to
compensate.

Every duty below is checked on every backend by `tests/contract/test_backend_duties.py`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable
from typing import Any

from sagakit._context import Phase, StepContext
from sagakit._exceptions import describe
from sagakit._options import RetryPolicy, StepOptions
from sagakit._plan import PlannedUndo, UndoPlan

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
        """The step's options merged over the saga's."""
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
        """A name for this saga run: unique, and stable across replays and restarts.

        `idempotency_key()` derives from it, so a key changes if it does.
        """

    @abc.abstractmethod
    def time(self) -> float:
        """Seconds since the epoch on this backend's clock (virtual, or `workflow.now()`).

        Every time in the report reads it; durable backends must answer the
        same in a replay.
        """

    @abc.abstractmethod
    def check(self, do: Any, undo: Any, options: StepOptions) -> None:
        """Refuse, before anything runs, a step this backend cannot run.

        `undo` is `None` for a step with nothing to undo (and for the alert
        hook, checked as a do). The core has already refused non-callables and
        coroutine objects and checked the arity; this adds what the backend
        alone knows. It runs for every step, before the step is registered: a
        refusal fails the saga at that step, whose do never ran.

        Raises:
            StepDefinitionError: with a message that names the fix.
            OptionsError: an option this backend needs is missing (a timeout on Temporal).
        """

    @abc.abstractmethod
    async def call(self, call: StepCall) -> Any:
        """Run `call.fn(*call.args)` to its end: retries, timeouts and all.

        Returns the result of the final attempt or raises its error. Two duties:

        * set `call.attempts` when known, and to 0 when the call was refused
          before it started (its args cannot travel): the core then does not
          run that step's undo, as nothing took effect;
        * when the awaiting task is cancelled, cancel the call and return
          (raising the cancel) only once it has really stopped, however many
          further cancels arrive: the core never starts an undo while its do
          may still be running.
        """

    @abc.abstractmethod
    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait until `event` is set (True), or `seconds` pass on this clock (False).

        The one timer of the seam: what the core and its policies wait on (the
        deadline waits for the saga function to settle, a parked undo for an
        operator's decision; the core sets `event`). `None` waits for the
        event alone. On a durable backend it must survive restarts (Temporal:
        a workflow condition, one timer in history only with `seconds`); in
        memory it runs on the virtual clock. It may answer False though the
        event was set in the same turn: the core looks again. A cancel of the
        waiting task propagates.
        """

    def describe_error(self, exc: BaseException) -> tuple[str, str]:
        """(type name, message) of an error for the report.

        An error with string `type` and `message` attributes (temporalio's
        `ApplicationError`) is described by those, so a business error reads the
        same on every backend. Adapters override it to see through their
        wrappers (Temporal's `ActivityError` to the `ApplicationError` inside).
        """
        return describe(exc)

    def passes_through(self, exc: BaseException) -> bool:
        """Errors that end the saga's task without compensation; none by default.

        On Temporal, a workflow evicted from the worker's cache is torn down by
        an internal `BaseException`: compensating then would run undos of a
        saga that is still alive in the server's history.
        """
        return False

    def pack_plan(self, plan: UndoPlan) -> UndoPlan:
        """`saga.undo_plan()`'s plan, made ready to travel to another run; as it is by default.

        The core hands it over with each undo and its args as registered. A
        backend whose plans leave the process packs them (Temporal: each undo
        by activity name, its args as payloads) and refuses, naming the fix,
        an undo that cannot travel or a plan past its size limit.

        Raises:
            StepDefinitionError: an undo that cannot travel; `PayloadTooLargeError`
                (a subclass) for a plan too large to travel.
        """
        return plan

    def unpack_undo(self, undo: PlannedUndo) -> tuple[Any, tuple[Any, ...], Any]:
        """What to call for a planned undo given to `run(..., resume=plan)`: (undo, args, result).

        `result` is the do's result for an undo with `pass_result` (packed like
        the args, so unpacked here too), else `None`.

        Raises:
            SagaDefinitionError: the planned undo cannot be unpacked (a hand-edited plan).
        """
        return undo.undo, tuple(undo.args), undo.result

    def sub_apart(self, fn: Any) -> Any:
        """A sub-saga this backend runs apart (Temporal: a child workflow), or `None`.

        `None` (the default) runs `fn` inline, on this run's builder. Otherwise
        an `async (saga, fn, args, name) -> result` that runs it and joins its
        undo plan to `saga`'s run (or raises `SagaFailed` once it unwound itself).
        """
        return None
