"""Fixtures of the core tests: a fresh journal, and an executor that does not retry."""

from __future__ import annotations

import pytest

from sagakit.inmemory import InMemoryExecutor

from ._support import Journal, options


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def executor() -> InMemoryExecutor:
    return InMemoryExecutor(options())
