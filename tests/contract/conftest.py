"""The `backend` fixture: each contract test body runs on every backend.

Parametrised over the in-memory executor and a real Temporal dev server; the
Temporal half is marked `temporal` (deselect it with `-m "not temporal"`).
The server is `sagakit.pytest_plugin`'s session fixture `temporal_env`,
started only when a Temporal half runs, and shared with the rest of the suite.
"""

from __future__ import annotations

import pytest

from ._runner import Backend, InMemory, OnTemporal


@pytest.fixture(params=["inmemory", pytest.param("temporal", marks=pytest.mark.temporal)])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn: `InMemory`, then `OnTemporal` on the session's dev server."""
    if request.param == "temporal":
        return OnTemporal(request.getfixturevalue("temporal_env").client)
    return InMemory()
