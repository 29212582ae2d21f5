"""What every bench script prints the same way."""

from __future__ import annotations

import os


def load() -> str:
    """The machine's load averages (1, 5, 15 min): a ratio is read beside them."""
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
