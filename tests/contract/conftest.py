"""The `backend` fixture: each contract test body runs on every backend.

Parametrised over the in-memory executor, a real Temporal dev server and DBOS
Transact (SQLite system database); the Temporal half is marked `temporal`
(deselect it with `-m "not temporal"`), the DBOS half `dbos`.
The server is `sagakit.pytest_plugin`'s session fixture `temporal_env`,
started only when a Temporal half runs, and shared with the rest of the suite.
"""

from __future__ import annotations

import pytest

from ._runner import Backend, InMemory, OnDBOS, OnTemporal


@pytest.fixture(
    params=[
        "inmemory",
        pytest.param("temporal", marks=pytest.mark.temporal),
        pytest.param("dbos", marks=pytest.mark.dbos),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn: `InMemory`, `OnTemporal` on the session's dev server, `OnDBOS`."""
    if request.param == "temporal":
        return OnTemporal(request.getfixturevalue("temporal_env").client)
    if request.param == "dbos":
        request.getfixturevalue("dbos_launched")
        return OnDBOS()
    return InMemory()
