"""A minimal backend, written as a backend author would: only the public seam.

It runs each call once, exactly as `await call.fn(*call.args)`, never sets
`call.attempts`, and writes down what it read off every call, so tests can
check what the core hands a backend (phase, context, options, retry policy).
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any

from sagakit import Phase, RetryPolicy, StepContext, StepOptions
from sagakit.backend import Backend, StepCall, run_saga

__all__ = ["Backend", "FakeBackend", "Seen", "StepCall", "run_saga"]

NOW = 1_900_000_000.0
"""The fake clock's start, in epoch seconds (2030-03-17)."""


@dataclass(frozen=True)
class Seen:
    """What the backend read off one call, when it was asked to run it."""

    phase: Phase
    context: StepContext
    fn: Any
    args: tuple[Any, ...]
    options: StepOptions
    retry_policy: RetryPolicy | None

    @property
    def name(self) -> str:
        """The step's name, from the call's context."""
        return self.context.name


class FakeBackend(Backend):
    """Runs every do and undo once, with no retries and no timeouts; attempts stay unknown."""

    def __init__(self, saga_id: str = "fake-1", now: float = NOW) -> None:
        self.id = saga_id
        self.now = now
        self.seen: list[Seen] = []
        self.checked: list[tuple[Any, Phase]] = []

    def saga_id(self) -> str:
        return self.id

    def time(self) -> float:
        return self.now

    def check(self, do: Any, undo: Any, options: StepOptions) -> None:
        self.checked.append((do, Phase.DO))
        if undo is not None:
            self.checked.append((undo, Phase.UNDO))

    async def call(self, call: StepCall) -> Any:
        self.seen.append(
            Seen(call.phase, call.context, call.fn, call.args, call.options, call.retry_policy)
        )
        result = call.fn(*call.args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def phases(self) -> list[tuple[str, Phase]]:
        """(step name, phase) of every call, in the order the backend was asked."""
        return [(s.name, s.phase) for s in self.seen]

    def of(self, phase: Phase) -> list[Seen]:
        """The calls of one phase, in order."""
        return [s for s in self.seen if s.phase is phase]
