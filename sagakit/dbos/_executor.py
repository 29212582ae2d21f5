"""`DBOSExecutor`: run a saga function inside a DBOS workflow, each do and undo a DBOS step."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from dbos import DBOS
from dbos._context import get_local_dbos_context

from sagakit._exceptions import SagaStateError
from sagakit._options import SagaOptions
from sagakit._report import SagaReport
from sagakit._saga import Saga, run_saga
from sagakit.dbos._backend import DBOSBackend

__all__ = ["DBOSExecutor"]

R = TypeVar("R")

# Sagas started so far by each running workflow execution, keyed by its DBOS context
# (one per execution, recovery included): the n-th saga of a workflow is told apart by
# its start order, which a recovered execution repeats.
_started: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class DBOSExecutor:
    """Runs a saga function inside a `@DBOS.workflow()`: each do and undo is a DBOS step.

    A do or undo is a callable: sync (run in a thread) or `async def`, or a
    temporalio `@activity.defn` function (run with an activity context, as in
    memory). Each runs as one DBOS step named `seq.name` (`seq.name.undo` for
    an undo), so a recovered workflow reads a finished step back from its
    checkpoint; its attempts, by its `RetryPolicy`, run inside that step. A
    step said `inline=True` runs its plain `async def` do or undo in the
    workflow body instead (it may `await DBOS.recv_async(...)`).
    `heartbeat_timeout`, `task_queue`, `local` and `summary` are Temporal's
    and ignored here.

    The saga id is the workflow id (plus `/n` for the n-th saga of one
    workflow), so `idempotency_key()` is the same in a recovered run. A
    failed saga raises `SagaFailed` out of the workflow; the handle's
    `get_result()` raises it, with `__cause__` and `report`, also when DBOS
    reads it back from its system database.

    Example:
        ```python
        @DBOS.workflow()
        async def book_trip_workflow(trip: Trip) -> Itinerary:
            return await DBOSExecutor(options=SagaOptions()).run(book_trip, trip)
        ```

    Args:
        options: Saga-wide options; step keywords override them.
    """

    def __init__(self, options: SagaOptions | None = None) -> None:
        self._options = options if options is not None else SagaOptions()
        self._last: Saga | None = None

    @property
    def options(self) -> SagaOptions:
        """The saga-wide options of every run."""
        return self._options

    @property
    def last_report(self) -> SagaReport:
        """The report of the latest run on this executor (started last).

        Raises:
            LookupError: nothing has run yet.
        """
        if self._last is None:
            raise LookupError("no saga has run on this executor yet")
        return self._last.report()

    async def run(self, saga_fn: Callable[..., Coroutine[Any, Any, R]], /, *args: Any) -> R:
        """Run `saga_fn(saga, *args)` in the current DBOS workflow and return its result.

        Raises:
            SagaFailed: the saga raised and was unwound; `__cause__` is the error.
            SagaStateError: called outside a DBOS workflow, or inside one of its steps.
            SagaDefinitionError: bad input, before anything ran.
        """
        workflow_id = DBOS.workflow_id
        context = get_local_dbos_context()
        if workflow_id is None or context is None or DBOS.step_id is not None:
            raise SagaStateError(
                "DBOSExecutor.run() was called outside a DBOS workflow"
                + (" (inside one of its steps)" if workflow_id is not None else "")
                + ": call it from a @DBOS.workflow() function, so each do and undo becomes "
                "a checkpointed step (use sagakit.inmemory.InMemoryExecutor in plain Python "
                "and unit tests)"
            )
        index = _started[context] = _started.get(context, 0) + 1
        saga_id = workflow_id if index == 1 else f"{workflow_id}/{index}"
        backend = DBOSBackend(saga_id, index)
        saga = self._last = Saga(backend, self._options)
        backend.policy = saga.policy
        return await run_saga(saga, saga_fn, args)
