"""The commands of `sagakit` (see `sagakit._cli`): everything that talks to the cluster."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import socket
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from temporalio.client import (
    Client,
    TLSConfig,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.service import RPCError, RPCStatusCode

from sagakit import SagaError, SagaReport, SagaStatus
from sagakit._cli._connect import (
    NOT_ALLOWED,
    TIMED_OUT,
    check_namespace,
    explain_connect_error,
    explain_rpc_error,
    is_unknown_namespace,
    quiet_runtime,
)
from sagakit._cli._errors import PROG, ExitCode, Failure, one_line
from sagakit.temporal import (
    REPORT_QUERY,
    RESOLVE_UPDATE,
    SAGA_STATUS,
    report_from_failure,
    resolve,
)

__all__ = ["run"]

T = TypeVar("T")

SEARCH_ATTRIBUTE = SAGA_STATUS.name
_REGISTER_HINT = (
    f"register it with `temporal operator search-attribute create --name {SEARCH_ATTRIBUTE} "
    f"--type Keyword` (a dev server: `temporal server start-dev --search-attribute "
    f"{SEARCH_ATTRIBUTE}=Keyword`)"
)
# The cluster's answers that say it cannot be used as given: exit 3, not 1.
_UNREACHABLE = {RPCStatusCode.UNAVAILABLE, *TIMED_OUT, *NOT_ALLOWED}
# A saga still under way by its search attribute: if its workflow closed, say so.
_UNDER_WAY = {"running", "compensating", "parked"}
# A query or update the workflow has no handler for: "... expected but not found"
# (Python SDK), "unknown queryType" (Go, Java), "unknown update" (and the like).
_NO_HANDLER = re.compile(r"expected but not found|unknown query ?type|unknown update", re.I)


@dataclass(frozen=True)
class _Conn:
    """Where and how to connect, and how long to wait."""

    address: str
    namespace: str
    api_key: str | None
    tls: bool | TLSConfig
    identity: str
    ui_url: str
    timeout: float
    worker_timeout: float

    @property
    def rpc_timeout(self) -> timedelta:
        return timedelta(seconds=self.timeout)

    def ui_link(self, workflow_id: str, run_id: str) -> str:
        ns, wid = quote(self.namespace, safe=""), quote(workflow_id, safe="")
        return f"{self.ui_url.rstrip('/')}/namespaces/{ns}/workflows/{wid}/{run_id}"


# -- connecting -------------------------------------------------------------------


def _read_pem(flag: str, path: str, marker: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise Failure(ExitCode.USAGE, f"{flag} {path}: {e.strerror or e}") from None
    if b"-----BEGIN " not in data or marker.encode() not in data:
        raise Failure(ExitCode.USAGE, f"{flag} {path}: no PEM {marker!r} block in it")
    return data


def _tls(args: argparse.Namespace) -> bool | TLSConfig:
    if bool(args.tls_cert) != bool(args.tls_key):
        raise Failure(ExitCode.USAGE, "--tls-cert and --tls-key go together (mTLS)")
    if args.tls_cert or args.tls_ca or args.tls_server_name:
        return TLSConfig(
            server_root_ca_cert=(
                _read_pem("--tls-ca", args.tls_ca, "CERTIFICATE") if args.tls_ca else None
            ),
            client_cert=(
                _read_pem("--tls-cert", args.tls_cert, "CERTIFICATE") if args.tls_cert else None
            ),
            client_private_key=(
                _read_pem("--tls-key", args.tls_key, "PRIVATE KEY") if args.tls_key else None
            ),
            domain=args.tls_server_name,
        )
    return bool(args.tls or args.api_key)


def _default_identity() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in the environment or the password database
        user = "unknown"
    return f"{PROG}:{user}@{socket.gethostname()}"


def _conn(args: argparse.Namespace) -> _Conn:
    return _Conn(
        address=args.address,
        namespace=args.namespace,
        api_key=args.api_key,
        tls=_tls(args),
        identity=args.identity or _default_identity(),
        ui_url=args.ui_url,
        timeout=args.timeout,
        worker_timeout=args.worker_timeout,
    )


async def _connect(conn: _Conn) -> Client:
    try:
        return await asyncio.wait_for(
            Client.connect(
                conn.address,
                namespace=conn.namespace,
                api_key=conn.api_key,
                tls=conn.tls,
                identity=conn.identity,
                connect_timeout=conn.rpc_timeout,
                runtime=quiet_runtime(),
            ),
            conn.timeout + 1,
        )
    except TimeoutError:
        raise Failure(
            ExitCode.UNREACHABLE,
            f"cannot connect to {conn.address}: no answer within {conn.timeout:g}s",
        ) from None
    except (RuntimeError, RPCError) as e:  # temporalio's bridge raises RuntimeError
        raise Failure(
            ExitCode.UNREACHABLE,
            f"cannot connect to {conn.address}: "
            + explain_connect_error(
                str(e), timeout=conn.timeout, trust_flags="--tls-ca, --tls-server-name"
            ),
        ) from None


async def _namespace_missing(client: Client, conn: _Conn) -> Failure | None:
    """The failure to report if the namespace does not exist, else `None`."""
    try:
        await check_namespace(client, conn.namespace, conn.rpc_timeout)
    except RPCError as e:
        if is_unknown_namespace(e):
            return _rpc_failure(e, conn)
    return None


def _rpc_failure(e: RPCError, conn: _Conn) -> Failure:
    """An error of the cluster (not of a worker) as a one-line failure."""
    text = explain_rpc_error(e, namespace=conn.namespace, timeout=conn.timeout)
    if e.status in _UNREACHABLE or is_unknown_namespace(e):
        return Failure(ExitCode.UNREACHABLE, f"cannot use {conn.address}: {text}")
    return Failure(ExitCode.FAILED, text)


async def _describe(
    client: Client, conn: _Conn, workflow_id: str, run_id: str | None
) -> WorkflowExecutionDescription:
    try:
        return await client.get_workflow_handle(workflow_id, run_id=run_id).describe(
            rpc_timeout=conn.rpc_timeout
        )
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            missing = await _namespace_missing(client, conn)
            if missing is not None:
                raise missing from None
            what = f"no run {run_id} of workflow" if run_id else "no workflow"
            raise Failure(
                ExitCode.NOT_FOUND, f"{what} {workflow_id!r} in namespace {conn.namespace!r}"
            ) from None
        if e.status == RPCStatusCode.INVALID_ARGUMENT and run_id:
            raise Failure(ExitCode.USAGE, f"--run-id {run_id}: {e.message}") from None
        raise _rpc_failure(e, conn) from None


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return "unknown" if status is None else status.name.lower().replace("_", " ")


def _not_a_saga(desc: WorkflowExecutionDescription, what: str) -> Failure:
    return Failure(
        ExitCode.NOT_FOUND,
        f"{desc.id!r} is not a saga: its workflow {desc.workflow_type} has no {what} "
        f"(a sagakit TemporalExecutor registers it)",
    )


def _no_worker(conn: _Conn, desc: WorkflowExecutionDescription, what: str) -> str:
    return (
        f"no worker answered the {what} within {conn.worker_timeout:g}s: it needs a running "
        f"worker on task queue {desc.task_queue!r} (or raise --worker-timeout)"
    )


class _NoWorker(Exception):
    """No worker answered within --worker-timeout."""


async def _ask_worker(
    call: Awaitable[T], conn: _Conn, desc: WorkflowExecutionDescription, what: str
) -> T:
    """A query or update, bounded by --worker-timeout; its errors as one-line failures.

    Raises:
        _NoWorker: No worker answered in time.
        Failure: It failed.
    """
    try:
        return await asyncio.wait_for(call, conn.worker_timeout)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise _NoWorker(_no_worker(conn, desc, what)) from None
    except WorkflowQueryFailedError as e:
        if _NO_HANDLER.search(e.message):
            raise _not_a_saga(desc, what) from None
        raise Failure(ExitCode.FAILED, f"the {what} failed: {one_line(e.message)}") from None
    except WorkflowUpdateFailedError as e:
        cause = e.cause
        text = str(getattr(cause, "message", "") or cause)
        if _NO_HANDLER.search(text):
            raise _not_a_saga(desc, what) from None
        raise Failure(ExitCode.FAILED, f"rejected: {one_line(text)}") from None
    except RPCError as e:
        if e.status in TIMED_OUT:
            raise _NoWorker(_no_worker(conn, desc, what)) from None
        if e.status == RPCStatusCode.NOT_FOUND and "completed" in e.message:
            raise Failure(
                ExitCode.FAILED, f"workflow {desc.id!r} has closed: {one_line(e.message)}"
            ) from None
        raise _rpc_failure(e, conn) from None
    except SagaError as e:  # `resolve` raises SagaStateError for a refused update
        if _NO_HANDLER.search(str(e)):
            raise _not_a_saga(desc, what) from None
        raise Failure(ExitCode.FAILED, f"rejected: {one_line(str(e))}") from None


# -- the commands -----------------------------------------------------------------


def _header(desc: WorkflowExecutionDescription, saga: str | None) -> str:
    """`show`'s first line: the workflow, its run, its status and its saga's."""
    status = f"workflow {_status_name(desc.status)}" + (f", saga {saga}" if saga else "")
    return f"{desc.id}  {desc.workflow_type}  run {desc.run_id}  {status}"


def _ended(desc: WorkflowExecutionDescription, saga: str | None) -> str:
    """How a closed run stands: its saga's status (if known) and its workflow's."""
    workflow = _status_name(desc.status)
    return f"its saga is {saga} (workflow {workflow})" if saga else f"its workflow is {workflow}"


def _read_report(data: Any, what: str) -> SagaReport:
    try:
        return SagaReport.model_validate(data)
    except ValueError as e:  # pydantic's ValidationError
        raise Failure(
            ExitCode.FAILED, f"cannot read the {what}'s answer: {one_line(str(e))}"
        ) from None


async def _show(client: Client, conn: _Conn, args: argparse.Namespace) -> ExitCode:
    desc = await _describe(client, conn, args.workflow_id, args.run_id)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(desc.id, run_id=desc.run_id)
    link = f"Web UI: {conn.ui_link(desc.id, desc.run_id)}"
    what = f"{REPORT_QUERY} query"
    try:
        data = await _ask_worker(handle.query(REPORT_QUERY), conn, desc, what)
    except _NoWorker as no_worker:
        if desc.status == WorkflowExecutionStatus.FAILED:
            report, why = await _report_of_failed_run(handle, conn, desc)
        elif desc.status == WorkflowExecutionStatus.RUNNING:
            report, why = None, "the workflow is running"
        else:
            status = _status_name(desc.status)
            report, why = None, f"the run is {status}, so only the query has its report"
        if report is None:
            # What the saga last said of itself, if it was started to say it.
            print(_header(desc, desc.typed_search_attributes.get(SAGA_STATUS)))
            print(link)
            raise Failure(ExitCode.FAILED, f"no timeline: {why}, and {no_worker}") from None
        source = f"from the failure of the closed run (no worker answered the {what})"
    else:
        report = _read_report(data, what)
        source = f"live, from the {what}"
    print(_header(desc, report.status.value))
    print(f"report: {source}")
    print(report.timeline())
    print(link)
    return ExitCode.OK


async def _report_of_failed_run(
    handle: WorkflowHandle[Any, Any], conn: _Conn, desc: WorkflowExecutionDescription
) -> tuple[SagaReport | None, str]:
    """The report in a failed run's failure, or `None` and why not."""
    try:
        await handle.result(follow_runs=False, rpc_timeout=conn.rpc_timeout)
    except WorkflowFailureError as e:
        cause = e.cause
        failure = one_line(f"{getattr(cause, 'type', None) or type(cause).__name__}: {cause}")
        try:
            report = report_from_failure(e, saga_id=f"{desc.id}/{desc.run_id}")
        except ValueError as bad:
            return None, f"cannot read the report in its failure ({one_line(str(bad))})"
        if report is None:
            return None, f"the run failed ({failure[:120]}) with no saga report in its failure"
        return report, ""
    except RPCError as e:
        raise _rpc_failure(e, conn) from None
    except Exception as e:  # a failure its data converter cannot decode, e.g. a codec's
        return None, f"cannot decode the run's failure ({type(e).__name__}: {one_line(str(e))})"
    return None, "the run has no failure"


