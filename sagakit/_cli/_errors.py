"""How a `sagakit` command ends: its exit status, and the one line that says why.

Both halves of the CLI (and `_connect`) raise and read these: `sagakit._cli` (the command line,
no temporalio) and `_commands` (the cluster), so they live apart from both.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PROG", "ExitCode", "Failure", "one_line"]

PROG = "sagakit"


class ExitCode(IntEnum):
    """What the command's exit status says."""

    OK = 0
    """It did what was asked."""
    FAILED = 1
    """The operation failed or was rejected: no worker answered, the saga's
    validator refused a resolution, the saga has ended (nothing to resolve),
    no report could be read, the namespace lacks the SagaStatus search
    attribute."""
    USAGE = 2
    """Bad command line: a flag, an argument, a TLS file."""
    UNREACHABLE = 3
    """Cannot reach the cluster or the namespace: address, TLS, credentials,
    an unknown namespace, no answer in time."""
    NOT_FOUND = 4
    """No such workflow (or run), or the workflow, running or closed, is not a saga."""
    INTERRUPTED = 130
    """Ctrl-C."""


class Failure(Exception):
    """Ends the command: one line on stderr and this exit code."""

    def __init__(self, code: ExitCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def one_line(text: str, limit: int = 300) -> str:
    """`text` with its white space folded to single spaces, cut to `limit` characters."""
    return " ".join(text.split())[:limit]
