"""The current step, carried from workflow to activity: in the activity id, else a header.

`sagakit._context._current` lives in the workflow's task; an activity runs in
another task, maybe on another worker, maybe in another process. It learns its
step from what Temporal gives every activity anyway (`activity.info()`):

* the workflow run that scheduled it: the saga id is that run's
  `workflow_id/run_id`, plus `/n` for the n-th saga of the run;
* its activity id, which sagakit chooses (`step_activity_id`): `seq.name` for a
  do, `seq.name.undo` for an undo, prefixed `n/` for the n-th saga of the run.
  A child workflow step's id is the parent's workflow id, `.`, the same.

Nothing else travels in the common case, so no history event carries more than
the readable id. The `sagakit` header is sent only when the id cannot tell the
whole step (`encode_step`): an undo whose do did not succeed (its `do_outcome`),
a do whose name ends in `.undo` (its id reads as an undo), the hook (seq 0),
and a step passed on to what sagakit did not name (the activities an inline
step or a child workflow run as a step schedules). The executor decides
(`id_tells`, `send_header`); the workflow interceptor adds it. The
header is a JSON array `[seq, name, phase, outcome]` plus, when the saga is not
the run's first, its `n`, or, from another run, its whole saga id. Workflows
started before sagakit sent it only when needed sent it with every activity;
it is still read first wherever it is present.

Activity ids are part of the commands replay checks, so their format cannot
change without breaking the replay of running workflows: the parser reads the
format sagakit has always written.
"""

from __future__ import annotations

import json
import re
from contextvars import ContextVar, Token

from temporalio.api.common.v1 import Payload

from sagakit._context import DoOutcome, Phase, StepContext, _current, _reset

__all__ = [
    "STEP_HEADER",
    "decode_step",
    "encode_step",
    "id_tells",
    "outgoing_header",
    "reset_header",
    "run_saga_base",
    "send_header",
    "step_activity_id",
    "step_from_id",
]

STEP_HEADER = "sagakit"
"""Name of the header that carries a step the activity id cannot tell."""

_PHASES = {p.value[0]: p for p in Phase}
_OUTCOMES = {o.value[0]: o for o in DoOutcome}
_UNDO = ".undo"
# [n/]seq.rest, where rest is the name, plus ".undo" for an undo.
_STEP_ID = re.compile(r"(?:([1-9][0-9]*)/)?([1-9][0-9]*)\.(.*)", re.DOTALL)


def run_saga_base(workflow_id: str, run_id: str) -> str:
    """The saga id of the first saga of a workflow run; later ones add `/n`."""
    return f"{workflow_id}/{run_id}"


def step_activity_id(index: int, seq: int, name: str, phase: Phase) -> str:
    """The activity id of step `seq`'s do or undo in the `index`-th saga of a run.

    Also the tail of a child workflow step's id (after the parent's workflow id and `.`).
    """
    prefix = "" if index == 1 else f"{index}/"
    return f"{prefix}{seq}.{name}{_UNDO if phase is Phase.UNDO else ''}"


def id_tells(ctx: StepContext) -> bool:
    """Whether the id `step_activity_id` makes for `ctx` tells it whole (then no header).

    The same answer as `step_from_id(step_activity_id(...)) == ctx` for a step of
    this run's sagas, without building and parsing the id: a do, unless its name
    ends in `.undo`; an undo whose do succeeded. Seq 0 (the hook) has no such id.
    """
    if ctx.seq < 1:
        return False
    if ctx.phase is Phase.UNDO:
        return ctx.do_outcome is DoOutcome.SUCCEEDED
    return ctx.do_outcome is DoOutcome.PENDING and not ctx.name.endswith(_UNDO)


# The header for what the step `_current` holds schedules, when its ids cannot
# tell it; applied only while `_current` is still that step.
_Outgoing = tuple[StepContext, Payload] | None
_outgoing: ContextVar[_Outgoing] = ContextVar("sagakit_outgoing_header", default=None)


def send_header(ctx: StepContext, base: str) -> Token[_Outgoing]:
    """Make what `ctx` schedules from this context carry the `sagakit` header.

    Reset it (`reset_header`) when the step's call ends: a step nested in an
    inline step runs in the same context, and the outer step's activities
    after it need the outer step's header again.
    """
    return _outgoing.set((ctx, encode_step(ctx, base)))


def reset_header(token: Token[_Outgoing]) -> None:
    """Undo `send_header`."""
    _reset(_outgoing, token)


def outgoing_header() -> Payload | None:
    """The header what is being scheduled must carry, or `None` (the common case).

    Read by the workflow interceptor for every activity and child workflow: one
    lookup of two context variables, nothing parsed.
    """
    pending = _outgoing.get()
    if pending is None or pending[0] is not _current.get():
        return None
    return pending[1]


def step_from_id(step_id: str, base: str) -> StepContext | None:
    """The step an id made by `step_activity_id` names, or `None` if it is not one.

    The undo's `do_outcome` is taken as `SUCCEEDED`: any other outcome travels
    in the header. A do whose name ends in `.undo` reads as an undo here; it
    too has the header, which wins.

    Args:
        step_id: The activity id (or a child workflow step's id, without the
            parent's workflow id and `.`).
        base: `run_saga_base` of the workflow run that scheduled it.
    """
    match = _STEP_ID.fullmatch(step_id)
    if match is None:
        return None
    index, seq, rest = match.groups()
    if index == "1":  # the first saga of a run has no prefix: not an id sagakit made
        return None
    saga_id = base if index is None else f"{base}/{index}"
    if rest.endswith(_UNDO):
        return StepContext(saga_id, int(seq), rest[: -len(_UNDO)], Phase.UNDO, DoOutcome.SUCCEEDED)
    return StepContext(saga_id, int(seq), rest, Phase.DO, DoOutcome.PENDING)


def encode_step(ctx: StepContext, base: str) -> Payload:
    """The header payload for a step scheduled by the workflow run whose saga base is `base`."""
    body: list[object] = [ctx.seq, ctx.name, ctx.phase.value[0], ctx.do_outcome.value[0]]
    if ctx.saga_id != base:
        rest = ctx.saga_id[len(base) + 1 :]
        if ctx.saga_id.startswith(base + "/") and rest.isdigit():
            body.append(int(rest))
        else:
            body.append(ctx.saga_id)
    # No "encoding" metadata: only sagakit reads this payload.
    return Payload(data=json.dumps(body, separators=(",", ":")).encode())


def decode_step(payload: Payload, base: str) -> StepContext | None:
    """The step in a header payload, or `None` if it is not one sagakit wrote.

    Args:
        payload: The header's payload.
        base: `run_saga_base` of the workflow run that scheduled the activity or child.
    """
    try:
        body = json.loads(payload.data)
        seq, name, phase, outcome = body[:4]
        saga: object = body[4] if len(body) > 4 else 1
        if isinstance(saga, str):
            saga_id = saga
        elif isinstance(saga, int):
            saga_id = base if saga == 1 else f"{base}/{saga}"
        else:
            return None
        return StepContext(saga_id, int(seq), str(name), _PHASES[phase], _OUTCOMES[outcome])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
