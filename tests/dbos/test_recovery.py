"""Durable on DBOS: a process killed mid-saga, started again, finishes the saga once in effect.

Each test runs `_crashing.py` (a trip saga: car, hotel, flight, as a DBOS workflow on
a SQLite system database) in a subprocess that ends itself with `os._exit` at one
point: in a do or an undo after its effect (DBOS has not checkpointed it), at the
start of an undo, or between two steps. The same command run again is a fresh
process: DBOS's launch recovers the pending workflow and the saga goes on. A ledger
the steps write (a SQLite file of their own) then shows:

* each effect applied once (keyed by `idempotency_key()`), each undo too;
* the killed step ran again (DBOS steps run at least once) and saw the key its first
  attempt saw; the steps checkpointed before the kill did not run again (killed once
  the saga ended, none runs again: the recovered run reads every outcome back);
* the do and the undo of a step read the same key.

The failing saga's caller, in the second process, catches `SagaFailed` from the
handle's result with its cause chain (DBOS stored the error serialized).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dbos")

pytestmark = [pytest.mark.dbos, pytest.mark.slow, pytest.mark.timeout(90)]

HERE = Path(__file__).parent
# The child imports the checkout's sagakit, as the tests do, not an installed copy.
ROOT = HERE.parent.parent
ITEMS = ("car", "hotel", "flight")
CRASH_EXIT = 75  # _crashing.CRASH_EXIT: not imported, which would register its workflow here
RUN_TIMEOUT = 60  # seconds for one process, launch to exit; the child gives up on the saga at 30


@dataclass
class Run:
    """One process of `_crashing.py`: its exit status, its JSON outcome (if any), its time."""

    returncode: int
    outcome: dict[str, Any] | None
    stderr: str
    seconds: float


@dataclass
class Ledger:
    """What the steps wrote: every attempt, and every effect (once per phase and key)."""

    attempts: list[dict[str, Any]]
    effects: list[dict[str, Any]]

    def tries(self, phase: str, item: str) -> list[dict[str, Any]]:
        """The attempts of `item`'s do or undo, in order."""
        return [a for a in self.attempts if a["phase"] == phase and a["item"] == item]

    def applied(self, phase: str) -> Counter[str]:
        """How many effects of each item's do or undo took hold."""
        return Counter(e["item"] for e in self.effects if e["phase"] == phase)


def run_once(tmp_path: Path, crash: str | None, fail_at: str | None, *more: str) -> Run:
    """Run the saga's process once, to its end or to its crash."""
    args = ["--db", str(tmp_path / "dbos.sqlite3"), "--ledger", str(tmp_path / "ledger.sqlite3")]
    args += ["--workflow-id", "trip-1", *more]
    if crash is not None:
        args += ["--crash", crash]
    if fail_at is not None:
        args += ["--fail-at", fail_at]
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "_crashing", *args],
        cwd=HERE,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE), os.environ.get("PYTHONPATH", "")]),
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    outcome = json.loads(lines[-1]) if lines else None
    return Run(proc.returncode, outcome, proc.stderr, time.monotonic() - t0)


def crash_then_recover(tmp_path: Path, crash: str, fail_at: str | None = None) -> Run:
    """Run until the crash at `crash`, then the same command again; the second run."""
    first = run_once(tmp_path, crash, fail_at)
    assert first.returncode == CRASH_EXIT, (first.returncode, first.stderr)
    assert first.outcome is None
    second = run_once(tmp_path, crash, fail_at)
    assert second.returncode == 0, second.stderr
    assert second.outcome is not None, second.stderr
    assert not second.outcome["started"], "the second process must recover, not start anew"
    return second


