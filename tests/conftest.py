"""What several test directories share: one DBOS Transact per session.

DBOS is a process-wide singleton, so the contract suite's DBOS half and the
DBOS-specific tests share one instance, launched on first use with a SQLite
system database in a temporary directory (no server), destroyed at the end.
Once per session, not per test: a launch on a fresh database and its destroy
take about 1 s, twice what a DBOS contract test takes on average (0.45 s).
A workflow may be registered after the launch (as the test modules do on
import): it runs, though DBOS would not recover it in a later process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dbos_launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The `DBOS` class, launched on a fresh SQLite system database; skipped without dbos."""
    dbos = pytest.importorskip("dbos", reason="needs DBOS Transact: pip install 'sagakit[dbos]'")
    path: Path = tmp_path_factory.mktemp("dbos") / "system.sqlite"
    dbos.DBOS(config={"name": "sagakit-tests", "system_database_url": f"sqlite:///{path}"})
    dbos.DBOS.launch()
    yield dbos.DBOS
    dbos.DBOS.destroy()