async def _list(client: Client, conn: _Conn, args: argparse.Namespace) -> ExitCode:
    query = (
        f'{SEARCH_ATTRIBUTE} = "{args.status}"'
        if args.status
        else f"{SEARCH_ATTRIBUTE} IS NOT NULL"
    )
    rows: list[tuple[str, str, str, str]] = []
    try:
        async for wf in client.list_workflows(
            query, limit=args.limit, page_size=min(args.limit, 1000), rpc_timeout=conn.rpc_timeout
        ):
            saga_status = wf.typed_search_attributes.get(SAGA_STATUS) or "?"
            if saga_status in _UNDER_WAY and wf.status not in (
                None,
                WorkflowExecutionStatus.RUNNING,
            ):
                saga_status += f" (workflow {_status_name(wf.status)})"
            started = wf.start_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            rows.append((wf.id, wf.workflow_type, saga_status, started))
    except RPCError as e:
        if e.status == RPCStatusCode.INVALID_ARGUMENT and SEARCH_ATTRIBUTE in e.message:
            raise Failure(
                ExitCode.FAILED,
                f"namespace {conn.namespace!r} has no {SEARCH_ATTRIBUTE} search attribute: "
                + _REGISTER_HINT,
            ) from None
        if e.status == RPCStatusCode.NOT_FOUND:
            raise (await _namespace_missing(client, conn) or _rpc_failure(e, conn)) from None
        raise _rpc_failure(e, conn) from None
    if not rows:
        print(f"no sagas with {query} in namespace {conn.namespace}")
        return ExitCode.OK
    head = ("WORKFLOW ID", "TYPE", "STATUS", "STARTED (UTC)")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    for r in [head, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[3])
    return ExitCode.OK


