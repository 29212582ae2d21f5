"""`python -m examples`, the main job, specified as a user (or CI) runs it: piped, no stdin."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from examples._support.running import ReportUnavailable, outcome_of, query_report
from examples.demo import SCENARIOS, _fit_errors
from examples.order_fulfilment.activities import ACTIVITIES, SHOP
from examples.order_fulfilment.services import Shop
from examples.order_fulfilment.workflow import PlaceOrder
from sagakit import RetryPolicy, Saga, SagaFailed, SagaOptions, SagaReport, SagaStatus
from sagakit.inmemory import InMemoryExecutor
from sagakit.temporal import SagakitPlugin

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_main(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "examples", *args],
        cwd=ROOT,
        env=main_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def main_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The job's stderr, which must be exactly one plain line (no traceback, no core log)."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert not ANSI.search(proc.stderr), proc.stderr
    assert lines[0].startswith("python -m examples: error: "), proc.stderr
    return lines[0]


def temp_dir_removed(out: str) -> None:
    found = re.search(r"removed (/\S+sagakit-examples-\S+)", out)
    assert found is not None, out
    assert not Path(found.group(1)).exists()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_every_run_as_designed(out: str) -> None:
    assert "SUCCEEDED" in out
    assert "COMPENSATED" in out
    assert "Undeliverable" in out
    assert "refunded £62.00 in 1 refund(s)" in out
    # Run 3: the refund parks while the provider is down, and is retried once fixed.
    assert "parked: undo 2. charge_payment (refund_payment) waits: ProviderDown" in out
    assert "all 3 runs ended as designed" in out


class TestInMemory:
    def test_runs_every_order_as_designed(self) -> None:
        """With no server, one order ships, the other is compensated, and it exits 0."""
        proc = run_main("--backend", "inmemory")

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_every_run_as_designed(proc.stdout)
        temp_dir_removed(proc.stdout)

    def test_is_plain_when_piped_and_coloured_when_asked(self) -> None:
        """Piped output has no ANSI colour; --color always forces it."""
        assert not ANSI.search(run_main("--backend", "inmemory").stdout)
        assert ANSI.search(run_main("--backend", "inmemory", "--color", "always").stdout)

    def test_refuses_flags_that_need_a_server(self) -> None:
        """--keep-server and --address make no sense without Temporal: a usage error, exit 2."""
        proc = run_main("--backend", "inmemory", "--keep-server")

        assert proc.returncode == 2
        assert "--backend temporal" in proc.stderr


class TestOnDBOS:
    @pytest.mark.dbos
    def test_runs_every_order_as_designed_on_a_sqlite_file(self) -> None:
        """On DBOS, with its system database a SQLite file in the temp dir: as designed, exit 0."""
        pytest.importorskip("dbos")
        proc = run_main("--backend", "dbos")

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_every_run_as_designed(proc.stdout)
        assert re.search(r"system database /\S+sagakit-examples-\S+/dbos\.sqlite3", proc.stdout)
        assert "started workflow order-o-1002" in proc.stdout
        temp_dir_removed(proc.stdout)
        assert proc.stderr == ""

    def test_refuses_flags_that_need_a_server(self) -> None:
        """--keep-server and --address need Temporal: a usage error, exit 2."""
        proc = run_main("--backend", "dbos", "--address", "127.0.0.1:7233", timeout=30)

        assert proc.returncode == 2
        assert "--backend temporal" in one_error_line(proc)

    @pytest.mark.dbos
    def test_ctrl_c_mid_run_stops_cleanly(self) -> None:
        """Ctrl-C while a saga runs on DBOS: DBOS is shut down, the temp dir removed, exit 130."""
        pytest.importorskip("dbos")
        out, returncode = interrupt_after("started workflow order-o-1003", "--backend", "dbos")

        assert returncode == 130, out
        assert "interrupted; nothing left running" in out
        temp_dir_removed(out)

    def test_without_dbos_installed_says_how_to_install_it(self) -> None:
        """With no `dbos` package: one line with the install hint, exit 1, before any run."""
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                # None in sys.modules makes `import dbos` fail as if it were not installed.
                "import sys; sys.modules['dbos'] = None; from examples.demo import main; "
                "sys.exit(main(['--backend', 'dbos']))",
            ],
            cwd=ROOT,
            env=main_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "pip install 'sagakit[dbos]'" in one_error_line(proc)
        assert "== run 1" not in proc.stdout
        temp_dir_removed(proc.stdout)


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "says"),
        [
            (["--db", "/nonexistent/dir/x.db"], "there is no directory /nonexistent/dir"),
            (["--timeout", "0"], "--timeout: must be more than 0"),
            (["--tls"], "--tls and --api-key apply to --address"),
        ],
    )
    def test_is_one_usage_line_and_exit_2(self, args: list[str], says: str) -> None:
        """A bad command line is one line on stderr (not argparse's usage block) and exit 2."""
        proc = run_main(*args, timeout=30)

        assert proc.returncode == 2, proc.stderr
        assert says in one_error_line(proc)

    def test_help_states_the_deadline_and_the_exit_statuses(self) -> None:
        """--help says how long the job waits for a server, and what each exit status means."""
        out = run_main("--help", timeout=30).stdout

        assert "--timeout SECONDS" in out
        assert "(default 30)" in out
        for code in ("0 ", "1 ", "2 ", "130 "):
            assert f"\n  {code}" in out


class TestAnUnreachableCluster:
    def test_gives_up_at_its_deadline_with_one_line(self) -> None:
        """An --address nobody listens on is retried until --timeout, then one line and exit 1."""
        t0 = time.monotonic()
        proc = run_main("--address", "127.0.0.1:1", "--timeout", "2", timeout=30)

        assert proc.returncode == 1, proc.stdout + proc.stderr
        line = one_error_line(proc)
        assert "cannot connect to 127.0.0.1:1 within 2s: connection refused" in line
        assert "retrying for up to 2s" in proc.stdout
        assert time.monotonic() - t0 < 20
        temp_dir_removed(proc.stdout)

    def test_never_aborts_at_exit(self) -> None:
        """Six failed connects at once all exit 1: none aborts in the Rust core at exit (134)."""
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "examples", "--address", "127.0.0.1:1", "--timeout", "0.5"],
                cwd=ROOT,
                env=main_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        ends = [(p.wait(timeout=60), p.communicate()[1]) for p in procs]

        assert [code for code, _ in ends] == [1] * 6, ends
        assert not any("Fatal Python error" in err for _, err in ends), ends


