"""A saga workflow on DBOS that the recovery tests kill mid-saga, then start again.

    cd tests/dbos && PYTHONPATH=../.. python -m _crashing --db SYS --ledger LEDGER \
        --workflow-id ID [--fail-at ITEM] [--crash POINT] [--timeout SECONDS]

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
  before DBOS recorded the workflow's outcome.

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
from datetime import timedelta
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetWorkflowID

import sagakit
from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions
from sagakit.dbos import DBOSExecutor

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


async def cancel(item: str, fail: bool) -> None:
    """The undo: cancel `item` (also after its do failed: nothing booked, nothing changes)."""
    touch("undo", item, False)


async def trip(saga: Saga, items: list[str], fail_at: str | None) -> list[str]:
    """Book each item in turn; a crash point after each checkpointed step."""
    booked = []
    for item in items:
        booked.append(await saga.step(book, cancel, item, item == fail_at, name=item))
        crash_point(f"after:{item}")
    return booked


@DBOS.workflow()
async def trip_workflow(items: list[str], fail_at: str | None) -> list[str]:
    """The saga as a DBOS workflow."""
    try:
        return await DBOSExecutor(options=OPTIONS).run(trip, items, fail_at)
    finally:
        crash_point("end")


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
            handle = await DBOS.start_workflow_async(trip_workflow, list(ITEMS), args.fail_at)
    else:
        handle = await DBOS.retrieve_workflow_async(args.workflow_id)
    out: dict[str, Any] = {"pid": os.getpid(), "started": started}
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
