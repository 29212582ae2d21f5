"""What a person gets wrong: one line on stderr each, and an exit status that says what."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import sagakit
from sagakit import _cli

from .conftest import ROOT, Cli, run_cli, start_cli


async def test_help_documents_the_commands_and_the_exit_statuses() -> None:
    helped, bare, version = await asyncio.gather(run_cli("--help"), run_cli(), run_cli("--version"))
    assert helped.code == 0, helped
    for text in ("show", "list", "parked", "resolve", "exit status:", "130  interrupted (Ctrl-C)"):
        assert text in helped.out
    for env in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY"):
        assert env in helped.out
    assert (bare.code, bare.error) == (
        2,
        "sagakit: no command: give one of show, list, parked, resolve; see `sagakit --help`",
    ), bare
    assert (version.code, version.out) == (0, f"sagakit {sagakit.__version__}\n")


async def test_usage_errors_exit_2_before_connecting() -> None:
    undo, two, *runs = await asyncio.gather(
        run_cli("resolve", "wf", "2", "undo"),
        run_cli("resolve", "wf", "two", "retry"),
        run_cli("list", "--limit", "0"),
        run_cli("list", "--status", "lost"),
        run_cli("show", "wf", "--worker-timeout", "0"),
        run_cli("show"),
        run_cli("lsit"),
        run_cli("--no-such-flag", "list"),
    )
    # One line each, not argparse's usage block, naming where the rest is.
    assert (undo.code, undo.error) == (
        2,
        "sagakit: resolve: argument action: invalid choice: 'undo' (choose from 'retry', "
        "'skip'); see `sagakit resolve --help`",
    ), undo
    assert (two.code, two.error) == (
        2,
        "sagakit: resolve: argument SEQ: not a whole number: 'two'; see `sagakit resolve --help`",
    ), two
    for run in runs:
        assert run.code == 2, run
        assert re.fullmatch(r"sagakit: (\w+: )?.+; see `sagakit( \w+)? --help`", run.error), run
        assert run.out == "", run


def test_the_console_script_runs_main() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["sagakit"] == "sagakit._cli:main"
    assert _cli.main(["--version"]) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_wrong_address() -> None:
    port = free_port()
    refused, unknown = await asyncio.gather(
        run_cli("list", "--address", f"127.0.0.1:{port}"),
        run_cli("show", "wf", TEMPORAL_ADDRESS="no-such-host.invalid:7233"),
    )
    assert (refused.code, refused.error) == (
        3,
        f"sagakit: cannot connect to 127.0.0.1:{port}: "
        "connection refused (is a Temporal server listening there?)",
    ), refused
    assert (unknown.code, unknown.error) == (
        3,
        "sagakit: cannot connect to no-such-host.invalid:7233: cannot resolve the host name",
    ), unknown


@asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP server that accepts and never answers; the event is set on a connection."""
    connected = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        connected.set()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connected
    finally:
        for w in held:
            w.close()
        server.close()


async def test_a_server_that_never_answers_times_out_and_ctrl_c_interrupts() -> None:
    async with silent_server() as (port, connected):
        timed_out = await run_cli("list", "--address", f"127.0.0.1:{port}", "--timeout", "1")
        assert (timed_out.code, timed_out.error) == (
            3,
            f"sagakit: cannot connect to 127.0.0.1:{port}: no answer within 1s",
        ), timed_out
        connected.clear()
        proc = await start_cli("show", "wf", "--address", f"127.0.0.1:{port}", "--timeout", "60")
        await asyncio.wait_for(connected.wait(), 30)  # it waits in its connect: press Ctrl-C
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert (proc.returncode, out, err) == (130, b"", b"sagakit: interrupted\n")


@pytest.mark.temporal
async def test_an_unknown_namespace(cli: Cli) -> None:
    runs = await asyncio.gather(
        cli("show", "wf", "--namespace", "no-such-namespace"),
        cli("--namespace", "no-such-namespace", "parked", "wf"),  # before the command too
        cli("list", TEMPORAL_NAMESPACE="no-such-namespace"),
        cli("resolve", "wf", "1", "retry", "-n", "no-such-namespace"),
    )
    for run in runs:
        assert (run.code, run.error) == (
            3,
            f"sagakit: cannot use {cli.address}: namespace 'no-such-namespace' does not exist "
            "(create it with `temporal operator namespace create --namespace "
            "no-such-namespace`, or pick another with --namespace)",
        ), run


@pytest.mark.temporal
async def test_bad_tls_files_and_tls_to_a_server_without_it(cli: Cli, tmp_path: Path) -> None:
    missing, garbage = tmp_path / "missing.pem", tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    no_file, env_file, not_pem, half, plain = await asyncio.gather(
        cli("list", "--tls-ca", str(missing)),
        cli("list", TEMPORAL_TLS_SERVER_CA_CERT_PATH=str(missing)),
        cli("list", "--tls-cert", str(garbage), "--tls-key", str(garbage)),
        cli("list", "--tls-key", str(garbage)),
        cli("list", "--tls"),
    )
    assert (no_file.code, no_file.error) == (
        2,
        f"sagakit: --tls-ca {missing}: No such file or directory",
    ), no_file
    assert (env_file.code, env_file.error) == (
        2,
        f"sagakit: --tls-ca {missing}: No such file or directory",
    ), env_file
    assert (not_pem.code, not_pem.error) == (
        2,
        f"sagakit: --tls-cert {garbage}: no PEM 'CERTIFICATE' block in it",
    ), not_pem
    assert (half.code, half.error) == (2, "sagakit: --tls-cert and --tls-key go together (mTLS)")
    assert plain.code == 3, plain
    assert plain.error.startswith(
        f"sagakit: cannot connect to {cli.address}: the TLS handshake failed"
    )