async def _closed_saga_status(
    handle: WorkflowHandle[Any, Any], conn: _Conn, desc: WorkflowExecutionDescription
) -> str | None:
    """The status of a closed run's saga, or `None` when nothing tells it.

    The cheap sources first: the report in a failed run's failure, then a final
    SagaStatus. A status still under way (the workflow was terminated, or timed
    out) or none at all asks the report query, which a worker answers for a
    closed run too, and which tells a workflow that is no saga.

    Raises:
        Failure: The workflow is not a saga (NOT_FOUND), or the query failed.
    """
    attribute = desc.typed_search_attributes.get(SAGA_STATUS)
    if desc.status == WorkflowExecutionStatus.FAILED:
        report, _ = await _report_of_failed_run(handle, conn, desc)
        if report is not None:
            return report.status.value
    if attribute is not None and attribute not in _UNDER_WAY:
        return attribute
    what = f"{REPORT_QUERY} query"
    try:
        data = await _ask_worker(handle.query(REPORT_QUERY), conn, desc, what)
    except _NoWorker:
        # A saga's workflow that completed returned from its saga.
        if attribute is not None and desc.status == WorkflowExecutionStatus.COMPLETED:
            return SagaStatus.SUCCEEDED.value
        return attribute
    return _read_report(data, what).status.value


