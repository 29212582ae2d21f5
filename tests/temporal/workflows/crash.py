"""A saga whose activities apply effects to sqlite, and a worker to run it in a subprocess.

Each do and undo inserts its effect keyed by `sagakit.idempotency_key()` (the
table's primary key is key + phase), so a retried attempt changes nothing; every
attempt is also logged, so tests can see that an attempt really ran twice. An
activity can be held at a gate (a file) after applying its effect and before
reporting back: the test kills the worker there, which is the case
idempotency keys exist for.

Run a worker: `python -m workflows.crash <server address> <task queue>`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    import sagakit
    from sagakit import RetryPolicy, Saga, SagaOptions
    from sagakit.temporal import TemporalExecutor

STEPS = ("a", "b", "c", "d")


@dataclass
class CrashJob:
    db: str
    gates: str
    """Directory of gate files: `hold-<phase>-<name>` holds that activity."""
    fail: list[str] = field(default_factory=list)
    fail_undo: list[str] = field(default_factory=list)
    """Undos that fail for good (non-retryable) until a `fixed-<name>` file is in `gates`."""
    park: bool = False
    """Park undos that fail for good, and alert `crash_alert` when one does."""
    deadline: float = 0.0
    """`SagaOptions.deadline` in seconds; 0: none."""


def connect(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS effects"
        " (key TEXT, phase TEXT, name TEXT, PRIMARY KEY (key, phase))"
    )
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT, phase TEXT, name TEXT, pid INT)")
    conn.execute("CREATE TABLE IF NOT EXISTS alerts (saga_id TEXT, status TEXT, parked TEXT)")
    return conn


async def _apply(job: CrashJob, name: str, phase: str) -> str:
    import os

    key = sagakit.idempotency_key()
    with connect(job.db) as conn:
        conn.execute("INSERT INTO attempts VALUES (?, ?, ?, ?)", (key, phase, name, os.getpid()))
        conn.execute("INSERT OR IGNORE INTO effects VALUES (?, ?, ?)", (key, phase, name))
    gates = Path(job.gates)
    if (gates / f"hold-{phase}-{name}").exists():
        (gates / f"reached-{phase}-{name}").touch()
        while (gates / f"hold-{phase}-{name}").exists():
            activity.heartbeat()
            await asyncio.sleep(0.1)
    if phase == "do" and name in job.fail:
        raise ApplicationError(f"{name} failed", type="Boom", non_retryable=True)
    if phase == "undo" and name in job.fail_undo and not (gates / f"fixed-{name}").exists():
        raise ApplicationError(f"undo {name} failed", type="UndoBoom", non_retryable=True)
    return f"{phase}-{name}"


@activity.defn
async def crash_alert(report: sagakit.SagaReport) -> None:
    """`on_compensation_failed`: one row per call, with what it was told."""
    import os

    parked = ",".join(str(p.seq) for p in report.parked)
    with connect(os.environ["CRASH_ALERT_DB"]) as conn:
        conn.execute("INSERT INTO alerts VALUES (?, ?, ?)", (report.saga_id, report.status, parked))


def _make(name: str, phase: str) -> Callable[[CrashJob], Awaitable[str]]:
    async def fn(job: CrashJob) -> str:
        return await _apply(job, name, phase)

    fn.__name__ = fn.__qualname__ = f"crash_{phase}_{name}"
    return activity.defn(name=fn.__name__)(fn)


DO = {n: _make(n, "do") for n in STEPS}
UNDO = {n: _make(n, "undo") for n in STEPS}
ACTIVITIES = [*DO.values(), *UNDO.values(), crash_alert]


async def crash_saga(saga: Saga, job: CrashJob) -> list[str]:
    return [await saga.step(DO[n], UNDO[n], job) for n in STEPS]


@workflow.defn
class CrashWorkflow:
    @workflow.run
    async def run(self, job: CrashJob) -> list[str]:
        options = SagaOptions(
            start_to_close_timeout=timedelta(seconds=60),
            # A killed worker's attempt is noticed by its missing heartbeats.
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100)),
            on_undo_failure="park" if job.park else "fail",
            on_compensation_failed=crash_alert if job.park else None,
            deadline=timedelta(seconds=job.deadline) if job.deadline else None,
        )
        return await TemporalExecutor(options=options).run(crash_saga, job)


async def _serve(address: str, task_queue: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from sagakit.temporal import SagakitPlugin

    client = await Client.connect(address)
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[CrashWorkflow],
        activities=ACTIVITIES,
        plugins=[SagakitPlugin()],
        # After a kill, the workflow's next task must not wait 10 s on the dead
        # worker's sticky queue.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),
    )
    print("worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))
