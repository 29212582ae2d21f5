"""What a sagakit saga costs on DBOS, against the hand-written DBOS workflow with the same steps.

The hand-written saga (`_dbos_sides.hand_written`: a list of undos, `try`/`except`,
`reversed`, each do and undo a DBOS step) and the same saga on sagakit
(`_dbos_sides.with_sagakit`: `DBOSExecutor`, one attempt per step) run in one process
on one DBOS, its system database a SQLite file in a temp directory (no server). In one
run, the sides alternating (and which goes first alternating by round), it prints
each measure and the ratio sagakit / hand-written:

1. wall time per saga, from `DBOS.start_workflow_async` to the handle's result: 5 steps
   that succeed, 5 steps failing at step 5 (5 undos run), 50 steps failing at step 50;
   each round runs a batch of sagas per side, one of each side in turn; the median of
   the rounds' means. With it (informational), the CPU time per saga of the event
   loop's thread (the workflow, and sagakit in it) and of the process (DBOS's
   threads write SQLite): on a shared machine wall time moves by 10%, CPU less;
2. system-database rows and bytes per saga: every row DBOS keeps for the saga's
   workflow (and any child of it) in `workflow_status`, `workflow_input`,
   `workflow_output`, `operation_outputs`, `workflow_events`,
   `workflow_events_history`, `streams` and `notifications`; bytes are the stored
   values (text and blobs by their length, integers and reals as 8 bytes), so they
   count what the saga writes, not SQLite's pages. Then where the bytes are: per
   table, the step checkpoints' names, outputs and errors, and the workflow's error
   (on sagakit's side, how much of it is the pickled report);
3. (informational) the SQLite file's growth per saga over a batch of failing sagas:
   pages, indexes and all.

Budget: each ratio of 1. and 2. <= 1.10. Run: `python bench/dbos_overhead.py`
(1-4 minutes on 2 shared cores, by load) or `--quick` (under a minute). Exit status 1 if a
budget is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import pickle
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import load
from _dbos_sides import SIDES
from dbos import DBOS, DBOSConfig, SetWorkflowID

from sagakit import SagaFailed

BUDGET = 1.10
SHAPES = ((5, 0), (5, 5), (50, 50))
"""(steps, fail_at) of each saga measured; fail_at 0: it succeeds."""

TABLES = {
    "workflow_status": "workflow_uuid",
    "workflow_input": "workflow_uuid",
    "workflow_output": "workflow_uuid",
    "operation_outputs": "workflow_uuid",
    "workflow_events": "workflow_uuid",
    "workflow_events_history": "workflow_uuid",
    "streams": "workflow_uuid",
    "notifications": "destination_uuid",
}
"""Every table of DBOS's system database that holds rows of one workflow, by its id column."""


@dataclass
class Row:
    measure: str
    hand: float
    saga: float
    unit: str
    budget: float | None = BUDGET  # None: informational

    @property
    def ratio(self) -> float:
        return self.saga / self.hand

    @property
    def met(self) -> bool:
        return self.budget is None or self.ratio <= self.budget + 1e-9


def shape_name(steps: int, fail_at: int) -> str:
    return f"{steps} steps, succeeds" if not fail_at else f"{steps} steps failing at {fail_at}"


def interleaved(rounds: int) -> list[list[str]]:
    """The sides' order in each round: alternating, so drift hits both alike."""
    return [list(SIDES) if r % 2 == 0 else list(reversed(SIDES)) for r in range(rounds)]


async def run_one(side: str, steps: int, fail_at: int) -> str:
    """One saga of `side`, to its end; its workflow id (the same length on both sides)."""
    workflow: Callable[..., Coroutine[Any, Any, list[str]]] = SIDES[side]
    workflow_id = f"bench-{side}-{uuid.uuid4()}"
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(workflow, "order-42", steps, fail_at)
    try:
        await handle.get_result()
    except (SagaFailed, RuntimeError):
        if not fail_at:
            raise
    else:
        if fail_at:
            raise AssertionError(f"the {side} saga was meant to fail at step {fail_at}")
    return workflow_id


# -- 1. wall time -------------------------------------------------------------------------


