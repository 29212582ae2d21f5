"""Activities that journal what they did, so tests can assert order and keys.

Every do and undo appends an `Entry` to `JOURNAL[job.run]`; the in-process
worker shares this module with the test. `Job` says which steps fail, which
fail a few times first, and which block until cancelled.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

import sagakit

STEPS = ("a", "b", "c", "d", "e")


@dataclass
class Job:
    """What a test saga does; the same object is every do's and undo's arg."""

    run: str
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    fail: list[str] = field(default_factory=list)
    """Dos that fail (non-retryable)."""
    fail_undo: list[str] = field(default_factory=list)
    """Undos that fail (non-retryable)."""
    flaky: dict[str, int] = field(default_factory=dict)
    """Do name -> how many attempts fail (retryably) before it succeeds."""
    block: list[str] = field(default_factory=list)
    """Dos that heartbeat until they are cancelled."""
    block_undo: list[str] = field(default_factory=list)
    """Undos that heartbeat until they are cancelled."""
    parallel: bool = False
    keep_going: bool = True
    undo_delay: float = 0.0
    """Seconds every undo takes, to land a cancel while undos run."""
    secret: str = ""
    """A value that must never reach the history in plaintext (codec test)."""
    deadline: float = 0.0
    """`DeadlineWorkflow`'s deadline, in seconds."""


@dataclass(frozen=True)
class Entry:
    phase: str
    name: str
    key: str
    attempt: int
    outcome: str
    event: str = "ran"


JOURNAL: defaultdict[str, list[Entry]] = defaultdict(list)
STARTED: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)


def events(run: str, event: str = "ran") -> list[str]:
    """`phase:name` of the journal entries of one run, in order."""
    return [f"{e.phase}:{e.name}" for e in JOURNAL[run] if e.event == event]


async def _perform(job: Job, name: str, phase: str) -> str:
    step = sagakit.current_step()
    info = activity.info()
    entry = Entry(phase, name, sagakit.idempotency_key(), info.attempt, step.do_outcome.value)
    if name in (job.block if phase == "do" else job.block_undo):
        JOURNAL[job.run].append(
            Entry(phase, name, entry.key, info.attempt, entry.outcome, "started")
        )
        STARTED[job.run].set()
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            JOURNAL[job.run].append(
                Entry(phase, name, entry.key, info.attempt, entry.outcome, "cancelled")
            )
            raise
    JOURNAL[job.run].append(entry)
    if phase == "undo" and job.undo_delay:
        await asyncio.sleep(job.undo_delay)
    if phase == "do" and info.attempt <= job.flaky.get(name, 0):
        raise ApplicationError(f"{name} flaked on attempt {info.attempt}", type="Flaky")
    if (phase == "do" and name in job.fail) or (phase == "undo" and name in job.fail_undo):
        raise ApplicationError(f"{phase} {name} failed", type="Boom", non_retryable=True)
    # A result carrying the secret: it must reach the history only encrypted.
    return f"{phase}-{name}-{job.secret}" if job.secret else f"{phase}-{name}"


def _make(name: str, phase: str) -> Callable[[Job], Awaitable[str]]:
    async def fn(job: Job) -> str:
        return await _perform(job, name, phase)

    fn.__name__ = f"{phase}_{name}"
    fn.__qualname__ = fn.__name__
    return activity.defn(name=fn.__name__)(fn)


DO = {n: _make(n, "do") for n in STEPS}
UNDO = {n: _make(n, "undo") for n in STEPS}
ALL = [*DO.values(), *UNDO.values()]


@activity.defn
def sync_touch(job: Job) -> str:
    """A sync activity (thread pool): sees the step through the copied context."""
    JOURNAL[job.run].append(
        Entry("do", "sync", sagakit.idempotency_key(), activity.info().attempt, "pending")
    )
    return "sync"


def not_an_activity(job: Job) -> str:
    """A plain sync function: the Temporal backend must refuse it."""
    return "never"


# The saga coroutines of each run (every replay makes one), held weakly: a teardown
# test checks they were really collected, so that "nothing reported" means something.
ALIVE: defaultdict[str, list[weakref.ref[Any]]] = defaultdict(list)


def track(run: str, saga: Any) -> None:
    ALIVE[run].append(weakref.ref(saga))


def alive(run: str) -> int:
    """How many of the run's saga coroutines are still alive."""
    return sum(ref() is not None for ref in ALIVE[run])


def collect_garbage() -> None:
    gc.collect()
