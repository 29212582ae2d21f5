"""Run a saga workflow on DBOS Transact (a SQLite system database, no server): the same `Outcome`.

Imported only where DBOS runs (`python -m examples --backend dbos`): `dbos` is an
extra, `pip install 'sagakit[dbos]'`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from dbos import DBOS, DBOSConfig, SetWorkflowID, WorkflowHandleAsync

from examples._support.running import Operate, Outcome
from sagakit import SagaFailed, SagaReport
from sagakit.dbos import parked, resolve

__all__ = ["launched", "operate_on_dbos", "run_on_dbos"]

R = TypeVar("R")

APP_NAME = "sagakit-examples"


@asynccontextmanager
async def launched(system_db: Path, *, verbose: bool = False) -> AsyncIterator[None]:
    """DBOS on the SQLite file `system_db`, launched on this event loop; destroyed on exit.

    Launched inside the loop, DBOS runs the workflows it recovers on this loop too.
    DBOS logs each failed workflow with its traceback at ERROR, and each retried
    step at WARNING: the demo's failures are by design, so only `verbose` shows them.
    """
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": f"sqlite:///{system_db}",
        "log_level": "WARNING" if verbose else "CRITICAL",
        # DBOS's listener thread polls SQLite; shorter polls let it stop sooner.
        "notification_listener_polling_interval_sec": 0.1,
    }
    DBOS(config=config)
    try:
        DBOS.launch()
        yield
    finally:
        # Its threads stop and join: off the loop, which goes on meanwhile.
        await asyncio.to_thread(DBOS.destroy)


async def run_on_dbos(
    workflow: Callable[..., Coroutine[Any, Any, R]],
    *args: Any,
    workflow_id: str,
    reports: dict[str, SagaReport],
    operate: Operate | None = None,
) -> Outcome[R]:
    """Start the saga's workflow with `workflow_id`, wait for its end: its result and its report.

    A failed saga's `SagaFailed` comes out of the handle's result with its
    report (and its cause); a successful one's is the one the workflow left in
    `reports` (it ran in this process).
    """
    with SetWorkflowID(workflow_id):
        handle = await DBOS.start_workflow_async(workflow, *args)
    if operate is not None:
        await operate_on_dbos(handle, operate)
    try:
        result = await handle.get_result()
    except SagaFailed as e:
        reports.pop(workflow_id, None)  # the same report, left by the workflow too
        return Outcome(report=e.report)
    return Outcome(report=reports.pop(workflow_id), result=result)


async def operate_on_dbos(
    handle: WorkflowHandleAsync[Any], operate: Operate, *, poll: float = 0.1
) -> None:
    """Until the workflow ends: each time its saga parks, call `operate` (a person's part).

    The parked undos are read from the workflow's DBOS event and resolved by a
    DBOS message (`sagakit.dbos.parked` / `resolve`). An undo already decided
    on is not offered again while the saga has yet to take it off its list.
    """
    workflow_id = handle.get_workflow_id()
    decided: set[tuple[int, object]] = set()
    while (await handle.get_status()).status in ("PENDING", "ENQUEUED"):
        waiting = [p for p in await parked(workflow_id) if (p.seq, p.parked_at) not in decided]
        if waiting:

            async def decide(seq: int, action: str, reason: str) -> None:
                await resolve(workflow_id, seq, action, reason=reason, by="python -m examples")

            await operate(waiting, decide)
            decided.update((p.seq, p.parked_at) for p in waiting)
        await asyncio.sleep(poll)
