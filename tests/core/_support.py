"""Helpers for the core tests: steps that write what they do into a journal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sagakit import RetryPolicy, SagaOptions

Fn = Callable[..., Awaitable[Any]]

NO_RETRY = RetryPolicy(maximum_attempts=1)
"""One attempt only: most tests are about unwinding, not retrying."""


def options(**kw: Any) -> SagaOptions:
    """Saga options with no retries unless `retry_policy` is given."""
    kw.setdefault("retry_policy", NO_RETRY)
    return SagaOptions(**kw)


class Journal:
    """An ordered record of every do and undo start and end, across concurrent steps.

    Events are appended as they happen on the one event loop, so their list order
    is their real order: "undo X started after do X ended" is an index comparison.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.active_undos = 0
        self.most_concurrent_undos = 0

    def step(
        self,
        name: str,
        *,
        fail: BaseException | None = None,
        undo_fail: BaseException | None = None,
        yields: int = 1,
        block: bool = False,
        undo_yields: int = 3,
    ) -> tuple[Fn, Fn]:
        """A do and an undo named `name` (the step's name) that journal their start and end.

        Args:
            name: the step's name (the do's `__name__`).
            fail: what the do raises after its yields.
            undo_fail: what the undo raises after its yields.
            yields: times the do yields to the loop before it ends.
            block: the do never ends on its own (it waits until cancelled).
            undo_yields: times the undo yields to the loop (so concurrent undos overlap).
        """

        async def do(*args: Any) -> str:
            self.events.append(("do", name, "start"))
            try:
                if block:
                    await asyncio.Event().wait()
                for _ in range(yields):
                    await asyncio.sleep(0)
                if fail is not None:
                    raise fail
                return name
            except asyncio.CancelledError:
                self.events.append(("do", name, "cancelled"))
                raise
            finally:
                self.events.append(("do", name, "end"))

        async def undo(*args: Any) -> None:
            self.events.append(("undo", name, "start"))
            self.active_undos += 1
            self.most_concurrent_undos = max(self.most_concurrent_undos, self.active_undos)
            try:
                for _ in range(undo_yields):
                    await asyncio.sleep(0)
                if undo_fail is not None:
                    raise undo_fail
            finally:
                self.active_undos -= 1
                self.events.append(("undo", name, "end"))

        do.__name__ = do.__qualname__ = name
        undo.__name__ = undo.__qualname__ = f"undo_{name}"
        return do, undo

    def index(self, kind: str, name: str, edge: str) -> int:
        """Position of an event in the journal."""
        return self.events.index((kind, name, edge))

    def names(self, kind: str, edge: str = "start") -> list[str]:
        """Step names of the `kind` events with that edge, in the order they happened."""
        return [n for k, n, e in self.events if k == kind and e == edge]

    @property
    def undone(self) -> list[str]:
        """Steps whose undo started, in the order they started."""
        return self.names("undo")

    @property
    def done(self) -> list[str]:
        """Steps whose do started, in the order they started."""
        return self.names("do")

    def assert_no_undo_before_its_do_ended(self) -> None:
        """Every undo started after its own do had ended (or its do never started)."""
        for name in self.undone:
            start = self.index("undo", name, "start")
            if ("do", name, "start") in self.events:
                assert ("do", name, "end") in self.events, f"do {name} never ended"
                assert self.index("do", name, "end") < start, f"undo {name} overlapped its do"

    def assert_nothing_running_when_unwind_began(self) -> None:
        """By the first undo's start, every do that started had ended."""
        if not self.undone:
            return
        first = self.index("undo", self.undone[0], "start")
        for name in self.done:
            assert self.index("do", name, "end") < first, f"do {name} still ran during unwind"
