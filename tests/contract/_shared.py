"""What the tests and the in-process Temporal worker share: plan, journal, steps, sagas.

Every do and undo is an `@activity.defn` function: the in-memory executor runs
activities too (in temporalio's `ActivityEnvironment`), so the very same step
functions run on both backends, and `activity.info().attempt` tells a retry
apart on both. A `Plan` (every step's first arg) says which steps fail, fail
a few times first, or hang; each do and undo appends an `Entry` to
`JOURNAL[plan.run]`. The Temporal worker runs in the test's process and event
loop, so the journal is a plain dict here too.

The generic workflow (`_workflow.py`) finds the saga function to run in
`SAGAS`, filled by the runner just before it starts the workflow. This module
is passed through the workflow sandbox, so both see the same dict.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

import sagakit
from sagakit import Saga, StepContext

STEPS = ("a", "b", "c", "d", "e")

WAIT_LIMIT = 3.0
"""Seconds a step waits for something in the journal before it gives up."""


@dataclass
class Plan:
    """What a contract saga does; the same object is the first arg of every do and undo."""

    run: str = field(default_factory=lambda: f"run-{uuid.uuid4()}")
    """Key of this test's journal."""
    steps: list[str] = field(default_factory=lambda: ["a", "b", "c"])
    """The steps of the `steps` saga, in order."""
    fail: list[str] = field(default_factory=list)
    """Dos that fail for good (non-retryable `Boom`)."""
    flaky: dict[str, int] = field(default_factory=dict)
    """Do -> how many attempts fail (retryable `Flaky`) before it succeeds."""
    fail_undo: list[str] = field(default_factory=list)
    """Undos that fail for good (non-retryable `UndoBoom`)."""
    flaky_undo: dict[str, int] = field(default_factory=dict)
    """Undo -> how many attempts fail (retryable `Flaky`) before it succeeds."""
    hang: list[str] = field(default_factory=list)
    """Dos that take effect, then hang (heartbeating) until cancelled or timed out."""
    wait_for: dict[str, str] = field(default_factory=dict)
    """Do -> a journal event (`"do:b"`) it waits for before it takes effect."""
    undo_delay: float = 0.0
    """Seconds every undo takes."""
    rendezvous: int = 0
    """Every undo waits (up to `WAIT_LIMIT`) until this many undos have started."""


@dataclass(frozen=True)
class Entry:
    """One do or undo attempt, as the function itself saw it."""

    event: str
    """`ran` (it took effect), `cancelled`, or `ended` (an undo returning)."""
    phase: str
    """`do` or `undo`."""
    name: str
    """The function's letter (`a`) or name (`charge`)."""
    attempt: int
    """`activity.info().attempt`."""
    key: str
    """`sagakit.idempotency_key()`."""
    step: StepContext
    """`sagakit.current_step()`."""
    args: tuple[Any, ...] = ()
    """The args after the plan."""


JOURNAL: defaultdict[str, list[Entry]] = defaultdict(list)

FIXED: set[tuple[str, str]] = set()
"""(plan.run, undo name) of the `fail_undo` undos whose cause an operator fixed since."""


def fix(plan: Plan, name: str) -> None:
    """Fix what made undo `name` fail for good: its next attempt succeeds (both backends)."""
    FIXED.add((plan.run, name))


def journal(plan: Plan) -> list[Entry]:
    """Every entry of the plan's runs, in the order they happened."""
    return JOURNAL[plan.run]


def ran(plan: Plan) -> list[str]:
    """`phase:name` of every attempt that took effect, in order."""
    return [f"{e.phase}:{e.name}" for e in JOURNAL[plan.run] if e.event == "ran"]


def attempts(plan: Plan, phase: str, name: str) -> list[Entry]:
    """The attempts of one do or undo that took effect."""
    return [e for e in JOURNAL[plan.run] if e.event == "ran" and (e.phase, e.name) == (phase, name)]