class TestTheTimeline:
    def test_cuts_long_errors_to_the_width_and_lists_them_whole(self) -> None:
        """A long error keeps the table's rows within the width; cut ones follow in full."""
        report = failed_report(do_error="d" * 300, undo_error="u" * 300)

        fitted, whole = _fit_errors(report, 150)
        rows = fitted.timeline(color=False).splitlines()

        assert rows[1] == f"  cause: ValueError: {'d' * 300}"  # the saga's error: whole
        assert all(len(row) <= 150 for row in rows[2:]), rows
        assert sum(row.endswith("…") for row in rows[2:]) == 2, rows
        # The do's error is the cause, shown whole above; the undo's is listed.
        assert whole == [f"undo 1. first (undo_first): RuntimeError: {'u' * 300}"]

    def test_leaves_short_errors_alone(self) -> None:
        """Errors that fit are not touched, and nothing is listed again."""
        report = failed_report(do_error="short", undo_error="brief")

        fitted, whole = _fit_errors(report, 150)

        assert fitted.timeline(color=False) == report.timeline(color=False)
        assert whole == []


def failed_report(*, do_error: str, undo_error: str) -> SagaReport:
    """A saga whose second do fails, and whose first undo fails too, run in memory."""

    def first() -> int:
        return 1

    def undo_first() -> None:
        raise RuntimeError(undo_error)

    def second() -> int:
        raise ValueError(do_error)

    async def saga(s: Saga) -> None:
        await s.step(first, undo_first)
        await s.step(second, None)

    executor = InMemoryExecutor(options=SagaOptions(retry_policy=RetryPolicy(maximum_attempts=1)))
    with pytest.raises(SagaFailed) as failed:
        asyncio.run(executor.run(saga))
    return failed.value.report


