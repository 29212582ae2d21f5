"""The two sides every in-memory bench compares: a saga on sagakit, and the same by hand.

Each is a factory of N steps over one `do`/`undo` pair, the last do swapped for
`failing` when `fail` is set, so both sides run the same calls in the same order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from sagakit import Saga

Step = Callable[[int], Awaitable[Any]]


def sagakit_saga(
    do: Step, undo: Step, failing: Step, *, fail: bool, steps: int
) -> Callable[[Saga], Coroutine[Any, Any, int]]:
    """`steps` calls of `saga.step(do, undo, i)`; the last one's do is `failing` if `fail`."""
    last = steps - 1

    async def saga(s: Saga) -> int:
        total = 0
        for i in range(steps):
            total += await s.step(failing if fail and i == last else do, undo, i)
        return total

    return saga


def handwritten_saga(
    do: Step, undo: Step, failing: Step, *, fail: bool, steps: int
) -> Callable[[], Awaitable[int]]:
    """What a careful hand-written saga does: register the undo, run the do, unwind LIFO.

    Like sagakit, it registers each undo before its do, so the failing step's undo
    runs too, and an undo that fails does not stop the others.
    """
    last = steps - 1

    async def saga() -> int:
        undos: list[tuple[Step, int]] = []
        total = 0
        try:
            for i in range(steps):
                undos.append((undo, i))
                total += await (failing if fail and i == last else do)(i)
        except Exception as e:
            errors = []
            for u, arg in reversed(undos):
                try:
                    await u(arg)
                except Exception as ue:
                    errors.append(ue)
            raise RuntimeError("saga failed") from e
        return total

    return saga
