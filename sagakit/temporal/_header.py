"""The `sagakit-step` header: the current step, carried from workflow to activity.

`sagakit._context._current` lives in the workflow's task; an activity runs in
another process (or at least another task) on possibly another worker. The
workflow outbound interceptor writes the step into a header of the scheduled
activity or child workflow; the inbound interceptors read it back.

The header is stored in every `ActivityTaskScheduled` event, so it is kept
small: a compact JSON array, no payload metadata. Nothing in it is a user
value: the saga id, the step's number and name, the phase and the do's outcome.
"""

from __future__ import annotations

import json

from temporalio.api.common.v1 import Payload

from sagakit._context import DoOutcome, Phase, StepContext

__all__ = ["STEP_HEADER", "decode_step", "encode_step"]

STEP_HEADER = "sagakit-step"
"""Name of the header that carries the step to activities and child workflows."""

# Format version first so a newer worker can still read an older history's header.
_VERSION = 1


def encode_step(ctx: StepContext) -> Payload:
    """The header payload for a step context."""
    body = [_VERSION, ctx.saga_id, ctx.seq, ctx.name, ctx.phase.value, ctx.do_outcome.value]
    # No "encoding" metadata: only sagakit reads this payload, and every byte of
    # it is repeated in the history of each scheduled activity.
    return Payload(data=json.dumps(body, separators=(",", ":")).encode())


def decode_step(payload: Payload) -> StepContext | None:
    """The step context in a header payload, or `None` if it is not one sagakit wrote."""
    try:
        version, saga_id, seq, name, phase, outcome = json.loads(payload.data)
        if version != _VERSION:
            return None
        return StepContext(str(saga_id), int(seq), str(name), Phase(phase), DoOutcome(outcome))
    except (ValueError, TypeError):
        return None
