"""The `sagakit` header: the current step, carried from workflow to activity.

`sagakit._context._current` lives in the workflow's task; an activity runs in
another task, maybe on another worker. The workflow outbound interceptor writes
the step into a header of the scheduled activity or child workflow; the inbound
interceptors read it back.

The header is stored in every `ActivityTaskScheduled` event of the history, so
it is kept small: a JSON array `[seq, name, phase, outcome]`, with no payload
metadata. The saga id is usually implied: an activity knows the workflow run
that scheduled it, and the saga id is that run's `workflow_id/run_id` (plus
`/n` for the n-th saga of the run), so only `n` travels, as a fifth element,
when it is not 1. A step context from elsewhere (a child workflow passing on
its parent's step) carries its whole saga id as a string instead. Nothing in
the header is a user value.
"""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload

from sagakit._context import DoOutcome, Phase, StepContext

__all__ = ["STEP_HEADER", "decode_step", "encode_step", "run_saga_base"]

STEP_HEADER = "sagakit"
"""Name of the header that carries the step to activities and child workflows."""

_PHASES = {p.value[0]: p for p in Phase}
_OUTCOMES = {o.value[0]: o for o in DoOutcome}


def run_saga_base(workflow_id: str, run_id: str) -> str:
    """The saga id of the first saga of a workflow run; later ones add `/n`."""
    return f"{workflow_id}/{run_id}"


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
