"""Fault injection: make a step's do or undo fail, or take long, on chosen attempts."""

from __future__ import annotations

import copy
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from sagakit._context import Phase

__all__ = ["ALWAYS", "Fault", "InjectedFault", "fault_for"]

ALWAYS: None = None
"""`attempts=ALWAYS`: the fault hits every attempt."""


class InjectedFault(RuntimeError):
    """The error a `Fault` raises when it names none; retryable like any other."""


ErrorSpec = BaseException | type[BaseException] | Callable[[int], BaseException] | None


@dataclass(frozen=True)
class Fault:
    """One injected fault, matched by step name, phase and attempt number.

    Build them with `Fault.fail(...)` and `Fault.delay(...)`, and hand them to
    `InMemoryExecutor(faults=[...])`; the activities stay untouched.
    """

    step: str
    """The step's name (default: the do's function name)."""
    phase: Phase = Phase.DO
    """Whether it hits the do or the undo."""
    attempts: frozenset[int] | None = frozenset({1})
    """Attempt numbers (from 1) it hits; `None` (`ALWAYS`) hits every attempt."""
    error: ErrorSpec = None
    """What to raise: an instance, a class, or `attempt -> exception`; default `InjectedFault`."""
    after_effect: bool = False
    """Raise *after* the function ran: the effect happened, the caller saw a failure
    (a lost reply, a timeout after commit) - the case registered-before undos exist for."""
    latency: timedelta = field(default=timedelta(0))
    """Virtual time the attempt takes before it runs; past `start_to_close_timeout` it times out."""

    @classmethod
    def fail(
        cls,
        step: str,
        *,
        undo: bool = False,
        attempts: Collection[int] | Literal["always"] | None = (1,),
        error: ErrorSpec = None,
        after_effect: bool = False,
    ) -> Fault:
        """Make the step's do (or, with `undo=True`, its undo) raise on those attempts.

        Args:
            step: the step's name.
            undo: hit the undo instead of the do.
            attempts: attempt numbers from 1; `ALWAYS`/`"always"` for every attempt.
            error: exception (instance, class, or factory of the attempt number).
            after_effect: run the function first, then raise.
        """
        return cls(
            step=step,
            phase=Phase.UNDO if undo else Phase.DO,
            attempts=_attempts(attempts),
            error=error,
            after_effect=after_effect,
        )

    @classmethod
    def delay(
        cls,
        step: str,
        by: timedelta,
        *,
        undo: bool = False,
        attempts: Collection[int] | Literal["always"] | None = (1,),
    ) -> Fault:
        """Make the attempts take `by` of virtual time before running (for timeouts)."""
        if by < timedelta(0):
            raise ValueError("Fault.delay(by=...) needs a non-negative timedelta")
        return cls(
            step=step,
            phase=Phase.UNDO if undo else Phase.DO,
            attempts=_attempts(attempts),
            latency=by,
        )

    @property
    def raises(self) -> bool:
        """Whether it raises (a `fail` fault) rather than only taking time (a `delay`)."""
        return self.error is not None or not self.latency

    def hits(self, attempt: int) -> bool:
        """Whether this fault applies to that attempt."""
        return self.attempts is None or attempt in self.attempts

    def make_error(self, attempt: int) -> BaseException:
        """The exception to raise on that attempt (a fresh one each time)."""
        spec = self.error
        if spec is None:
            return InjectedFault(
                f"injected fault: {self.step} {self.phase.value} attempt {attempt}"
            )
        if isinstance(spec, BaseException):
            fresh: BaseException = copy.copy(spec)
            return fresh
        if isinstance(spec, type):
            built: BaseException = spec(
                f"injected fault: {self.step} {self.phase.value} attempt {attempt}"
            )
            return built
        made: BaseException = spec(attempt)
        return made


def _attempts(a: Collection[int] | str | None) -> frozenset[int] | None:
    if a is None or a == "always":
        return None
    if isinstance(a, str):
        raise ValueError(f"attempts must be attempt numbers or 'always', got {a!r}")
    out = frozenset(a)
    if not out or any((not isinstance(n, int)) or n < 1 for n in out):
        raise ValueError(f"attempts must be attempt numbers from 1, got {sorted(a)!r}")
    return out


def fault_for(faults: list[Fault], step: str, phase: Phase, attempt: int) -> Fault | None:
    """The first of `faults` that hits this attempt of this step's do or undo, if any."""
    for f in faults:
        if f.step == step and f.phase is phase and f.hits(attempt):
            return f
    return None