@pytest.mark.temporal
class TestOnADevServer:
    def test_runs_every_order_and_stops_its_server(self) -> None:
        """It starts a dev server, runs every order as designed, stops the server and exits 0."""
        proc = run_main()

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_every_run_as_designed(proc.stdout)
        assert "started workflow order-o-1002" in proc.stdout
        assert not alive(server_pid(proc.stdout)), "the dev server outlived the command"
        temp_dir_removed(proc.stdout)
        assert proc.stderr == ""

    def test_shows_each_do_and_undo_live_named_as_in_the_timeline(self) -> None:
        """One live line per do and undo attempt as the worker ends it, before the run's end."""
        out = run_main().stdout
        run1, run2 = out.split("== run 2")
        live1 = run1.split("saga succeeded")[0]
        live2 = run2.split("saga failed")[0]

        for n, step in enumerate(("reserve_inventory", "charge_payment", "fulfil_order"), 1):
            assert f"]   ✔ do   {n:>3}. {step}  succeeded\n" in live1, out
        assert "✘ do     3. fulfil_order  attempt 1 failed: Undeliverable: order o-1002" in live2
        undos = [
            "↺ undo   3. fulfil_order (cancel_fulfilment)  compensated",
            "✘ undo   2. charge_payment (refund_payment)  attempt 1 failed: LostReply",
            "↺ undo   2. charge_payment (refund_payment)  compensated on attempt 2",
            "↺ undo   1. reserve_inventory (release_inventory)  compensated",
        ]
        at = [live2.index(u) for u in undos]
        assert at == sorted(at), live2
        # The timeline names each undo the same way.
        for label in ("fulfil_order (cancel_fulfilment)", "reserve_inventory (release_inventory)"):
            assert re.search(
                rf"↺ undo +\d\. {re.escape(label)} +compensated", run2.split("saga failed")[1]
            )

    def test_an_unknown_namespace_says_so(self, temporal_env: WorkflowEnvironment) -> None:
        """--namespace that does not exist on a real server: one plain line, exit 1 (not 130)."""
        address = temporal_env.client.service_client.config.target_host
        proc = run_main("--address", address, "--namespace", "nope", timeout=60)

        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "namespace 'nope' does not exist" in one_error_line(proc)
        assert "interrupted" not in proc.stdout + proc.stderr
        assert not ANSI.search(proc.stdout)

    @pytest.mark.slow
    def test_ends_as_designed_beside_a_cpu_hog(self) -> None:
        """With two busy loops taking both cores, the job still ends as designed, exit 0."""
        with cpu_hogs(2):
            proc = run_main(timeout=180)

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_every_run_as_designed(proc.stdout)
        assert proc.stderr == ""

    def test_keep_server_serves_the_ui_until_ctrl_c(self) -> None:
        """--keep-server prints the Web UI address, then Ctrl-C stops the server and exits 0."""
        out, returncode = interrupt_after("Press Ctrl-C", "--keep-server")

        assert returncode == 0, out
        assert "Temporal Web UI: http://127.0.0.1:" in out
        assert "dev server stopped" in out
        assert not alive(server_pid(out))

    def test_ctrl_c_mid_run_stops_cleanly(self) -> None:
        """Ctrl-C during the runs stops the worker and the server and exits 130."""
        out, returncode = interrupt_after("worker polling task queue")

        assert returncode == 130, out
        assert "dev server stopped" in out
        assert not alive(server_pid(out))


@pytest.mark.temporal
class TestTheReportQuery:
    async def test_is_asked_again_until_a_worker_answers(
        self, temporal_client: Client, tmp_path: Path
    ) -> None:
        """The final report query waits out a worker that answers late (here: not yet up)."""
        handle, worker = await finished_order(temporal_client, tmp_path)

        asking = asyncio.create_task(query_report(handle, deadline=60))
        await asyncio.sleep(1.5)
        assert not asking.done()
        async with worker():
            report = await asking

        assert report.status is SagaStatus.SUCCEEDED

    async def test_gives_up_at_its_deadline_in_one_line(
        self, temporal_client: Client, tmp_path: Path
    ) -> None:
        """With no worker at all, it gives up after its deadline with a readable error."""
        handle, _ = await finished_order(temporal_client, tmp_path)

        t0 = time.monotonic()
        with pytest.raises(ReportUnavailable, match=r"no worker answered .* within 2s"):
            await query_report(handle, deadline=2)
        assert time.monotonic() - t0 < 10


async def finished_order(
    client: Client, tmp_path: Path
) -> tuple[WorkflowHandle[Any, Any], Callable[[], AbstractAsyncContextManager[None]]]:
    """A PlaceOrder workflow run to its end, its worker gone; and a way to start another."""
    shop = Shop(tmp_path / "shop.sqlite3")
    shop.add_stock("BOOK", 10)
    shop.add_stock("MUG", 5)
    task_queue = f"late-{uuid.uuid4()}"

    @asynccontextmanager
    async def worker() -> AsyncIterator[None]:
        with SHOP.provide(shop):
            async with Worker(
                client,
                task_queue=task_queue,
                workflows=[PlaceOrder],
                activities=list(ACTIVITIES),
                plugins=[SagakitPlugin()],
            ):
                yield

    async with worker():
        handle = await client.start_workflow(
            PlaceOrder.run, SCENARIOS[0].order, id=f"late-{uuid.uuid4()}", task_queue=task_queue
        )
        await outcome_of(handle)
    return handle, worker


@contextmanager
def cpu_hogs(n: int) -> Iterator[None]:
    """`n` busy-loop processes, ended (by their pids) on exit."""
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(n)
    ]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def server_pid(out: str) -> int:
    found = re.search(r"\(pid (\d+)\)", out)
    assert found is not None, out
    return int(found.group(1))


def interrupt_after(line_marker: str, *args: str) -> tuple[str, int]:
    """Run the main job, send SIGINT (a Ctrl-C) once a line contains the marker."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples", *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line_marker in line:
            break
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    return "".join(seen) + rest, proc.returncode