async def wall_times(rounds: int, batch: int) -> list[Row]:
    """Wall time per saga of each shape, the sides taking turns saga by saga; and CPU.

    Each round runs `n` sagas per side, one of each in turn (the side that goes
    first alternating by round), so load and SQLite's own pace hit both alike.
    The CPU rows (informational) say where wall time goes: the event loop's
    thread runs the workflow (and sagakit); DBOS's own threads write SQLite.
    """
    rows = []
    clocks = {"wall": time.perf_counter, "loop": time.thread_time, "cpu": time.process_time}
    for steps, fail_at in SHAPES:
        n = max(1, batch * 5 // steps)
        for side in SIDES:  # warm up: first imports, first statements prepared
            await run_one(side, steps, fail_at)
        per: dict[tuple[str, str], list[float]] = {(c, side): [] for c in clocks for side in SIDES}
        for order in interleaved(rounds):
            spent = dict.fromkeys(per, 0.0)
            for _ in range(n):
                for side in order:
                    start = {c: clock() for c, clock in clocks.items()}
                    await run_one(side, steps, fail_at)
                    for c, clock in clocks.items():
                        spent[c, side] += clock() - start[c]
            for key, total in spent.items():
                per[key].append(total / n * 1e3)
        med = {key: statistics.median(v) for key, v in per.items()}
        what = shape_name(steps, fail_at)
        for c, label, budget in (
            ("wall", "wall time", BUDGET),
            ("loop", "  event-loop thread CPU", None),
            ("cpu", "  process CPU (all threads)", None),
        ):
            rows.append(
                Row(f"{label} per saga, {what}", med[c, "hand"], med[c, "saga"], "ms", budget)
            )
    return rows


# -- 2. rows and bytes -----------------------------------------------------------------


def stored(db: sqlite3.Connection, workflow_id: str) -> dict[str, tuple[int, int]]:
    """(rows, bytes) per table that the workflow and its children keep in the system database."""
    ids = [workflow_id] + [
        r[0]
        for r in db.execute(
            "SELECT workflow_uuid FROM workflow_status WHERE parent_workflow_id = ?", (workflow_id,)
        )
    ]
    found: dict[str, tuple[int, int]] = {}
    for table, key in TABLES.items():
        columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
        size = " + ".join(
            f"CASE typeof(\"{c}\") WHEN 'null' THEN 0 WHEN 'integer' THEN 8 WHEN 'real' THEN 8 "
            f'ELSE length(CAST("{c}" AS BLOB)) END'
            for c in columns
        )
        marks = ", ".join("?" * len(ids))
        count, total = db.execute(
            f"SELECT count(*), coalesce(sum({size}), 0) FROM {table} WHERE {key} IN ({marks})",
            ids,
        ).fetchone()
        if count:
            found[table] = (count, total)
    return found


def column_bytes(db: sqlite3.Connection, table: str, column: str, workflow_id: str) -> int:
    """The stored bytes of one column over a workflow's rows of `table`."""
    (total,) = db.execute(
        f'SELECT coalesce(sum(length(CAST("{column}" AS BLOB))), 0) FROM {table} '
        "WHERE workflow_uuid = ?",
        (workflow_id,),
    ).fetchone()
    return int(total)


def where_the_bytes_are(db: sqlite3.Connection, side: str, workflow_id: str) -> list[str]:
    """Lines that attribute a saga's bytes: per table, the step checkpoints, the error."""
    tables = ", ".join(f"{t} {r} rows {b:,} B" for t, (r, b) in stored(db, workflow_id).items())
    lines = [f"    {side:<5} {tables}"]
    names = [
        n
        for (n,) in db.execute(
            "SELECT function_name FROM operation_outputs WHERE workflow_uuid = ? "
            "ORDER BY function_id LIMIT 2",
            (workflow_id,),
        )
    ]
    columns = ", ".join(
        f"{c} {column_bytes(db, 'operation_outputs', c, workflow_id):,} B"
        for c in ("function_name", "output", "error")
    )
    lines.append(f"          step checkpoints: {columns} (names like {', '.join(names)})")
    (error,) = db.execute(
        "SELECT error FROM workflow_output WHERE workflow_uuid = ?", (workflow_id,)
    ).fetchone()
    if error is not None:
        # DBOS's default serializer: the error pickled, in base64. The bench's own data.
        failed = pickle.loads(base64.b64decode(error))
        what = f"{type(failed).__name__} {len(error):,} B"
        if isinstance(failed, SagaFailed):
            report = len(base64.b64encode(pickle.dumps(failed.report)))
            what += f", of which its report {report:,} B pickled ({len(failed.report.steps)} steps)"
        cause = failed.__cause__
        what += f"; cause {type(cause).__name__ if cause is not None else 'lost'}"
        lines.append(f"          the workflow's error: {what}")
    return lines


async def rows_and_bytes(path: Path, rounds: int) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    breakdown: list[str] = []
    db = sqlite3.connect(path)
    try:
        for steps, fail_at in SHAPES:
            per: dict[str, list[dict[str, tuple[int, int]]]] = {side: [] for side in SIDES}
            last: dict[str, str] = {}
            for order in interleaved(rounds):
                for side in order:
                    last[side] = await run_one(side, steps, fail_at)
                    per[side].append(stored(db, last[side]))
            what = shape_name(steps, fail_at)
            for i, (label, unit) in enumerate((("rows", ""), ("bytes", "B"))):
                med = {
                    side: statistics.median(sum(t[i] for t in s.values()) for s in samples)
                    for side, samples in per.items()
                }
                rows.append(
                    Row(f"system-DB {label} per saga, {what}", med["hand"], med["saga"], unit)
                )
            breakdown.append(f"  {what}:")
            for side in SIDES:
                breakdown += where_the_bytes_are(db, side, last[side])
    finally:
        db.close()
    return rows, breakdown


# -- 3. file growth ------------------------------------------------------------------------


def file_bytes(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        (size,) = db.execute("PRAGMA page_size").fetchone()
    finally:
        db.close()
    return int(pages * size)


async def growth(path: Path, n: int) -> list[Row]:
    """File growth per saga; the sides take turns in chunks, as pages fill unevenly."""
    grown = dict.fromkeys(SIDES, 0)
    chunks = 4
    for order in interleaved(chunks):
        for side in order:
            before = file_bytes(path)
            for _ in range(n // chunks):
                await run_one(side, 5, 5)
            grown[side] += file_bytes(path) - before
    per = {side: grown[side] / (n // chunks * chunks) for side in SIDES}
    return [
        Row(
            f"SQLite file growth per saga, 5 steps failing at 5 ({n} sagas)",
            per["hand"],
            per["saga"],
            "B",
            None,
        )
    ]


# -- the run -------------------------------------------------------------------------------


def machine() -> str:
    return (
        f"{platform.platform()}; cpu_count={os.cpu_count()}; python {platform.python_version()}; "
        f"{load()}"
    )


def show(rows: list[Row]) -> None:
    print(f"{'measure':<58}{'hand':>10}{'sagakit':>10}  {'ratio':>6}  budget")
    for r in rows:
        budget = "informational" if r.budget is None else f"<= {r.budget:.2f}x"
        missed = "" if r.met else "  MISSED"
        print(
            f"{r.measure:<58}{r.hand:>10,.1f}{r.saga:>10,.1f}  {r.ratio:>6.3f}  {budget}{missed}",
            flush=True,
        )


async def main(quick: bool) -> int:
    rounds, batch = (5, 10) if quick else (11, 20)
    workdir = Path(tempfile.mkdtemp(prefix="sagakit-bench-dbos-"))
    path = workdir / "dbos.sqlite3"
    config: DBOSConfig = {
        "name": "sagakit-bench",
        "system_database_url": f"sqlite:///{path}",
        "log_level": "CRITICAL",  # DBOS logs each failed workflow, with its traceback, at ERROR
    }
    print(machine())
    print(
        f"{'quick' if quick else 'full'} run: median of {rounds} rounds, sides alternating; "
        f"system database {path}",
        flush=True,
    )
    DBOS(config=config)
    try:
        DBOS.launch()
        rows = await wall_times(rounds, batch)
        show(rows)
        part, breakdown = await rows_and_bytes(path, 3)
        rows += part
        rows += await growth(path, 50 if quick else 200)
    finally:
        DBOS.destroy(destroy_registry=False)
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    show(rows)
    print("\nwhere the bytes are: the last saga of each side")
    print("\n".join(breakdown))
    print(f"\nend: {machine()}")
    return 0 if all(r.met for r in rows) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and smaller batches")
    sys.exit(asyncio.run(main(parser.parse_args().quick)))