def most_concurrent_undos(plan: Plan) -> int:
    """The most undos that were running at one time."""
    running = most = 0
    for e in JOURNAL[plan.run]:
        if e.phase == "undo" and e.event == "ran":
            running += 1
            most = max(most, running)
        elif e.phase == "undo" and e.event == "ended":
            running -= 1
    return most


async def until(predicate: Callable[[], bool], seconds: float = WAIT_LIMIT) -> bool:
    """Wait until `predicate()` holds (heartbeating inside an activity); whether it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() > deadline:
            return False
        if activity.in_activity():
            activity.heartbeat()
        await asyncio.sleep(0.01)
    return True


def _entry(plan: Plan, event: str, phase: str, name: str, *args: Any) -> Entry:
    entry = Entry(
        event=event,
        phase=phase,
        name=name,
        attempt=activity.info().attempt,
        key=sagakit.idempotency_key(),
        step=sagakit.current_step(),
        args=args,
    )
    JOURNAL[plan.run].append(entry)
    return entry


async def _do(plan: Plan, name: str) -> str:
    if name in plan.wait_for:
        await until(lambda: plan.wait_for[name] in ran(plan))
    entry = _entry(plan, "ran", "do", name)
    if name in plan.hang:
        try:
            await until(lambda: False, seconds=60)
        except asyncio.CancelledError:
            _entry(plan, "cancelled", "do", name)
            raise
    if entry.attempt <= plan.flaky.get(name, 0):
        raise ApplicationError(f"do {name} flaked on attempt {entry.attempt}", type="Flaky")
    if name in plan.fail:
        raise ApplicationError(f"do {name} failed", type="Boom", non_retryable=True)
    return f"did {name}"


def _undos_started(plan: Plan) -> int:
    return sum(e.phase == "undo" and e.event == "ran" for e in JOURNAL[plan.run])


async def _undo(plan: Plan, name: str) -> None:
    entry = _entry(plan, "ran", "undo", name)
    try:
        if plan.rendezvous:
            await until(lambda: _undos_started(plan) >= plan.rendezvous)
        if plan.undo_delay:
            await asyncio.sleep(plan.undo_delay)
    finally:
        _entry(plan, "ended", "undo", name)
    if entry.attempt <= plan.flaky_undo.get(name, 0):
        raise ApplicationError(f"undo {name} flaked on attempt {entry.attempt}", type="Flaky")
    if name in plan.fail_undo and (plan.run, name) not in FIXED:
        raise ApplicationError(f"undo {name} failed", type="UndoBoom", non_retryable=True)


def _activity(
    name: str, body: Callable[[Plan, str], Awaitable[Any]]
) -> Callable[[Plan], Awaitable[Any]]:
    phase = body.__name__.lstrip("_")

    async def fn(plan: Plan) -> Any:
        return await body(plan, name)

    fn.__name__ = fn.__qualname__ = f"{phase}_{name}"
    return activity.defn(name=fn.__name__)(fn)


DO = {n: _activity(n, _do) for n in STEPS}
"""`do_a` ... `do_e`: take effect (journal), then fail, flake or hang as the plan says."""
UNDO = {n: _activity(n, _undo) for n in STEPS}
"""`undo_a` ... `undo_e`: journal, then fail or flake as the plan says."""


@activity.defn
async def charge(plan: Plan, account: str, cents: int) -> str:
    """A do with args of its own, after the plan."""
    _entry(plan, "ran", "do", "charge", account, cents)
    return f"charged {cents} to {account}"


@activity.defn
async def refund(plan: Plan, account: str, cents: int) -> None:
    """The undo of `charge`: the same args."""
    _entry(plan, "ran", "undo", "refund", account, cents)


@activity.defn
async def undo_nothing() -> None:
    """An undo that takes no args: unfit for any step that passes some."""


def _undo_seeing_result(name: str) -> Callable[[Plan, str | None], Awaitable[None]]:
    async def fn(plan: Plan, result: str | None) -> None:
        _entry(plan, "ran", "undo", name, result)

    fn.__name__ = fn.__qualname__ = f"undo_{name}_seeing_result"
    return activity.defn(name=fn.__name__)(fn)


UNDO_SEEING_RESULT = {n: _undo_seeing_result(n) for n in STEPS}

# Each made function is also a name of this module, where its `__qualname__` says it
# is: pickle finds it there (DBOS pickles a workflow's input, an undo plan included).
globals().update({f.__name__: f for f in (*DO.values(), *UNDO.values())})
globals().update({f.__name__: f for f in UNDO_SEEING_RESULT.values()})
"""`undo_a_seeing_result` ...: the undo of `do_a` for `pass_result=True`; journals the
result it was given as its one arg (`Entry.args == (result,)`)."""


@dataclass(frozen=True)
class Account:
    """What `open_account` returns: a typed result for its undo to receive."""

    number: str
    owner: str


@activity.defn
async def open_account(plan: Plan, owner: str) -> Account:
    """A do that returns a dataclass; fails (non-retryable `Boom`) if the plan says so."""
    _entry(plan, "ran", "do", "open_account", owner)
    if "open_account" in plan.fail:
        raise ApplicationError("open_account failed", type="Boom", non_retryable=True)
    return Account(number=f"acct-of-{owner}", owner=owner)


@activity.defn
async def close_account(plan: Plan, owner: str, account: Account | None) -> None:
    """The undo of `open_account` with `pass_result=True`: its args, then the account."""
    _entry(plan, "ran", "undo", "close_account", owner, account)


class Ledger(BaseModel):
    """What `open_ledger` returns: a pydantic result (for the pydantic data converter)."""

    owner: str
    opened: date
    balance: Decimal


@activity.defn
async def open_ledger(plan: Plan, owner: str) -> Ledger:
    """A do that returns a pydantic model."""
    _entry(plan, "ran", "do", "open_ledger", owner)
    return Ledger(owner=owner, opened=date(2026, 12, 1), balance=Decimal("10.50"))


@activity.defn
async def close_ledger(plan: Plan, owner: str, ledger: Ledger | None) -> None:
    """The undo of `open_ledger` with `pass_result=True`: its args, then the ledger."""
    _entry(plan, "ran", "undo", "close_ledger", owner, ledger)


ACTIVITIES: list[Callable[..., Any]] = [
    *DO.values(),
    *UNDO.values(),
    *UNDO_SEEING_RESULT.values(),
    charge,
    refund,
    undo_nothing,
    open_account,
    close_account,
    open_ledger,
    close_ledger,
]
"""Every activity, for the Temporal worker."""


SagaFn = Callable[[Saga, Plan], Coroutine[Any, Any, Any]]

SAGAS: dict[str, SagaFn] = {}
"""Saga functions by `module.qualname`, for the generic workflow."""


def register(saga_fn: SagaFn) -> str:
    """Make `saga_fn` findable by the generic workflow; its name there."""
    name = f"{saga_fn.__module__}.{saga_fn.__qualname__}"
    SAGAS[name] = saga_fn
    return name


CALLABLES: dict[str, dict[str, Any]] = {}
"""Options that hold functions (`resolve_check`), by a key the generic workflow is given."""


def register_callables(fields: dict[str, Any]) -> str | None:
    """Make option fields that are functions findable by the generic workflow; their key."""
    if not fields:
        return None
    key = str(uuid.uuid4())
    CALLABLES[key] = fields
    return key


@dataclass
class SagaCall:
    """The generic workflow's one arg: which saga, with which options, on which plan."""

    saga: str
    """The saga function's name in `SAGAS`."""
    options: str
    """`SagaOptions` as JSON, but for the fields in `CALLABLES[callables]`."""
    plan: Plan
    callables: str | None = None
    """The key of the options' functions in `CALLABLES`, if any."""
    resume: Any = None
    """An undo plan for `run(..., resume=)`, as the executor is to get it: `Any`, so a
    hand-edited one reaches it as JSON, and is refused there (an `UndoPlan` here
    would fail the workflow task at decoding, again and again)."""


async def steps(saga: Saga, plan: Plan) -> list[str]:
    """One step per name in `plan.steps`, each with its undo: the workhorse saga."""
    return [await saga.step(DO[n], UNDO[n], plan) for n in plan.steps]
