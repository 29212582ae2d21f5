"""SQLite plumbing for the fake services: one file per run, one short transaction per call."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

__all__ = ["create_schema", "transaction"]


@contextmanager
def transaction(path: Path | str) -> Iterator[sqlite3.Connection]:
    """A connection inside one write transaction, committed on success and closed after.

    `BEGIN IMMEDIATE` takes the write lock up front, so two concurrent calls
    (retries, a fan-out) serialise instead of both reading stale state and one
    failing on upgrade. A fresh connection per call is what a real service
    client does, and leaves nothing open between calls.
    """
    with closing(sqlite3.connect(path, timeout=10.0, isolation_level=None)) as db:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def create_schema(path: Path | str, schema: str) -> None:
    """Create the tables of `schema` (idempotent `CREATE ... IF NOT EXISTS` statements)."""
    # executescript commits on its own, so it runs outside `transaction`.
    with closing(sqlite3.connect(path, timeout=10.0)) as db:
        db.executescript(schema)
