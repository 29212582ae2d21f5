"""Runnable sagakit examples: each a small package with its saga, activities, workflow and tests.

Run the flagship on a real Temporal dev server (started from the installed
`temporal` binary, no download) with `python -m examples`; see
`python -m examples --help` and `docs/examples.md`.

Package `__init__` modules stay empty on purpose: the Temporal workflow sandbox
re-imports a workflow module's parent packages, and they must import nothing
that is not safe there.
"""
