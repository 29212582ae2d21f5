"""`python -m examples`, the main job, specified as a user (or CI) runs it: piped, no stdin."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_main(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [sys.executable, "-m", "examples", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_both_runs_as_designed(out: str) -> None:
    assert "SUCCEEDED" in out
    assert "COMPENSATED" in out
    assert "Undeliverable" in out
    assert "refunded £62.00 in 1 refund(s)" in out
    assert "both runs ended as designed" in out


class TestInMemory:
    def test_runs_both_orders_as_designed(self) -> None:
        """With no server, one order ships, the other is compensated, and it exits 0."""
        proc = run_main("--backend", "inmemory")

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_both_runs_as_designed(proc.stdout)

    def test_is_plain_when_piped_and_coloured_when_asked(self) -> None:
        """Piped output has no ANSI colour; --color always forces it."""
        assert not ANSI.search(run_main("--backend", "inmemory").stdout)
        assert ANSI.search(run_main("--backend", "inmemory", "--color", "always").stdout)

    def test_refuses_flags_that_need_a_server(self) -> None:
        """--keep-server and --address make no sense without Temporal: a usage error, exit 2."""
        proc = run_main("--backend", "inmemory", "--keep-server")

        assert proc.returncode == 2
        assert "--backend temporal" in proc.stderr


class TestAnUnreachableCluster:
    def test_fails_fast_with_one_line(self) -> None:
        """An --address nobody listens on is a one-line error and exit 1, not a traceback."""
        proc = run_main("--address", "127.0.0.1:1", timeout=30)

        assert proc.returncode == 1
        assert "error: cannot connect to 127.0.0.1:1" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.temporal
class TestOnADevServer:
    def test_runs_both_orders_and_stops_its_server(self) -> None:
        """It starts a dev server, runs both orders as designed, stops the server and exits 0."""
        proc = run_main()

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert_both_runs_as_designed(proc.stdout)
        assert "started workflow order-o-1002" in proc.stdout
        assert not alive(server_pid(proc.stdout)), "the dev server outlived the command"

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
