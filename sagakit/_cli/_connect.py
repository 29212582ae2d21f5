"""Reaching a Temporal cluster from a command-line tool: its failures in a few plain words.

Shared by the `sagakit` command line and the examples' main job
(`python -m examples`), so both say the same thing for the same mistake, and
name its fix where there is one:

* `explain_connect_error`: what `Client.connect` raised (the Rust core's
  debug text) as a reason such as "connection refused (is a Temporal server
  listening there?)";
* `explain_rpc_error`: what the cluster answered a call with, an unknown
  namespace with the `temporal` command that creates it;
* `quiet_runtime`: a temporalio `Runtime` whose core writes nothing to the
  terminal, since the tool says what went wrong in its own line.

Each caller adds where it was going (`cannot connect to HOST:PORT: ...`).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

from temporalio.client import Client
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from sagakit._cli._errors import one_line

__all__ = [
    "NOT_ALLOWED",
    "TIMED_OUT",
    "check_namespace",
    "explain_connect_error",
    "explain_rpc_error",
    "is_unknown_namespace",
    "quiet_runtime",
    "unknown_namespace",
]

TIMED_OUT = frozenset({RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED})
"""A call that got no answer in time (CANCELLED: temporalio's own per-call timeout)."""

NOT_ALLOWED = frozenset({RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED})
"""The cluster answered, and refused these credentials."""

# The kinds of connect error, tried in order on the text after "Failed client
# connect: ". The TLS handshake's and the key's come before the certificate's,
# whose words may also appear in theirs; "transport error" comes late, as most
# of them say it too.
_CONNECT_ERRORS = (
    ("refused", r"Connection refused"),
    ("dns", r"dns error|failed to lookup address"),
    ("starting", r"not healthy"),
    ("handshake", r"InvalidContentType|WrongVersion|CorruptMessage"),
    ("key", r"PrivateKeyParseError"),
    ("certificate", r"certificate|UnknownIssuer|BadSignature|NotValidForName"),
    ("timeout", r"timed out|timeout|deadline"),
    ("not_temporal", r"Unimplemented|404|grpc-status header missing|transport error"),
    ("not_allowed", r"Unauthenticated|PermissionDenied|unauthori[sz]ed"),
)
_CERTIFICATE_CHECK = re.compile(
    r"UnknownIssuer|BadSignature|NotValidForName|InvalidCertificate\(\w+\)"
)
# The server's own words in the core's debug text: `message: "..."` or `error: "..."`.
_SAID = re.compile(r'(?:message|error): "([^"]+)"')


def quiet_runtime(*, forward_to: logging.Logger | None = None) -> Runtime:
    """A temporalio runtime whose Rust core writes nothing to the terminal.

    Its WARN lines (ANSI-coloured even in a pipe) would interleave with the
    tool's own output, and say what the tool says in its own words.

    Args:
        forward_to: Where the core's WARN (and worse) lines go as plain
            Python log records, if anywhere.

    Pass it to every `Client.connect` (workers use their client's), and drop
    every reference to it, the clients and the workers (and the tracebacks
    that hold them: `gc.collect()`) before the interpreter exits: a runtime
    freed at exit can abort the process while one of its threads is busy.
    """
    logging_config = None
    if forward_to is not None:
        logging_config = LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=forward_to),
        )
    return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=None))


def explain_connect_error(text: str, *, timeout: float | None = None, trust_flags: str = "") -> str:
    """What `Client.connect` raised (a `RuntimeError` of the Rust core), in a few plain words.

    Args:
        text: The error's text.
        timeout: The connect timeout in seconds, to say how long it waited.
        trust_flags: The tool's flags that choose whom to trust (its CA, the
            server's name), named when the server's certificate is refused.
    """
    detail = one_line(text.removeprefix("Failed client connect: "), 2000)
    said = _SAID.findall(detail)
    kind = next((k for k, p in _CONNECT_ERRORS if re.search(p, detail, re.IGNORECASE)), None)
    match kind:
        case "refused":
            return "connection refused (is a Temporal server listening there?)"
        case "dns":
            return "cannot resolve the host name"
        case "starting":
            return "the server is still starting"
        case "handshake":
            return (
                "the TLS handshake failed: does the server speak TLS? "
                "(drop --tls / --api-key for a server without it)"
            )
        case "key":
            return "cannot use the client private key (--tls-key)"
        case "certificate":
            found = _CERTIFICATE_CHECK.search(detail)
            check = found.group(0) if found else "invalid"
            see = f"; see {trust_flags}" if trust_flags else ""
            return f"the server's TLS certificate is not trusted ({check}{see})"
        case "timeout":
            return f"no answer within {timeout:g}s" if timeout else "no answer in time"
        case "not_temporal":
            return "something answers there, but not a Temporal frontend (gRPC)"
        case "not_allowed":
            return "not allowed (check --api-key)" + (f": {said[-1]}" if said else "")
    return said[-1] if said else detail[:200]


def unknown_namespace(namespace: str) -> str:
    """The namespace does not exist: say so, and how to make it."""
    return (
        f"namespace {namespace!r} does not exist (create it with `temporal operator "
        f"namespace create --namespace {namespace}`, or pick another with --namespace)"
    )


def is_unknown_namespace(error: RPCError) -> bool:
    """Whether the cluster refused a call because its namespace does not exist."""
    return error.status == RPCStatusCode.NOT_FOUND and "namespace" in error.message.lower()


def explain_rpc_error(error: RPCError, *, namespace: str, timeout: float | None = None) -> str:
    """What the cluster answered a call with, in a few plain words.

    Args:
        error: The cluster's answer.
        namespace: The namespace the call was in.
        timeout: The call's timeout in seconds, to say how long it waited.
    """
    message = one_line(error.message, 200)
    if is_unknown_namespace(error):
        return unknown_namespace(namespace)
    if error.status in NOT_ALLOWED:
        return f"not allowed in namespace {namespace!r} (check --api-key): {message}"
    if error.status in TIMED_OUT:
        return f"no answer within {timeout:g}s" if timeout else "no answer in time"
    if error.status == RPCStatusCode.UNAVAILABLE:
        return f"the cluster is unavailable: {message}"
    return message


async def check_namespace(client: Client, namespace: str, rpc_timeout: timedelta) -> None:
    """Ask the cluster about `namespace`: it raises if the namespace does not exist.

    Raises:
        RPCError: The cluster's answer; `is_unknown_namespace` tells the usual one.
    """
    # The cluster's API module, only here: a tool that never gets this far skips it.
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace), timeout=rpc_timeout
    )
