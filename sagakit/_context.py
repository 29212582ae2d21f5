"""The current step, as seen from inside a do or undo.

The core sets `_current` around every backend call. In memory the do runs in
that same context. On Temporal the adapter carries it across to the activity
worker in a header and sets it again there, so the same accessor works on
every backend.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from enum import StrEnum
from typing import NamedTuple, TypeVar

from sagakit._exceptions import NotInStepError

__all__ = ["DoOutcome", "Phase", "StepContext", "current_step", "idempotency_key"]


class Phase(StrEnum):
    """Which half of a step is running."""

    DO = "do"
    """The forward action."""
    UNDO = "undo"
    """The compensation."""


class DoOutcome(StrEnum):
    """What an undo knows of its do when it runs.

    `UNKNOWN` is the case registered-before exists for: the do was cancelled or
    timed out and may or may not have taken effect, so the undo must cope with
    both (which an idempotent undo keyed by `idempotency_key()` does).
    """

    PENDING = "pending"
    """The do has not ended (seen only from inside the do itself)."""
    SUCCEEDED = "succeeded"
    """The do returned: its effect took place."""
    FAILED = "failed"
    """The do raised; it may still have taken effect before raising."""
    UNKNOWN = "unknown"
    """The do was cancelled in flight (a sibling failed, or the saga was cancelled).
    A do whose worker was lost ends in a timeout, which counts as `FAILED`."""


class StepContext(NamedTuple):
    """Facts about the running do or undo; read them with `current_step()`.

    A named tuple: immutable, and made once per do and per undo.
    """

    saga_id: str
    """Unique per saga run, stable across retries, replays and worker restarts."""
    seq: int
    """The step's registration number within its saga, from 1."""
    name: str
    """The step's name."""
    phase: Phase
    """Whether the do or the undo is running."""
    do_outcome: DoOutcome = DoOutcome.PENDING
    """How the do ended, as known when the undo was scheduled."""
    key: str = ""
    """The idempotency key of a step carried from another run (an undo plan, a
    child workflow's sub-saga); empty for a step of this run."""

    @property
    def idempotency_key(self) -> str:
        """Shared by the step's do and undo; unique per saga run and step.

        `saga_id#seq`, or for a carried step the key its do saw in its own run.
        """
        return self.key or f"{self.saga_id}#{self.seq}"


_current: ContextVar[StepContext | None] = ContextVar("sagakit_current_step", default=None)


def _activity_id(ctx: StepContext, index: int = 1) -> str:
    """The activity id of `ctx`'s do or undo: `seq.name`, plus `.undo` for an undo.

    Prefixed `index/` for the `index`-th saga (from 2) of one Temporal workflow
    run; a child workflow step's id is the parent's workflow id, `.`, the same.
    The in-memory executor gives its activities the same ids. Temporal replay
    checks activity ids, so this format cannot change without breaking the
    replay of running workflows.
    """
    prefix = "" if index == 1 else f"{index}/"
    return f"{prefix}{ctx.seq}.{ctx.name}{'.undo' if ctx.phase is Phase.UNDO else ''}"


_T = TypeVar("_T")


def _reset(var: ContextVar[_T], token: Token[_T]) -> None:
    """`var.reset(token)`; nothing where it cannot be reset.

    A coroutine closed by the garbage collector runs its `finally` in another
    context; the value goes with the context it was set in.
    """
    # try/except, not contextlib.suppress: no context manager made twice per step.
    try:  # noqa: SIM105
        var.reset(token)
    except ValueError:
        pass


def _get() -> StepContext | None:
    """The running step's context, or None."""
    return _current.get()


def _require(accessor: str) -> StepContext:
    ctx = _get()
    if ctx is None:
        raise NotInStepError(
            f"{accessor}() was called outside a saga step: call it inside the do or "
            "undo function that saga.step(...) runs (on Temporal, install "
            "sagakit.temporal.SagakitPlugin on the worker that runs the activity)"
        )
    return ctx


def current_step() -> StepContext:
    """The step whose do or undo is running.

    Raises:
        NotInStepError: outside a do or undo run by a sagakit executor.
    """
    return _require("current_step")


def idempotency_key() -> str:
    """The idempotency key of the running step, shared by its do and undo.

    Stable across retries, replays and worker restarts; unique per saga run and
    step. Use it as the unique constraint or request id of the side effect so a
    retried do or a repeated undo changes nothing.

    Raises:
        NotInStepError: outside a do or undo run by a sagakit executor.
    """
    return _require("idempotency_key").idempotency_key
