"""The contract of API.md §2-4, 6, 7 and 9, one test body on every backend.

Each test runs on `InMemoryExecutor`, on a real Temporal dev server and on
DBOS Transact (the anyio model): the `backend` fixture of `conftest.py` is
parametrised over the three. A package (unlike `tests/temporal`), so its modules
are `contract.conftest`, `contract._shared`, ... and never clash with
`tests/temporal`'s top-level `conftest` and `workflows`.
"""