def ledger(tmp_path: Path) -> Ledger:
    db = sqlite3.connect(tmp_path / "ledger.sqlite3")
    db.row_factory = sqlite3.Row
    try:
        attempts = [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY n")]
        effects = [dict(r) for r in db.execute("SELECT * FROM effects")]
    finally:
        db.close()
    return Ledger(attempts, effects)


def workflow_status(tmp_path: Path) -> tuple[str, int]:
    """The workflow's status in DBOS's system database, and how often it was (re)started."""
    db = sqlite3.connect(tmp_path / "dbos.sqlite3")
    try:
        status, attempts = db.execute(
            "SELECT status, recovery_attempts FROM workflow_status WHERE workflow_uuid = 'trip-1'"
        ).fetchone()
    finally:
        db.close()
    return status, attempts


def ran_again_with_its_key(book: Ledger, phase: str, item: str) -> None:
    """`item`'s do or undo ran in both processes, and saw one key."""
    tries = book.tries(phase, item)
    assert len(tries) == 2, tries
    assert tries[0]["pid"] != tries[1]["pid"], "the second attempt ran in the recovering process"
    assert tries[0]["key"] == tries[1]["key"], tries


def ran_once(book: Ledger, phase: str, item: str) -> None:
    assert len(book.tries(phase, item)) == 1, book.tries(phase, item)


def keys_shared_and_distinct(book: Ledger) -> None:
    """The do and undo of a step read one key; no two steps share one."""
    by_item: dict[str, set[str]] = {}
    for a in book.attempts:
        by_item.setdefault(a["item"], set()).add(a["key"])
    assert all(len(keys) == 1 for keys in by_item.values()), by_item
    assert len({k for keys in by_item.values() for k in keys}) == len(by_item), by_item


class TestASagaThatSucceeds:
    def test_a_do_killed_after_its_effect_runs_again_and_takes_effect_once(
        self, tmp_path: Path
    ) -> None:
        """Killed after the hotel's booking, before DBOS checkpointed it: booked once."""
        run = crash_then_recover(tmp_path, "do:hotel:after")

        assert run.outcome is not None
        assert [r.split()[0] for r in run.outcome["result"]] == list(ITEMS)
        book = ledger(tmp_path)
        ran_once(book, "do", "car")
        ran_again_with_its_key(book, "do", "hotel")
        assert book.applied("do") == Counter(ITEMS)
        assert book.applied("undo") == Counter()
        keys_shared_and_distinct(book)
        assert workflow_status(tmp_path) == ("SUCCESS", 2)

    def test_killed_between_steps_it_goes_on_without_running_a_step_again(
        self, tmp_path: Path
    ) -> None:
        """Killed after the car's step was checkpointed: the car is not booked again."""
        run = crash_then_recover(tmp_path, "after:car")

        assert run.outcome is not None
        assert len(run.outcome["result"]) == 3
        book = ledger(tmp_path)
        for item in ITEMS:
            ran_once(book, "do", item)
        assert book.tries("do", "car")[0]["pid"] != book.tries("do", "hotel")[0]["pid"]
        assert book.applied("do") == Counter(ITEMS)
        keys_shared_and_distinct(book)


class TestASagaThatFails:
    """The flight is sold out: the saga unwinds flight, hotel, car."""

    def test_an_undo_killed_after_its_effect_runs_again_and_takes_effect_once(
        self, tmp_path: Path
    ) -> None:
        """Killed after the hotel's cancellation: cancelled once, then the car's runs."""
        run = crash_then_recover(tmp_path, "undo:hotel:after", fail_at="flight")

        assert run.outcome is not None
        failed = run.outcome["failed"]
        assert failed["status"] == "compensated"
        assert failed["compensation_order"] == ["flight", "hotel", "car"]
        book = ledger(tmp_path)
        ran_once(book, "undo", "flight")
        ran_again_with_its_key(book, "undo", "hotel")
        ran_once(book, "undo", "car")
        assert book.applied("do") == Counter(["car", "hotel"])
        assert book.applied("undo") == Counter(ITEMS)
        keys_shared_and_distinct(book)
        assert workflow_status(tmp_path) == ("ERROR", 2)

    def test_killed_between_undos_it_runs_only_the_undos_left(self, tmp_path: Path) -> None:
        """Killed at the car's undo, after the hotel's was checkpointed: that one is not rerun."""
        run = crash_then_recover(tmp_path, "undo:car:before", fail_at="flight")

        assert run.outcome is not None
        assert run.outcome["failed"]["status"] == "compensated"
        book = ledger(tmp_path)
        ran_once(book, "undo", "flight")
        ran_once(book, "undo", "hotel")
        ran_again_with_its_key(book, "undo", "car")
        assert book.applied("undo") == Counter(ITEMS)

    def test_the_failing_do_killed_mid_attempt_fails_again_and_is_unwound(
        self, tmp_path: Path
    ) -> None:
        """Killed in the flight's do before it raised: it runs again, fails, and all unwinds."""
        run = crash_then_recover(tmp_path, "do:flight:before", fail_at="flight")

        assert run.outcome is not None
        assert run.outcome["failed"]["compensation_order"] == ["flight", "hotel", "car"]
        book = ledger(tmp_path)
        ran_again_with_its_key(book, "do", "flight")
        assert book.applied("do") == Counter(["car", "hotel"])
        assert book.applied("undo") == Counter(ITEMS)

    def test_killed_once_the_saga_ended_it_reads_every_step_back(self, tmp_path: Path) -> None:
        """Killed after the unwind, before DBOS recorded the outcome: nothing runs again."""
        run = crash_then_recover(tmp_path, "end", fail_at="flight")

        assert run.outcome is not None
        failed = run.outcome["failed"]
        assert failed["causes"][1:] == ["SoldOut: no flight left"]
        assert failed["compensation_order"] == ["flight", "hotel", "car"]
        assert failed["undos"] == dict.fromkeys(ITEMS, "compensated")
        book = ledger(tmp_path)
        assert all(len(book.tries(p, i)) == 1 for p in ("do", "undo") for i in ITEMS)
        assert run.outcome["pid"] not in {a["pid"] for a in book.attempts}  # all in the first
        assert workflow_status(tmp_path) == ("ERROR", 2)

    def test_the_caller_catches_saga_failed_with_its_cause_after_recovery(
        self, tmp_path: Path
    ) -> None:
        """The recovering process's handle raises SagaFailed whose __cause__ is the do's error."""
        run = crash_then_recover(tmp_path, "undo:hotel:before", fail_at="flight")

        assert run.outcome is not None
        causes = run.outcome["failed"]["causes"]
        assert causes[0].startswith("SagaFailed: "), causes
        assert causes[1:] == ["SoldOut: no flight left"], causes
        assert run.outcome["failed"]["undos"] == dict.fromkeys(ITEMS, "compensated")


class TestAParkedSaga:
    """The car's undo fails for good and parks, with a `park_timeout` of `PARK` seconds."""

    PARK = 6.0

    def test_killed_in_an_operators_retry_it_keeps_the_first_runs_timeout(
        self, tmp_path: Path
    ) -> None:
        """Recovered after the timeout's end, the undo parked again times out at once."""
        more = ["--stuck", "car", "--park-timeout", str(self.PARK)]
        first = run_once(tmp_path, "retry:car", "flight", *more)
        assert first.returncode == CRASH_EXIT, (first.returncode, first.stderr)
        time.sleep(self.PARK)  # the first run's timeout ends while no process runs
        second = run_once(tmp_path, "retry:car", "flight", *more)

        assert second.returncode == 0, second.stderr
        assert second.outcome is not None, second.stderr
        failed = second.outcome["failed"]
        assert failed["status"] == "compensation_failed"
        assert failed["undos"] == {"flight": "compensated", "hotel": "compensated", "car": "failed"}
        # A timeout restarted from the recovered process's clock would wait PARK more.
        assert second.outcome["waited"] < self.PARK / 2, second.outcome
        book = ledger(tmp_path)
        # The first process ran the undo, then was killed as the retry began; the
        # recovered one ran the retry, which parked the undo again.
        first_pid = book.attempts[0]["pid"]
        assert [a["pid"] == first_pid for a in book.tries("undo", "car")] == [True, False]


def test_a_run_with_no_crash_ends_in_one_process(tmp_path: Path) -> None:
    """The baseline: no crash point, one process, each step once (the harness is sound)."""
    run = run_once(tmp_path, None, "flight")

    assert run.returncode == 0, run.stderr
    assert run.outcome is not None
    assert run.outcome["started"]
    assert run.outcome["failed"]["causes"][1:] == ["SoldOut: no flight left"]
    book = ledger(tmp_path)
    assert all(len(book.tries(p, i)) == 1 for p in ("do", "undo") for i in ITEMS)
    assert workflow_status(tmp_path) == ("ERROR", 1)
