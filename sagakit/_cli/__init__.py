"""The operator's command line: `python -m sagakit`, or the console script `sagakit`.

    sagakit show WORKFLOW_ID [--run-id RUN_ID]     # the saga's timeline and its Web UI link
    sagakit list [--status parked] [--limit N]     # sagas by the SagaStatus search attribute
    sagakit parked WORKFLOW_ID                     # its undos that wait for an operator
    sagakit resolve WORKFLOW_ID SEQ retry|skip [--reason TEXT]

It talks to any Temporal cluster, with the connection flags (and environment
variables) of the `temporal` CLI. Every failure is one line on stderr, and the
exit status says what happened: see `ExitCode`. A usage error too is one line,
naming the `--help` that says the rest. This module parses the command
line and imports no temporalio, so `--help` and usage errors answer at once;
`_commands` talks to the cluster; `_errors` holds what both raise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from sagakit import SagaStatus, __version__
from sagakit._cli._errors import PROG, ExitCode, Failure, one_line

__all__ = ["ExitCode", "main"]

DEFAULT_UI = "http://localhost:8233"
_STATUSES = tuple(s.value for s in SagaStatus)


# -- the command line -------------------------------------------------------------


_EPILOG = """\
exit status:
  0    ok
  1    the operation failed or was rejected (no worker answered, the saga refused
       the resolution, the saga has ended, no report to show, no SagaStatus
       search attribute)
  2    usage: a bad flag, argument or TLS file
  3    cannot reach the cluster or the namespace (address, TLS, API key,
       unknown namespace, no answer in time)
  4    not found: no such workflow or run, or the workflow is not a saga
  130  interrupted (Ctrl-C)

