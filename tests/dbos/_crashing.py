"""A saga workflow on DBOS that the recovery tests kill mid-saga, then start again.

    cd tests/dbos && PYTHONPATH=../.. python -m _crashing --db SYS --ledger LEDGER \
        --workflow-id ID [--fail-at ITEM] [--crash POINT] [--timeout SECONDS] \
        [--stuck ITEM --park-timeout SECONDS]

It books a car, a hotel and a flight (one `saga.step` each; `--fail-at flight`: the
flight's do raises `SoldOut` and the saga unwinds). Each do and undo writes to a
ledger, a SQLite file of its own: every attempt (the process, the step, the key it
read from `idempotency_key()`), and its effect, once per key (`INSERT OR IGNORE`: the
dedupe that DBOS's at-least-once steps need). At `--crash POINT` the process ends at
once with `os._exit(CRASH_EXIT)`, as a power cut would, the first time only (the
ledger remembers it), so the same command run again recovers and goes on:

* `do:ITEM:before` / `do:ITEM:after`: in ITEM's do, before or after its effect
  (after: the effect is applied but DBOS has not checkpointed the step);
* `undo:ITEM:before` / `undo:ITEM:after`: the same in ITEM's undo;
* `after:ITEM`: in the saga function, after ITEM's step was checkpointed and before
  the next one starts;
* `end`: in the workflow, once the saga ended (returned, or raised `SagaFailed`),
  before DBOS recorded the workflow's outcome;
* `retry:ITEM`: in ITEM's undo retried by an operator (`--stuck`).

With `--stuck ITEM` that undo fails for good each time and parks
(`on_undo_failure="park"`, `--park-timeout`); the process that started the saga
resolves it with "retry" once it is listed.

A run starts the workflow if the system database does not have it, or else waits for
it (DBOS's launch recovers the pending workflows of this executor). It prints one JSON
line: the result, or the `SagaFailed` caught from the handle's result with its cause
chain and report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

import sagakit
from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions
from sagakit.dbos import DBOSExecutor, parked, resolve

ITEMS = ("car", "hotel", "flight")
CRASH_EXIT = 75
"""The exit status of a deliberate crash (`os._exit`)."""

OPTIONS = SagaOptions(
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=10),
        maximum_attempts=3,
        non_retryable_error_types=("SoldOut",),
    )
)


class SoldOut(Exception):
    """The business failure: retrying will not help."""


class Ledger:
    """What the steps did, in a SQLite file apart from DBOS's; one connection per call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._db() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS attempts (
                    n INTEGER PRIMARY KEY AUTOINCREMENT,
                    pid INTEGER NOT NULL, phase TEXT NOT NULL, item TEXT NOT NULL,
                    seq INTEGER NOT NULL, key TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS effects (
                    phase TEXT NOT NULL, key TEXT NOT NULL, item TEXT NOT NULL,
                    pid INTEGER NOT NULL, PRIMARY KEY (phase, key));
                CREATE TABLE IF NOT EXISTS crashes (point TEXT PRIMARY KEY);
                """
            )

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    def attempt(self, phase: str, item: str, seq: int, key: str) -> None:
        """Note one attempt of a do or undo, and the key it read."""
        with self._db() as db:
            db.execute(
                "INSERT INTO attempts (pid, phase, item, seq, key) VALUES (?, ?, ?, ?, ?)",
                (os.getpid(), phase, item, seq, key),
            )

    def apply(self, phase: str, item: str, key: str) -> None:
        """The effect, once per (phase, key): a repeated attempt changes nothing."""
        with self._db() as db:
            db.execute(
                "INSERT OR IGNORE INTO effects (phase, key, item, pid) VALUES (?, ?, ?, ?)",
                (phase, key, item, os.getpid()),
            )

    def tried(self, phase: str, item: str) -> bool:
        """Whether a do or undo of `item` was attempted before."""
        with self._db() as db:
            query = "SELECT 1 FROM attempts WHERE phase = ? AND item = ?"
            return db.execute(query, (phase, item)).fetchone() is not None

    def first_crash(self, point: str) -> bool:
        """Whether `point` has not crashed yet; it counts as crashed from now on."""
        with self._db() as db:
            return db.execute("INSERT OR IGNORE INTO crashes VALUES (?)", (point,)).rowcount == 1


LEDGER: Ledger | None = None
CRASH: str | None = None


def crash_point(point: str) -> None:
    """End the process at once, as a power cut would, if `point` is the one to crash at."""
    assert LEDGER is not None
    if point == CRASH and LEDGER.first_crash(point):
        sys.stdout.flush()
        os._exit(CRASH_EXIT)


def touch(phase: str, item: str, fail: bool) -> str:
    """One attempt of a do or undo: noted, maybe crashed, applied once per key."""
    assert LEDGER is not None
    key = sagakit.idempotency_key()
    LEDGER.attempt(phase, item, sagakit.current_step().seq, key)
    crash_point(f"{phase}:{item}:before")
    if fail:
        raise SoldOut(f"no {item} left")
    LEDGER.apply(phase, item, key)
    crash_point(f"{phase}:{item}:after")
    return f"{item} {key}"


async def book(item: str, fail: bool) -> str:
    """The do: book `item`, or `SoldOut` if `fail`."""
    return touch("do", item, fail)


async def cancel(item: str, fail: bool, stuck: bool = False) -> None:
    """The undo: cancel `item` (also after its do failed: nothing booked, nothing changes).

    `stuck`: it fails for good, every time; retried, it may crash first.
    """
    assert LEDGER is not None
    if stuck and LEDGER.tried("undo", item):
        crash_point(f"retry:{item}")
    touch("undo", item, stuck)


async def trip(
    saga: Saga, items: list[str], fail_at: str | None, stuck: str | None = None
) -> list[str]:
    """Book each item in turn; a crash point after each checkpointed step."""
    booked = []
    for item in items:
        undo = _stuck_cancel if item == stuck else cancel
        booked.append(await saga.step(book, undo, item, item == fail_at, name=item))
        crash_point(f"after:{item}")
    return booked


async def _stuck_cancel(item: str, fail: bool) -> None:
    await cancel(item, fail, stuck=True)


@DBOS.workflow()
async def trip_workflow(
    items: list[str], fail_at: str | None, stuck: str | None = None, park_timeout: float = 0.0
) -> list[str]:
    """The saga as a DBOS workflow; with `stuck`, parking for `park_timeout` seconds."""
    options = OPTIONS
    if stuck is not None:
        park = timedelta(seconds=park_timeout)
        options = OPTIONS.model_copy(update={"on_undo_failure": "park", "park_timeout": park})
    try:
        return await DBOSExecutor(options=options).run(trip, items, fail_at, stuck)
    finally:
        crash_point("end")


async def retry_when_parked(workflow_id: str) -> None:
    """As an operator would: wait until the stuck undo is listed, then resolve it "retry"."""
    while not (listed := await parked(workflow_id)):  # noqa: ASYNC110 - a DBOS event
        await asyncio.sleep(0.02)
    await resolve(workflow_id, listed[0].seq, "retry", by="ops")


def causes(error: BaseException) -> list[str]:
    """`Type: message` of `error` and of each `__cause__` below it."""
    chain: list[str] = []
    at: BaseException | None = error
    while at is not None and len(chain) < 10:
        chain.append(f"{type(at).__name__}: {at}")
        at = at.__cause__
    return chain


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # Launched on this event loop, DBOS recovers pending workflows onto it.
    DBOS.launch()
    started = await DBOS.get_workflow_status_async(args.workflow_id) is None
    if started:
        with SetWorkflowID(args.workflow_id):
            handle = await DBOS.start_workflow_async(
                trip_workflow, list(ITEMS), args.fail_at, args.stuck, args.park_timeout
            )
        if args.stuck is not None:
            await retry_when_parked(args.workflow_id)
    else:
        handle = await DBOS.retrieve_workflow_async(args.workflow_id)
    out: dict[str, Any] = {"pid": os.getpid(), "started": started}
    t0 = time.monotonic()
    try:
        out["result"] = await asyncio.wait_for(
            handle.get_result(polling_interval_sec=0.05), args.timeout
        )
    except SagaFailed as e:
        report = e.report
        out["failed"] = {
            "causes": causes(e),
            "status": report.status.value,
            "compensation_order": report.compensation_order,
            "undos": {s.name: s.undo.status.value for s in report.steps if s.undo is not None},
        }
    out["waited"] = time.monotonic() - t0  # for the saga's outcome, once launched
    return out


def main() -> int:
    global LEDGER, CRASH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="DBOS's system database")
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--workflow-id", required=True)
    parser.add_argument("--fail-at", choices=ITEMS)
    parser.add_argument("--crash", metavar="POINT")
    parser.add_argument("--timeout", type=float, default=30.0, help="for the saga's result")
    parser.add_argument("--stuck", choices=ITEMS, help="this undo fails for good and parks")
    parser.add_argument("--park-timeout", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()
    LEDGER, CRASH = Ledger(args.ledger), args.crash
    config: DBOSConfig = {
        "name": "sagakit-recovery",
        "system_database_url": f"sqlite:///{args.db}",
        "notification_listener_polling_interval_sec": 0.05,  # quicker to shut down
        "log_level": "CRITICAL",  # a failed workflow is logged at ERROR, with its traceback
    }
    DBOS(config=config)
    try:
        out = asyncio.run(run(args))
    finally:
        DBOS.destroy()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
