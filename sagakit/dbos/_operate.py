"""Operators and parked undos on DBOS: a DBOS event lists them, a DBOS message resolves one.

While a saga waits for operators, its workflow publishes the parked undos as
the event `sagakit.parked` (with the round of waiting they belong to) and
receives decisions on the topic `sagakit.resolve`. Each decision is checked
in the workflow, as on every backend (`Park.check_resolution`, the operators'
`resolve_check` included), and answered with the event
`sagakit.resolve.<request id>`: `resolve` returns once it is taken, or raises
the refusal.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from dbos import DBOS

from sagakit._exceptions import SagaStateError
from sagakit._parking import Park, check_request
from sagakit._report import ParkedUndo

__all__ = ["PARKED_EVENT", "RESOLVE_TOPIC", "parked", "resolve", "take_decisions"]

PARKED_EVENT = "sagakit.parked"
"""The DBOS event a waiting saga lists its parked undos in."""
RESOLVE_TOPIC = "sagakit.resolve"
"""The DBOS message topic a waiting saga takes decisions on."""

_FOREVER = 10 * 365 * 86400.0  # a wait with no park_timeout, as DBOS's recv needs one


async def take_decisions(
    park: Park, event: asyncio.Event, end: float | None, n: int, since: dict[int, int]
) -> bool:
    """In the workflow: list the parked undos, then take decisions until one is accepted.

    `end` is when the wait runs out (`park_timeout`, on the wall clock), if it
    does; each `DBOS.recv` checkpoints its own end too. `n` numbers this round
    of waiting; `since` holds, by seq, the round from which each undo has been
    listed without a break (kept by the caller from round to round). A
    decision is refused if it was sent before that round, so it never lands on
    an undo that parked again; one sent for an undo that stayed parked (while
    another's retry ran) is taken.
    """
    if end is None:
        end = time.time() + _FOREVER
    undecided = park.parked()
    listed_seqs = {p.seq for p in undecided}
    for gone in [s for s in since if s not in listed_seqs]:
        del since[gone]
    for p in undecided:
        since.setdefault(p.seq, n)
    await _list(n, undecided)
    accepted = False
    while not event.is_set():
        message = await DBOS.recv_async(RESOLVE_TOPIC, max(end - time.time(), 0.0))
        if message is None:
            break  # out of time
        request = message if isinstance(message, dict) else {}
        answer = "ok"
        try:
            seq, sent_in = request.get("seq"), request.get("round")
            first = since.get(seq) if type(seq) is int else None
            if first is not None and not (type(sent_in) is int and first <= sent_in <= n):
                raise SagaStateError(
                    f"step {seq!r} has no parked undo awaiting this decision: it was sent "
                    f"before the undo parked again; read the parked undos again"
                )
            fields = [seq, *(request.get(k) for k in ("action", "reason", "by"))]
            accepted_request = park.check_resolution(*fields)
            park.resolve(
                accepted_request.seq,
                accepted_request.action,
                reason=accepted_request.reason,
                by=accepted_request.by,
            )
            since.pop(accepted_request.seq, None)
            accepted = True
            # Still listed: the undos left parked, resolvable while the decided ones run.
            await _list(n, park.parked())
        except SagaStateError as e:
            answer = str(e)
        await DBOS.set_event_async(f"{RESOLVE_TOPIC}.{request.get('id')}", answer)
    if not accepted:  # out of time or cancelled: no decision is taken from here on
        await _list(n, [])
    return event.is_set()


async def _list(n: int, undecided: list[ParkedUndo]) -> None:
    listed = [p.model_dump(mode="json") for p in undecided]
    await DBOS.set_event_async(PARKED_EVENT, {"round": n, "parked": listed})


async def parked(workflow_id: str) -> list[ParkedUndo]:
    """The undos of a saga workflow that wait for an operator now, in step order.

    Empty until the saga has run every undo once and waits.
    """
    listed = await DBOS.get_event_async(workflow_id, PARKED_EVENT, timeout_seconds=0)
    return [ParkedUndo.model_validate(p) for p in (listed or {}).get("parked", [])]


async def resolve(
    workflow_id: str,
    seq: int,
    action: str,
    *,
    reason: str | None = None,
    by: str | None = None,
) -> None:
    """Resolve the parked undo of step `seq` of a saga workflow: "retry" or "skip".

    Returns once the saga has taken the decision (not when a retried undo
    ran; but a saga running another undo's retry takes it after that retry);
    bound the wait with `asyncio.timeout` if the saga may be busy.

    Raises:
        SagaStateError: refused: a wrong seq, action, reason or by, a decision
            that lost a race, `SagaOptions.resolve_check`; or the saga ended
            before it took the decision.
    """
    check_request(workflow_id, seq, action, reason, by)  # types and sizes, before sending
    listed = await DBOS.get_event_async(workflow_id, PARKED_EVENT, timeout_seconds=0)
    if not listed or not listed.get("parked"):
        raise SagaStateError(
            f"step {seq!r} of saga {workflow_id} has no parked undo: no undo awaits a decision now"
        )
    request_id = uuid.uuid4().hex
    request = {"id": request_id, "round": listed["round"], "seq": seq, "action": action}
    await DBOS.send_async(workflow_id, {**request, "reason": reason, "by": by}, RESOLVE_TOPIC)
    key = f"{RESOLVE_TOPIC}.{request_id}"
    ended = False
    while True:
        answer: Any = await DBOS.get_event_async(workflow_id, key, timeout_seconds=0.2)
        if answer == "ok":
            return
        if answer is not None:
            raise SagaStateError(answer)
        if ended:
            raise SagaStateError(
                f"step {seq!r} of saga {workflow_id} has no parked undo: the saga ended "
                f"before it took this decision"
            )
        status = await DBOS.get_workflow_status_async(workflow_id)
        # Ended: look for the answer once more, as the saga may have answered, then ended,
        # since the last look (the decision that let it end).
        ended = status is None or status.status not in ("PENDING", "ENQUEUED")