async def _parked(client: Client, conn: _Conn, args: argparse.Namespace) -> ExitCode:
    desc = await _describe(client, conn, args.workflow_id, args.run_id)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(desc.id, run_id=desc.run_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        # Only a running workflow waits for a decision; a closed one needs no worker to say so.
        saga = await _closed_saga_status(handle, conn, desc)
        still = " can be resolved" if saga == SagaStatus.PARKED else ""
        print(f"no parked undo in {desc.id}{still}: {_ended(desc, saga)}")
        return ExitCode.OK
    what = f"{REPORT_QUERY} query"
    try:
        report = _read_report(await _ask_worker(handle.query(REPORT_QUERY), conn, desc, what), what)
    except _NoWorker as e:
        raise Failure(ExitCode.FAILED, str(e)) from None
    undos = report.parked
    if not undos:
        print(f"no parked undo in {desc.id}: its saga is {report.status.value}")
        return ExitCode.OK
    for u in undos:
        attempts = f"{u.attempts} attempt{'s' if u.attempts != 1 else ''}" if u.attempts else ""
        error = f"{u.error.type}: {one_line(u.error.message)}" if u.error else ""
        tail = ", ".join(x for x in (attempts, error) if x)
        print(f"{u.seq}. {u.name} (undo {u.undo})" + (f": {tail}" if tail else ""))
    return ExitCode.OK


async def _resolve(client: Client, conn: _Conn, args: argparse.Namespace) -> ExitCode:
    desc = await _describe(client, conn, args.workflow_id, args.run_id)
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(desc.id, run_id=desc.run_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        saga = await _closed_saga_status(handle, conn, desc)
        raise Failure(ExitCode.FAILED, f"nothing to resolve in {desc.id!r}: {_ended(desc, saga)}")
    call = resolve(handle, args.seq, args.action, reason=args.reason, by=conn.identity)
    try:
        await _ask_worker(call, conn, desc, f"{RESOLVE_UPDATE} update")
    except _NoWorker as e:
        raise Failure(
            ExitCode.FAILED,
            f"{e}; it may still reach the saga when a worker starts: "
            f"check with `{PROG} parked {desc.id}`",
        ) from None
    reason = f" ({args.reason})" if args.reason else ""
    print(f"{desc.id}: the undo of step {args.seq} resolved with {args.action}{reason}")
    return ExitCode.OK


_COMMANDS = {"show": _show, "list": _list, "parked": _parked, "resolve": _resolve}


async def run(args: argparse.Namespace) -> ExitCode:
    """Connect as `args` say and run their command."""
    conn = _conn(args)
    client = await _connect(conn)
    return await _COMMANDS[args.command](client, conn, args)
