"""Worker crashes: a worker killed with SIGKILL mid-saga, a fresh one finishes it.

The worker runs in a subprocess; activities apply their effect to sqlite keyed
by the idempotency key, then wait at a gate where the test kills the worker.
The attempt is retried on a fresh worker, re-applies its effect, and the key's
unique constraint keeps it applied once. A saga's deadline is a durable timer:
it fires on the server with no worker, and the next worker compensates.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import new_id
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from workflows.crash import STEPS, CrashJob, CrashWorkflow

from sagakit import ParkedUndo, SagaStateError, SagaStatus, StepStatus, UndoStatus
from sagakit.temporal import parked, report_from_failure, resolve

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

HERE = Path(__file__).parent
# The worker imports the checkout's sagakit, as the tests do, not an installed copy.
ROOT = HERE.parent.parent


def start_worker(
    env: WorkflowEnvironment, task_queue: str, alerts: Path | None = None
) -> subprocess.Popen[bytes]:
    address = env.client.service_client.config.target_host
    extra = {"CRASH_ALERT_DB": str(alerts)} if alerts is not None else {}
    return subprocess.Popen(
        [sys.executable, "-m", "workflows.crash", address, task_queue],
        cwd=HERE,
        env={
            **os.environ,
            **extra,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def wait_file(path: Path, seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not path.exists():  # noqa: ASYNC110, ASYNC240 - another process makes it; a stat is cheap
            await asyncio.sleep(0.05)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


class TestWorkerKilled:
    @pytest.mark.parametrize(
        ("phase", "name"),
        [("do", "b"), ("do", "d"), ("undo", "c"), ("undo", "a")],
        ids=["mid-forward", "in-failing-do", "mid-compensation", "last-undo"],
    )
    async def test_killed_worker_is_replaced_and_effects_apply_once(
        self, temporal_env: WorkflowEnvironment, tmp_path: Path, phase: str, name: str
    ) -> None:
        """Killed while an activity holds, the saga finishes on a new worker, each effect once."""
        client: Client = temporal_env.client
        db = tmp_path / "effects.sqlite3"
        job = CrashJob(db=str(db), gates=str(tmp_path), fail=["d"])
        hold = tmp_path / f"hold-{phase}-{name}"
        hold.touch()
        task_queue = f"crash-{uuid.uuid4()}"
        first = start_worker(temporal_env, task_queue)
        second = None
        try:
            handle = await client.start_workflow(
                CrashWorkflow.run, job, id=new_id("crash"), task_queue=task_queue
            )
            await wait_file(tmp_path / f"reached-{phase}-{name}")
            kill(first)
            hold.unlink()
            second = start_worker(temporal_env, task_queue)
            with pytest.raises(WorkflowFailureError) as ei:
                await asyncio.wait_for(handle.result(), 60)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    kill(proc)
        assert isinstance(ei.value.cause, ApplicationError)
        assert ei.value.cause.type == "SagaFailed"
        with sqlite3.connect(db) as conn:
            effects = conn.execute("SELECT phase, name FROM effects ORDER BY rowid").fetchall()
            attempts = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT pid) FROM attempts WHERE phase = ? AND name = ?",
                (phase, name),
            ).fetchone()
        # Every do and every undo took effect exactly once, in saga order.
        assert effects == [("do", n) for n in STEPS] + [("undo", n) for n in reversed(STEPS)]
        # The held activity really ran twice, once on each worker.
        assert attempts == (2, 2)


class TestParkedSagaSurvivesAKill:
    async def test_a_fresh_worker_resolves_what_a_killed_one_parked(
        self, temporal_env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        """Parked, the worker killed: a fresh worker takes the retry and compensates it once."""
        client: Client = temporal_env.client
        db = tmp_path / "effects.sqlite3"
        job = CrashJob(db=str(db), gates=str(tmp_path), fail=["d"], fail_undo=["b"], park=True)
        task_queue = f"park-{uuid.uuid4()}"
        first = start_worker(temporal_env, task_queue, alerts=db)
        second = None
        try:
            handle = await client.start_workflow(
                CrashWorkflow.run, job, id=new_id("park"), task_queue=task_queue
            )
            async with asyncio.timeout(30):
                while not await parked_now(handle):  # noqa: ASYNC110 - polls the server
                    await asyncio.sleep(0.1)
            kill(first)
            second = start_worker(temporal_env, task_queue, alerts=db)
            (tmp_path / "fixed-b").touch()
            await resolve(handle, 2, "retry", reason="fixed the refund service")
            with pytest.raises(WorkflowFailureError) as ei:
                await asyncio.wait_for(handle.result(), 60)
            report = report_from_failure(ei.value)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    kill(proc)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        with sqlite3.connect(db) as conn:
            effects = conn.execute("SELECT phase, name FROM effects ORDER BY rowid").fetchall()
            undo_b = conn.execute(
                "SELECT COUNT(*) FROM attempts WHERE phase = 'undo' AND name = 'b'"
            ).fetchone()
            alerts = conn.execute("SELECT status, parked FROM alerts").fetchall()
        # Undo b wrote its effect, then failed: the retry found it there (keyed), once.
        assert effects == [("do", n) for n in STEPS] + [("undo", n) for n in reversed(STEPS)]
        assert undo_b == (2,)  # failed once, parked; retried once on the fresh worker
        assert alerts == [("parked", "2")]  # the hook ran once, told what parked


class TestManyParkedSagasSurviveAKill:
    async def test_fifty_parked_sagas_are_resolved_on_a_fresh_worker(
        self, temporal_env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        """50 parked, the worker killed: 25 retried, 25 skipped at once, 5 of them raced; all end.

        One ledger for all (keyed `<workflow id>/<run id>#<seq>`: the saga id and
        step); a gates dir per saga, so only the retried ones have their undo
        fixed. 5 sagas also get a second decision (same action, another
        operator) at the same time: one of the two is taken, the other refused
        with `SagaStateError`.
        """
        client: Client = temporal_env.client
        db = tmp_path / "effects.sqlite3"
        n, retried = 50, 25
        raced = {0, 1, 2, 25, 26}  # 3 retries, 2 skips get a rival decision
        task_queue = f"park50-{uuid.uuid4()}"
        first = start_worker(temporal_env, task_queue, alerts=db)
        second = None
        try:
            gates = [tmp_path / f"gates-{i}" for i in range(n)]
            for g in gates:
                g.mkdir()
            handles = await asyncio.gather(
                *(
                    client.start_workflow(
                        CrashWorkflow.run,
                        CrashJob(db=str(db), gates=str(g), fail=["d"], fail_undo=["b"], park=True),
                        id=new_id(f"park50-{i:02}"),
                        task_queue=task_queue,
                    )
                    for i, g in enumerate(gates)
                )
            )
            waiting = await all_parked(handles, 90)
            assert {tuple((p.seq, p.undo) for p in w) for w in waiting} == {((2, "crash_undo_b"),)}
            kill(first)
            second = start_worker(temporal_env, task_queue, alerts=db)
            for g in gates[:retried]:
                (g / "fixed-b").touch()

            def decide(i: int, by: str) -> Any:
                action = "retry" if i < retried else "skip"
                reason = f"refunded by hand, ticket {i}" if action == "skip" else "refunds back"
                return resolve(handles[i], 2, action, reason=reason, by=by)

            decisions = [(i, "ops-1") for i in range(n)] + [(i, "ops-2") for i in sorted(raced)]
            outcomes = await asyncio.gather(
                *(decide(i, by) for i, by in decisions), return_exceptions=True
            )
            ends = await asyncio.gather(
                *(asyncio.wait_for(h.result(), 60) for h in handles), return_exceptions=True
            )
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    kill(proc)

        # Every decision returned, but in each race exactly one: the other was refused.
        by_saga: dict[int, dict[str, BaseException | None]] = {}
        for (i, by), outcome in zip(decisions, outcomes, strict=True):
            assert outcome is None or isinstance(outcome, SagaStateError), (i, by, outcome)
            by_saga.setdefault(i, {})[by] = outcome
        winners = {}
        for i, told in by_saga.items():
            taken = [by for by, outcome in told.items() if outcome is None]
            assert len(taken) == 1, (i, told)
            winners[i] = taken[0]

        assert second is not None
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT key, phase, name FROM effects").fetchall()
            # Attempts of undo b on the fresh worker. On the first one it may have
            # more than one: under load an attempt can miss the 2 s heartbeat
            # timeout before its failure is reported, and is run again.
            undo_b = dict(
                conn.execute(
                    "SELECT key, COUNT(*) FROM attempts"
                    " WHERE phase = 'undo' AND name = 'b' AND pid = ? GROUP BY key",
                    (second.pid,),
                ).fetchall()
            )
            alerts = conn.execute("SELECT saga_id, status, parked FROM alerts").fetchall()
        effects: dict[str, list[tuple[str, str]]] = {}
        for key, phase, name in rows:
            effects.setdefault(key.rsplit("#", 1)[0], []).append((phase, name))

        for i, (handle, end) in enumerate(zip(handles, ends, strict=True)):
            assert isinstance(end, WorkflowFailureError), (i, end)
            report = report_from_failure(end)
            assert report is not None
            assert report.status is SagaStatus.COMPENSATED, (i, report.status)
            undo = report.steps[1].undo
            assert undo is not None
            assert len(undo.resolutions) == 1, (i, undo.resolutions)
            taken = undo.resolutions[0]
            assert taken.by == winners[i]
            # Every do and undo took effect exactly once (undo b before it failed).
            run = f"{handle.id}/{handle.result_run_id}"
            assert sorted(effects[run]) == [(p, s) for p in ("do", "undo") for s in STEPS], i
            if i < retried:
                assert undo.status is UndoStatus.COMPENSATED, (i, undo)
                assert (taken.action, taken.reason) == ("retry", "refunds back")
                # Parked on the first worker, run again on the fresh one.
                assert undo_b.get(f"{run}#2", 0) >= 1, i
            else:
                assert undo.status is UndoStatus.DONE_BY_HAND, (i, undo)
                assert (taken.action, taken.reason) == ("skip", f"refunded by hand, ticket {i}")
                assert f"{run}#2" not in undo_b, i  # a skipped undo never runs again
            # One decision written per saga (a refused one writes nothing), and no
            # workflow task failed, before the kill or after it.
            kinds = [e.event_type async for e in handle.fetch_history_events()]
            assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds, i
            accepted = kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
            assert accepted == 1, (i, accepted)
        # Each saga alerted that it parked (twice if the kill cut the alert short).
        assert {f"{h.id}/{h.result_run_id}" for h in handles} == {saga for saga, _, _ in alerts}
        assert {(status, seqs) for _, status, seqs in alerts} == {("parked", "2")}


async def all_parked(
    handles: list[WorkflowHandle[Any, Any]], seconds: float
) -> list[list[ParkedUndo]]:
    """Once every saga waits for a decision: what each has parked."""
    waiting: dict[int, list[ParkedUndo]] = {}
    async with asyncio.timeout(seconds):
        while len(waiting) < len(handles):
            todo = [i for i in range(len(handles)) if i not in waiting]
            found = await asyncio.gather(*(parked_or_none(handles[i]) for i in todo))
            waiting.update((i, p) for i, p in zip(todo, found, strict=True) if p)
            if len(waiting) < len(handles):
                await asyncio.sleep(0.2)
    return [waiting[i] for i in range(len(handles))]


async def parked_or_none(handle: WorkflowHandle[Any, Any]) -> list[ParkedUndo] | None:
    try:
        return await parked(handle)
    except RPCError:  # the worker has not taken the workflow's first task yet
        return None


async def parked_now(handle: WorkflowHandle[Any, Any]) -> bool:
    try:
        return bool(await parked(handle))
    except RPCError:  # the worker has not taken the workflow's first task yet
        return False


class TestDeadlinePassesWithNoWorker:
    async def test_the_next_worker_compensates_and_runs_no_later_step(
        self, temporal_env: WorkflowEnvironment, tmp_path: Path
    ) -> None:
        """The deadline fires with no worker; the next worker unwinds, each undo once.

        Step b hangs, the worker is killed, the 3 s deadline's timer fires on the
        server, then a fresh worker starts: b is cancelled, b and a are undone
        once each, and c and d never start.
        """
        client: Client = temporal_env.client
        db = tmp_path / "effects.sqlite3"
        deadline = timedelta(seconds=3)
        job = CrashJob(db=str(db), gates=str(tmp_path), deadline=deadline.total_seconds())
        (tmp_path / "hold-do-b").touch()  # b hangs until cancelled: the deadline falls in it
        task_queue = f"deadline-{uuid.uuid4()}"
        first = start_worker(temporal_env, task_queue)
        second = None
        try:
            handle = await client.start_workflow(
                CrashWorkflow.run, job, id=new_id("deadline"), task_queue=task_queue
            )
            await wait_file(tmp_path / "reached-do-b")
            kill(first)
            killed = len(await history(handle))
            # No worker now: wait for the server to fire the deadline's timer by itself.
            async with asyncio.timeout(30):
                while not fired(await history(handle)):  # noqa: ASYNC110 - polls the server
                    await asyncio.sleep(0.2)
            second = start_worker(temporal_env, task_queue)
            with pytest.raises(WorkflowFailureError) as ei:
                await asyncio.wait_for(handle.result(), 60)
            events = await history(handle)
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    kill(proc)
        failure = ei.value.cause
        assert isinstance(failure, ApplicationError)
        assert failure.type == "SagaFailed"
        assert isinstance(failure.cause, ApplicationError)
        assert failure.cause.type == "SagaDeadlineExceeded"
        report = report_from_failure(ei.value)
        assert report is not None
        assert report.status is SagaStatus.COMPENSATED
        assert report.deadline_passed
        assert report.step("crash_do_b").status is StepStatus.CANCELLED
        # The timer was set once, by the first worker, and fired after it was killed.
        kinds = [e.event_type for e in events]
        assert kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) == 1
        assert kinds.index(EventType.EVENT_TYPE_TIMER_STARTED) < killed
        assert kinds.index(EventType.EVENT_TYPE_TIMER_FIRED) >= killed
        scheduled = [
            e.activity_task_scheduled_event_attributes.activity_type.name
            for e in events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert scheduled == ["crash_do_a", "crash_do_b", "crash_undo_b", "crash_undo_a"]
        assert second is not None
        with sqlite3.connect(db) as conn:
            effects = conn.execute("SELECT phase, name FROM effects ORDER BY rowid").fetchall()
            undos = conn.execute(
                "SELECT name, pid FROM attempts WHERE phase = 'undo' ORDER BY rowid"
            ).fetchall()
            later = conn.execute(
                "SELECT COUNT(*) FROM attempts WHERE phase = 'do' AND name IN ('c', 'd')"
            ).fetchone()
        assert effects == [("do", "a"), ("do", "b"), ("undo", "b"), ("undo", "a")]
        # Each undo ran once, on the worker that came back; no step after b ever started.
        assert undos == [("b", second.pid), ("a", second.pid)]
        assert later == (0,)


async def history(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return [e async for e in handle.fetch_history_events()]


def fired(events: list[Any]) -> bool:
    return any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in events)
