"""A virtual clock: retry backoffs and injected delays pass in no real time."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["VirtualClock"]


class VirtualClock:
    """The in-memory executor's clock.

    Time moves only when something sleeps on it (a retry backoff, an injected
    delay) or a test calls `advance`, so a saga whose retries back off for an
    hour finishes at once, with the hour in its report. With
    `follow_real_time=True` it also moves with the wall clock, which makes
    timelines show real durations (the main job uses this).
    """

    def __init__(self, start: datetime | None = None, *, follow_real_time: bool = False) -> None:
        """Start the clock at `start` (default: now, in UTC)."""
        start = start or datetime.now(UTC)
        if start.tzinfo is None:
            raise ValueError("VirtualClock(start=...) needs an aware datetime, e.g. tzinfo=UTC")
        self._base = start.timestamp()
        self._skipped = 0.0
        self._follow = follow_real_time
        self._mono0 = time.monotonic()
        self._watchers: list[asyncio.Future[None]] = []
        self._alarms: list[float] = []  # when the waits in progress time out

    @property
    def follows_real_time(self) -> bool:
        """Whether the clock also moves with the wall clock."""
        return self._follow

    def time(self) -> float:
        """Seconds since the epoch on this clock."""
        if self._follow:
            return self._base + self._skipped + (time.monotonic() - self._mono0)
        return self._base + self._skipped

    def now(self) -> datetime:
        """The clock's current time, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    @property
    def skipped(self) -> timedelta:
        """Total virtual time that passed without real time passing."""
        return timedelta(seconds=self._skipped)

    def advance(self, by: timedelta | float) -> None:
        """Move the clock forward without waiting."""
        seconds = by.total_seconds() if isinstance(by, timedelta) else float(by)
        if seconds < 0:
            raise ValueError("a clock only moves forward: advance(by) needs by >= 0")
        self._skipped += seconds
        watchers, self._watchers = self._watchers, []
        for f in watchers:
            if not f.done():
                f.set_result(None)

    async def wait(self, event: asyncio.Event, seconds: float | None) -> bool:
        """Wait for `event` (True) until `seconds` pass on this clock (False), without moving it.

        Unlike `sleep`, this waits for someone else: the clock reaches the
        timeout when a test `advance`s it, when a `sleep` (an injected delay, a
        retry backoff) passes it (the sleep stops there first), or, following
        real time, when that much real time passes.
        """
        deadline = None if seconds is None else self.time() + seconds
        if deadline is not None:
            self._alarms.append(deadline)
        try:
            return await self._wait(event, deadline)
        finally:
            if deadline is not None:
                self._alarms.remove(deadline)

    async def _wait(self, event: asyncio.Event, deadline: float | None) -> bool:
        while not event.is_set():
            left = None if deadline is None else deadline - self.time()
            if left is not None and left <= 0:
                return False
            moved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._watchers.append(moved)
            waiter: asyncio.Future[Any] = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait(
                    [waiter, moved],
                    timeout=left if self._follow else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                waiter.cancel()
                if moved in self._watchers:
                    self._watchers.remove(moved)
        return True

    async def sleep(self, seconds: float) -> None:
        """Advance by `seconds` and yield to the event loop once (so others can run).

        A wait that times out on the way (a saga's deadline) times out at its
        own time: the clock stops there, and the sleeper yields until whoever
        waited has acted (a deadline cancels the sleeping step there).
        """
        target = self.time() + seconds
        while due := [a for a in self._alarms if self.time() < a <= target]:
            alarm = min(due)
            self.advance(max(alarm - self.time(), 0.0))
            # Until that wait has returned (and its caller acted, in the same step),
            # then once more: a cancel it sent this task is raised here.
            for _ in range(_MOST_TURNS):
                if alarm not in self._alarms:
                    break
                await asyncio.sleep(0)
            await asyncio.sleep(0)
        self.advance(max(target - self.time(), 0.0))
        await asyncio.sleep(0)


# Event-loop turns a timed-out wait may take to return (its `asyncio.wait` wakes in
# two or three): a bound, so a wait nobody drives cannot hold a sleeper forever.
_MOST_TURNS = 100
