"""Run sagas on DBOS Transact: durable, with no server (a SQLite system database will do).

`DBOSExecutor` runs a saga function inside a `@DBOS.workflow()`; each do and
undo is a checkpointed DBOS step, so a process that dies mid-saga finishes it
when DBOS recovers the workflow.
"""

try:
    import dbos as _dbos  # noqa: F401
except ImportError as e:  # pragma: no cover - tests/dbos checks it in a subprocess
    raise ImportError(
        "sagakit.dbos needs DBOS Transact, which is not installed: pip install 'sagakit[dbos]'"
    ) from e

from sagakit.dbos._executor import DBOSExecutor
from sagakit.dbos._operate import PARKED_EVENT, RESOLVE_TOPIC, parked, resolve

__all__ = ["PARKED_EVENT", "RESOLVE_TOPIC", "DBOSExecutor", "parked", "resolve"]
