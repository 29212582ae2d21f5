"""A flaky network for the fake services: calls that fail before, or after, they took effect."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

__all__ = ["Glitch", "Glitches", "LostReply"]


class LostReply(ConnectionError):
    """The service did (or did not do) the work, but the caller never heard back.

    Retryable, like any network error: the activity is retried, and only the
    idempotency key keeps the retry from doing the work twice.
    """


@dataclass(frozen=True)
class Glitch:
    """The next `times` calls of `operation` fail; `after_effect` decides if the work happened."""

    operation: str
    times: int = 1
    after_effect: bool = False


class Glitches:
    """The glitch plan of one fake service, consumed call by call.

    Lives in the service object, not in the activities, so the same plan works
    on every backend: in memory and on an in-process Temporal worker.
    """

    def __init__(self, *glitches: Glitch) -> None:
        self._left: Counter[tuple[str, bool]] = Counter()
        self._fired: Counter[str] = Counter()
        self._calls: Counter[str] = Counter()
        # Activities of a Temporal worker may run on threads.
        self._lock = threading.Lock()
        for g in glitches:
            self._left[(g.operation, g.after_effect)] += g.times

    def before(self, operation: str) -> None:
        """Count a call; raise `LostReply` if a glitch of `operation` is due before its effect."""
        with self._lock:
            self._calls[operation] += 1
        self._maybe_fail(operation, after_effect=False)

    def after(self, operation: str) -> None:
        """Raise `LostReply` if a glitch of `operation` is due after it took effect."""
        self._maybe_fail(operation, after_effect=True)

    def fired(self, operation: str) -> int:
        """How many glitches of `operation` have fired so far."""
        return self._fired[operation]

    def calls(self, operation: str) -> int:
        """How many calls of `operation` the service received, glitched or not."""
        return self._calls[operation]

    def _maybe_fail(self, operation: str, *, after_effect: bool) -> None:
        with self._lock:
            if self._left[(operation, after_effect)] <= 0:
                return
            self._left[(operation, after_effect)] -= 1
            self._fired[operation] += 1
        when = "after it took effect" if after_effect else "before it took effect"
        raise LostReply(f"{operation}: connection reset {when} (injected glitch)")
