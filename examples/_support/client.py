"""Reaching a Temporal cluster from a command-line tool: retried, explained, shut down cleanly.

Three things the main job (`python -m examples`) needs that `Client.connect`
alone does not give:

* a deadline: a server that is still starting ("Frontend is not healthy
  yet"), or a loaded machine that answers late, is retried until it passes;
  a mistake (an unknown host, TLS against a plaintext server, a namespace that
  does not exist) fails at once;
* one plain line for every failure, instead of the Rust core's debug text:
  the same words the `sagakit` command line uses (`sagakit._cli._connect`);
* a temporalio `Runtime` of its own, with the core's log lines (colour codes
  and all) kept off the terminal, that the caller can drop while Python still
  runs: a runtime freed only at interpreter exit can abort the process
  (`Fatal Python error: PyGILState_Release`) when one of its threads is still
  busy. See `quiet_runtime`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from sagakit._cli._connect import (
    TIMED_OUT,
    check_namespace,
    explain_connect_error,
    explain_rpc_error,
)
from sagakit._cli._connect import quiet_runtime as _quiet_runtime

__all__ = ["Unreachable", "connect", "quiet_runtime"]

CORE_LOGGER = logging.getLogger("examples.temporal_core")
"""Where the Rust core's log lines go with `quiet_runtime(verbose=True)`."""

# Errors that a server still starting, or a busy machine, gives: worth another try.
_TRANSIENT = re.compile(
    r"Connection refused|not healthy|Unavailable|timed out|Timeout expired|deadline"
    r"|Connection reset|broken pipe",
    re.IGNORECASE,
)
_TRANSIENT_STATUS = {RPCStatusCode.UNAVAILABLE, *TIMED_OUT}


class Unreachable(Exception):
    """No cluster (or no namespace) to run on; `str()` is the one line to show."""


def quiet_runtime(*, verbose: bool = False) -> Runtime:
    """A temporalio runtime whose Rust core writes nothing to the terminal.

    With `verbose`, its WARN and worse lines go to `CORE_LOGGER` as plain
    Python log records. Drop it before the interpreter exits (see the module).
    """
    return _quiet_runtime(forward_to=CORE_LOGGER if verbose else None)


async def connect(
    address: str,
    *,
    namespace: str,
    runtime: Runtime,
    deadline: float,
    on_retry: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> Client:
    """`Client.connect`, then a check that the namespace exists; retried until `deadline` s.

    Args:
        address: `host:port` of the frontend.
        namespace: the namespace the client works in; it must exist.
        runtime: the runtime the client (and its workers) run on.
        deadline: seconds to keep retrying transient failures.
        on_retry: called with the reason before the first retry.
        **kwargs: more `Client.connect` keywords (`tls`, `api_key`, `data_converter`).

    Raises:
        Unreachable: a failure that retrying does not mend, or the deadline passed.
    """
    give_up = time.monotonic() + deadline
    pause = 0.1
    while True:
        left = give_up - time.monotonic()
        try:
            return await _connect_once(address, namespace, runtime, max(left, 1.0), kwargs)
        except _Failed as e:
            if not e.transient:
                raise Unreachable(f"cannot use {address}: {e}") from None
            if time.monotonic() + pause > give_up:
                raise Unreachable(
                    f"cannot connect to {address} within {deadline:g}s: {e}"
                ) from None
            if on_retry is not None:
                on_retry(str(e))
                on_retry = None
        await asyncio.sleep(pause)
        pause = min(pause * 2, 2.0)


class _Failed(Exception):
    """One try failed; `transient`: another may pass."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


async def _connect_once(
    address: str, namespace: str, runtime: Runtime, left: float, kwargs: dict[str, Any]
) -> Client:
    rpc_timeout = timedelta(seconds=min(left, 10.0))
    try:
        client = await Client.connect(
            address,
            namespace=namespace,
            runtime=runtime,
            connect_timeout=rpc_timeout,
            **kwargs,
        )
    except RuntimeError as e:  # the Rust core reports connect failures as RuntimeError
        raise _Failed(
            explain_connect_error(str(e), timeout=rpc_timeout.total_seconds()),
            transient=_TRANSIENT.search(str(e)) is not None,
        ) from None
    try:
        await check_namespace(client, namespace, rpc_timeout)
    except RPCError as e:
        raise _Failed(
            explain_rpc_error(e, namespace=namespace, timeout=rpc_timeout.total_seconds()),
            transient=e.status in _TRANSIENT_STATUS,
        ) from None
    return client