The connection flags read TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
TEMPORAL_TLS_SERVER_CA_CERT_PATH and TEMPORAL_TLS_SERVER_NAME when not given, as
the `temporal` CLI does; --ui-url reads SAGAKIT_UI_URL.
"""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < 86_400:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 seconds, and less than a day: {text!r}"
        )
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


_COMMAND_NAMES = ("show", "list", "parked", "resolve")


class _Parser(argparse.ArgumentParser):
    """argparse's parser whose usage error is one line that names `--help`.

    argparse prints the whole usage block first (eight lines for `resolve`);
    the CLI's errors are one line each. Its subcommands' parsers are of this
    class too (argparse makes them of their parent's).
    """

    def error(self, message: str) -> NoReturn:
        if message == "the following arguments are required: COMMAND":
            message = f"no command: give one of {', '.join(_COMMAND_NAMES)}"
        command = self.prog.removeprefix(PROG).strip()
        where = f"{command}: " if command else ""
        self.exit(ExitCode.USAGE, f"{PROG}: {where}{message}; see `{self.prog} --help`\n")


def _add_connection_options(p: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The connection flags; on subcommands without defaults, so either place works."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    env = os.environ.get
    g = p.add_argument_group("connection")
    g.add_argument(
        "--address",
        metavar="HOST:PORT",
        default=default(env("TEMPORAL_ADDRESS") or "localhost:7233"),
        help="the cluster's frontend (env TEMPORAL_ADDRESS; default localhost:7233)",
    )
    g.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        default=default(env("TEMPORAL_NAMESPACE") or "default"),
        help="the namespace (env TEMPORAL_NAMESPACE; default default)",
    )
    g.add_argument(
        "--api-key",
        metavar="KEY",
        default=default(env("TEMPORAL_API_KEY") or None),
        help="API key, e.g. for Temporal Cloud; implies --tls (env TEMPORAL_API_KEY, "
        "which, unlike the flag, stays out of the process list)",
    )
    g.add_argument(
        "--tls",
        action="store_true",
        default=default(_env_flag("TEMPORAL_TLS")),
        help="connect with TLS (env TEMPORAL_TLS); implied by the other --tls-* flags",
    )
    g.add_argument(
        "--tls-cert",
        metavar="PATH",
        default=default(env("TEMPORAL_TLS_CLIENT_CERT_PATH") or None),
        help="client certificate, PEM, for mTLS (env TEMPORAL_TLS_CLIENT_CERT_PATH)",
    )
    g.add_argument(
        "--tls-key",
        metavar="PATH",
        default=default(env("TEMPORAL_TLS_CLIENT_KEY_PATH") or None),
        help="client private key, PEM, for mTLS (env TEMPORAL_TLS_CLIENT_KEY_PATH)",
    )
    g.add_argument(
        "--tls-ca",
        metavar="PATH",
        default=default(env("TEMPORAL_TLS_SERVER_CA_CERT_PATH") or None),
        help="CA certificate(s), PEM, to trust the server by "
        "(env TEMPORAL_TLS_SERVER_CA_CERT_PATH; default the system's)",
    )
    g.add_argument(
        "--tls-server-name",
        metavar="NAME",
        default=default(env("TEMPORAL_TLS_SERVER_NAME") or None),
        help="the server's name in its certificate, if not the address's host "
        "(env TEMPORAL_TLS_SERVER_NAME)",
    )
    g.add_argument(
        "--identity",
        metavar="NAME",
        default=default(None),
        help="who this client is, kept with a resolution (default sagakit:USER@HOST)",
    )
    g.add_argument(
        "--ui-url",
        metavar="URL",
        default=default(env("SAGAKIT_UI_URL") or DEFAULT_UI),
        help=f"the Temporal Web UI, for links (env SAGAKIT_UI_URL; default {DEFAULT_UI})",
    )
    g.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default(10.0),
        help="how long to wait for the cluster to connect and to answer (default 10)",
    )
    g.add_argument(
        "--worker-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default(5.0),
        help="how long to wait for a worker to answer a query or an update (default 5); "
        "queries and resolutions need a worker that runs the saga's workflow",
    )


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Operate sagakit sagas on a Temporal cluster: see a saga's timeline, "
        "list sagas by status, resolve parked undos.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_connection_options(p, defaults=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        c = sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _add_connection_options(c, defaults=False)
        return c

    show = command(
        "show",
        "print a saga's timeline, and its Web UI link",
        "Print a saga's timeline: live from the sagakit_report query when a worker "
        "answers within --worker-timeout, else from the failure of its closed run.",
    )
    show.add_argument("workflow_id", metavar="WORKFLOW_ID")
    show.add_argument("--run-id", help="a run of the workflow (default: its latest)")

    ls = command(
        "list",
        "list sagas by status",
        "List sagas by the SagaStatus search attribute, newest first: workflow "
        "id, workflow type, status, start time (UTC).",
    )
    ls.add_argument(
        "--status",
        choices=_STATUSES,
        help="only sagas in this status (default: every saga)",
    )
    ls.add_argument(
        "--limit", type=_positive, default=50, metavar="N", help="at most N (default 50)"
    )

    parked = command(
        "parked",
        "list a saga's parked undos",
        "List the undos of a saga that failed for good and wait for `sagakit resolve`.",
    )
    parked.add_argument("workflow_id", metavar="WORKFLOW_ID")
    parked.add_argument("--run-id", help="a run of the workflow (default: its latest)")

    resolve = command(
        "resolve",
        "retry or skip a parked undo",
        "Resolve a parked undo: `retry` runs it again with its retry policy (it may "
        "park again); `skip` records that it was undone by hand. Returns once the "
        "saga has the decision, not when a retried undo has run.",
    )
    resolve.add_argument("workflow_id", metavar="WORKFLOW_ID")
    resolve.add_argument("seq", metavar="SEQ", type=_positive, help="the step's number")
    resolve.add_argument("action", choices=("retry", "skip"))
    resolve.add_argument("--reason", metavar="TEXT", help="why; kept in the saga's report")
    resolve.add_argument("--run-id", help="a run of the workflow (default: its latest)")
    return p


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    return _parser().parse_args(argv)


def _fail(code: ExitCode, message: str) -> ExitCode:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the console script `sagakit` and `python -m sagakit`.

    Args:
        argv: The arguments, without the program name; default `sys.argv[1:]`.

    Returns:
        The exit status, an `ExitCode`.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
    try:
        args = _parse(argv)
    except SystemExit as e:  # --help, --version, or argparse's usage error (2)
        if e.code is None or isinstance(e.code, int):
            return e.code or 0
        return ExitCode.USAGE
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    code = _execute(args)
    # Free temporalio's runtime (its Rust threads) now, while Python runs: the
    # tracebacks of failures keep it in reference cycles that only a collection
    # frees, and freed at interpreter exit it aborts the process.
    gc.collect()
    return code


def _execute(args: argparse.Namespace) -> int:
    try:
        from sagakit._cli._commands import run  # temporalio, only now

        return int(asyncio.run(run(args)))
    except Failure as e:
        return _fail(e.code, e.message)
    except KeyboardInterrupt:
        return _fail(ExitCode.INTERRUPTED, "interrupted")
    except BrokenPipeError:  # `sagakit list | head`: the reader left
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return ExitCode.OK
    except Exception as e:
        if os.environ.get("SAGAKIT_DEBUG"):
            raise
        return _fail(
            ExitCode.FAILED,
            f"unexpected error: {type(e).__name__}: {one_line(str(e))} "
            "(SAGAKIT_DEBUG=1 shows the traceback)",
        )
