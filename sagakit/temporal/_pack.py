"""A payload kept compactly in an undo plan: a JSON payload as its value.

`saga.undo_plan()` on Temporal holds each undo's args (and, with
`pass_result`, the do's result) as the payloads the workflow's converter made
of them, so that the undo activity decodes them by its own type hints, in
whichever run it runs. Most payloads are JSON (`json/plain`): one is kept as
its JSON value, which costs no more than the value itself in the plan's JSON;
`None` (`binary/null`) as `null`. Any other payload (bytes, protobuf, a
codec's or another converter's encoding) is kept whole, as
`{"$payload": [{metadata key: base64}, base64 data]}`; so is a JSON value
that would read as one of those.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Final

from temporalio.api.common.v1 import Payload

__all__ = ["RAW_KEY", "pack_payload", "unpack_payload"]

RAW_KEY: Final = "$payload"
"""The one key of a payload kept whole."""

_JSON: Final = {"encoding": b"json/plain"}
_NULL: Final = {"encoding": b"binary/null"}


def _no_constant(name: str) -> Any:
    # NaN and Infinity are no JSON: pydantic would write them as null.
    raise ValueError(name)


def pack_payload(payload: Payload) -> Any:
    """`payload` as a JSON value of the plan: its own value when it is JSON."""
    metadata = dict(payload.metadata)
    if metadata == _NULL and not payload.data:
        return None
    if metadata == _JSON:
        try:
            value = json.loads(payload.data, parse_constant=_no_constant)
        except ValueError:
            value = None
        else:
            if value is not None and not _looks_raw(value):
                return value
    return {
        RAW_KEY: [
            {k: base64.b64encode(v).decode() for k, v in metadata.items()},
            base64.b64encode(payload.data).decode(),
        ]
    }


def unpack_payload(value: Any) -> Payload:
    """The payload `pack_payload` kept as `value`.

    Raises:
        ValueError: `value` is a payload kept whole, malformed.
    """
    if value is None:
        return Payload(metadata=_NULL)
    if _looks_raw(value):
        raw = value[RAW_KEY]
        if not (isinstance(raw, list) and len(raw) == 2 and isinstance(raw[0], dict)):
            raise ValueError(f"{RAW_KEY!r} holds [metadata, data], not {raw!r:.80}")
        metadata, data = raw
        return Payload(
            metadata={str(k): base64.b64decode(v, validate=True) for k, v in metadata.items()},
            data=base64.b64decode(data, validate=True),
        )
    return Payload(
        metadata=_JSON,
        data=json.dumps(value, separators=(",", ":"), allow_nan=False).encode(),
    )


def _looks_raw(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and RAW_KEY in value
