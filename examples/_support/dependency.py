"""How activities reach their service: provided by whoever runs them, per context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar

__all__ = ["Dependency"]

T = TypeVar("T")


class Dependency(Generic[T]):
    """A service the activities of one example call, provided around a worker or an in-memory run.

    Temporal's own idiom is a class whose bound methods are the activities; a
    saga function, though, must name its steps the same way on every backend,
    so the examples keep module-level activities and inject the service through
    a context variable instead. A worker started inside `provide(...)` hands the
    value on to every activity task it starts (tasks copy their creator's
    context), and so does an in-memory run.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._var: ContextVar[T] = ContextVar(name)

    @contextmanager
    def provide(self, value: T) -> Iterator[T]:
        """Make `value` what `get()` returns inside the block (and in tasks started there)."""
        token = self._var.set(value)
        try:
            yield value
        finally:
            self._var.reset(token)

    def get(self) -> T:
        """The provided value.

        Raises:
            LookupError: nothing provided it: start the worker (or the in-memory
                run) inside `provide(...)`.
        """
        try:
            return self._var.get()
        except LookupError:
            raise LookupError(
                f"no {self._name} provided: start the worker (or the in-memory run) inside "
                f"`with {self._name.rsplit('.', 1)[-1].upper()}.provide(...)`"
            ) from None
