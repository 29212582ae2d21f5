"""Every private temporalio name sagakit uses, each behind one small function.

temporalio offers no public way to ask these questions. A temporalio upgrade
that renames one of them breaks it here and nowhere else, and the test named
in each docstring fails loudly (tests/temporal/test_temporal_private.py, one
class per name, none of them Temporal mocks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import temporalio.activity
import temporalio.client
from temporalio import workflow

__all__ = [
    "being_evicted",
    "client_identity",
    "is_activity",
    "is_eviction",
    "is_workflow_run_fn",
    "workflow_run_fn",
    "workflow_type",
]

# Its module is private, so it is recognised by name: importing it would make
# a rename fail every import of sagakit.temporal instead of the guarding test.
_EVICTION_ERROR = "_WorkflowBeingEvictedError"


def is_activity(fn: Any) -> bool:
    """Whether `fn` is an `@activity.defn` callable (`activity._Definition`).

    Guarded by `TestActivityDefinition` in tests/temporal/test_temporal_private.py.
    """
    return temporalio.activity._Definition.from_callable(fn) is not None


def workflow_run_fn(cls: type) -> Callable[..., Any] | None:
    """The `@workflow.run` method of `cls` if it is an `@workflow.defn` class, else `None`.

    Through `workflow._Definition.from_class`.

    Guarded by `TestWorkflowDefinition` in tests/temporal/test_temporal_private.py.
    """
    defn = workflow._Definition.from_class(cls)
    return None if defn is None else defn.run_fn


def is_workflow_run_fn(fn: Any) -> bool:
    """Whether `fn` is the `@workflow.run` method of an `@workflow.defn` class.

    Guarded by `TestWorkflowDefinition` in tests/temporal/test_temporal_private.py.
    """
    return workflow._Definition.from_run_fn(fn) is not None


def workflow_type(run_fn: Any) -> tuple[str, type | None] | None:
    """(registered name, return type hint) of a `@workflow.run` method, or `None`.

    The name to start it by as a child workflow, and the type its result decodes
    to: a sub-saga's child returns its result inside an envelope, which the
    parent decodes by hand. Through `workflow._Definition.from_run_fn`.

    Guarded by `TestWorkflowDefinition` in tests/temporal/test_temporal_private.py.
    """
    defn = workflow._Definition.from_run_fn(run_fn)
    if defn is None or defn.name is None:  # not a workflow, or a dynamic one
        return None
    return defn.name, defn.ret_type


def being_evicted() -> bool:
    """Whether the running workflow is being evicted from the worker's cache.

    temporalio cancels every task of a workflow it evicts; no public flag tells
    that cancel apart from a real one, so this reads the instance's `_deleting`
    through `workflow._Runtime`. Safe for determinism: an evicted workflow
    issues no more commands either way. `False` outside a workflow, and if
    temporalio renamed either: an eviction then compensates in the evicted
    instance (whose commands go nowhere) rather than failing the workflow task.

    Guarded by `TestEviction` in tests/temporal/test_temporal_private.py (and,
    by behaviour, `TestEvicted` in test_temporal_teardown.py).
    """
    try:
        return bool(getattr(workflow._Runtime.current(), "_deleting", False))
    except Exception:  # outside a workflow, or temporalio changed its internals
        return False


def is_eviction(exc: BaseException | None) -> bool:
    """Whether `exc` is temporalio's `_WorkflowBeingEvictedError` (an eviction, not a failure).

    Guarded by `TestEviction` in tests/temporal/test_temporal_private.py.
    """
    return exc is not None and type(exc).__name__ == _EVICTION_ERROR


def client_identity(handle: temporalio.client.WorkflowHandle[Any, Any]) -> str | None:
    """The identity of the client `handle` was made by (`WorkflowHandle._client`), or `None`.

    `None` also if temporalio renamed it: the decision is then recorded without
    who took it rather than refused.

    Guarded by `TestClientIdentity` in tests/temporal/test_temporal_private.py.
    """
    client = getattr(handle, "_client", None)
    identity = getattr(client, "identity", None)
    return identity if isinstance(identity, str) else None
