"""Operating sagas on Temporal: parked undos, the `SagaStatus` search attribute, metrics.

The workflow side (`TemporalExecutor`) serves the report query, registers the
`sagakit_resolve` update and reports its status; the client side here reads
parked undos through the query and resolves them through the update.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import temporalio.client
import temporalio.common
import temporalio.service
from temporalio import workflow

from sagakit._exceptions import SagaStateError, cut
from sagakit._parking import BY_LIMIT
from sagakit._report import ParkedUndo, SagaReport, SagaStatus
from sagakit.temporal._private import client_identity

__all__ = [
    "REPORT_QUERY",
    "RESOLVE_UPDATE",
    "SAGA_STATUS",
    "parked",
    "resolve",
    "saga_search_attributes",
]

REPORT_QUERY: Final = "sagakit_report"
"""The query that returns the live report (JSON) of the workflow's latest saga."""

RESOLVE_UPDATE: Final = "sagakit_resolve"
"""The Workflow Update that resolves a parked undo: one arg, `{"seq", "action", "reason", "by"}`."""

SAGA_STATUS: Final = temporalio.common.SearchAttributeKey.for_keyword("SagaStatus")
"""The `SagaStatus` search attribute (Keyword): a `SagaStatus` value, kept up to date by
the saga of a workflow started with it (see `saga_search_attributes`)."""

# Statuses a saga run counts as it reaches them: sagakit_sagas_<status>.
_COUNTED: Final = {
    SagaStatus.RUNNING: "sagakit_sagas_started",
    SagaStatus.SUCCEEDED: "sagakit_sagas_succeeded",
    SagaStatus.COMPENSATED: "sagakit_sagas_compensated",
    SagaStatus.COMPENSATION_FAILED: "sagakit_sagas_compensation_failed",
    SagaStatus.COMMITTED_FAILED: "sagakit_sagas_committed_failed",
    SagaStatus.PARKED: "sagakit_sagas_parked",
}


def count_status(status: SagaStatus) -> None:
    """Count a saga reaching `status` on the workflow's metric meter (silent in replay)."""
    name = _COUNTED.get(status)
    if name is not None:
        workflow.metric_meter().create_counter(name, "sagas", "sagas").add(1)


def saga_search_attributes(
    status: SagaStatus = SagaStatus.RUNNING,
) -> temporalio.common.TypedSearchAttributes:
    """Search attributes to start a saga's workflow with, so it keeps `SagaStatus` current.

    A workflow started without them upserts nothing (the namespace may not
    have the attribute registered, and an upsert of an unknown one would fail
    the workflow task). Register it once per namespace:
    `temporal operator search-attribute create --name SagaStatus --type Keyword`.

    Example:
        ```python
        await client.start_workflow(
            PlaceOrder.run, order, id=..., task_queue=...,
            search_attributes=saga_search_attributes(),
        )
        ```
    """
    return temporalio.common.TypedSearchAttributes(
        [temporalio.common.SearchAttributePair(SAGA_STATUS, status.value)]
    )


_FIELDS: Final = ("seq", "action", "reason", "by")
# What the server says of an update to a workflow that closed before taking it.
_CLOSED: Final = re.compile(r"aborted by closing workflow|already completed", re.I)


def request_fields(request: Any) -> tuple[Any, Any, Any, Any]:
    """The `sagakit_resolve` request's seq, action, reason and by, unchecked.

    Raises:
        SagaStateError: it is not a dict with `seq` and `action`, or has a key
            of its own (a misspelled `reasons` would otherwise be dropped).
    """
    if isinstance(request, dict) and "seq" in request and "action" in request:
        unknown = [k for k in request if k not in _FIELDS]
        if not unknown:
            return request["seq"], request["action"], request.get("reason"), request.get("by")
        what = f"unknown keys {cut(repr(unknown), 100)}"
    else:
        what = f"got {cut(repr(request), 100)}"
    raise SagaStateError(
        f"{RESOLVE_UPDATE} takes {{'seq': int, 'action': 'retry' | 'skip', "
        f"'reason': str | None, 'by': str | None}}; {what}"
    )


async def parked(handle: temporalio.client.WorkflowHandle[Any, Any]) -> list[ParkedUndo]:
    """The parked undos of the workflow's (latest) saga, through the report query.

    Needs a worker polling the workflow's task queue (a query runs on one).
    """
    report = SagaReport.model_validate(await handle.query(REPORT_QUERY))
    return report.parked


async def resolve(
    handle: temporalio.client.WorkflowHandle[Any, Any],
    seq: int,
    action: Literal["retry", "skip"],
    *,
    reason: str | None = None,
    by: str | None = None,
) -> None:
    """Resolve the parked undo of step `seq`: "retry" it, or "skip" it (undone by hand).

    Sends the `sagakit_resolve` update; returns once the saga has taken the
    decision, not when a retried undo has run (watch it with `parked` or the
    report query).

    Args:
        handle: The saga's workflow.
        seq: The step's number (`ParkedUndo.seq`).
        action: "retry" runs the undo again by its retry policy (it may park
            again); "skip" records that it was undone by hand.
        reason: Why, kept in the report.
        by: Who, kept in the report; default: the client's identity.

    Raises:
        SagaStateError: the update's validator refused it (`seq` not an int,
            an unknown action, `reason` or `by` not a string, `reason` over
            4 KiB of UTF-8 or `by` over 200 characters, no parked undo at
            `seq`, nothing parked, or `SagaOptions.resolve_check` refused it):
            nothing was written to the workflow's history. Or the workflow
            closed before it took the decision (another decision won a race).
    """
    if by is None:
        identity = client_identity(handle)
        by = None if identity is None else identity[:BY_LIMIT]
    request = {"seq": seq, "action": action, "reason": reason, "by": by}
    try:
        await handle.execute_update(RESOLVE_UPDATE, request)
    except temporalio.client.WorkflowUpdateFailedError as e:
        cause = e.cause
        message = getattr(cause, "message", None) or str(cause)
        raise SagaStateError(f"{handle.id}: {message}") from e
    except temporalio.service.RPCError as e:
        # The workflow closed before it took this decision: another decision won
        # the race and the saga ended, or it ended on its own (park_timeout).
        if not _CLOSED.search(e.message):
            raise
        raise SagaStateError(
            f"{handle.id}: the decision {action!r} on step {seq!r} was not taken: the saga's "
            f"workflow closed first (another decision may have won the race; see its "
            f"report: `sagakit show {handle.id}`). Server: {e.message}"
        ) from e
