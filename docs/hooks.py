"""mkdocs hooks: on `mkdocs build` the docs check what they claim.

1. Every name in a public module's `__all__` is on a page of the API
   reference (a name added to the package without a place there fails the
   strict build, with the line to add).
2. The saga of getting-started.md runs as written: its in-memory files are
   written to a temporary directory and `main.py` is run; its output must be
   the block that follows the "output of main.py" comment, and every line of
   the timeline on the landing page must be in it. The Temporal files are
   imported or compiled (they need a server to run).

A mismatch is a warning, so `mkdocs build --strict` fails; `mkdocs serve`
skips check 2 (it would rerun the saga on every edit).
"""

from __future__ import annotations

import ast
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.sagakit")

_ROOT = Path(__file__).resolve().parent.parent
_FILE_BLOCK = re.compile(r'^```python title="(\w+\.py)"\n(.*?)^```$', re.M | re.S)
_OUTPUT_MARK = "<!-- The output of main.py"
_TIMELINE_MARK = "<!-- A timeline of the saga in getting-started.md"
_IN_MEMORY = ("trips.py", "trip_saga.py", "main.py")
_TEMPORAL = ("workflows.py", "worker.py", "start.py")
# The workflow module must import (temporalio checks the workflow class then); the
# worker and the client connect to a server when run, so they are compiled only.
_IMPORT_TEMPORAL = (
    "import py_compile, workflows\n"
    "for f in ('worker.py', 'start.py'): py_compile.compile(f, doraise=True)"
)

_command = "build"
_ids: set[str] = set()
_output: dict[str, str | None] = {}


def on_startup(command: str, dirty: bool) -> None:
    """Remember whether this is a build (checks run) or `mkdocs serve`."""
    global _command
    _command = command


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Check 2: the getting-started saga and the landing page's timeline."""
    if _command == "serve":
        return markdown
    name = page.file.src_uri
    if name == "getting-started.md":
        _check_getting_started(markdown)
    elif name == "index.md":
        _check_timeline(markdown)
    return markdown


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    """Collect the object ids the reference pages render."""
    if page.file.src_uri.startswith("reference"):
        _ids.update(re.findall(r'id="(sagakit[\w.]*)"', html))
    return html


def on_post_build(config: Any) -> None:
    """Check 1: every public name has a place in the API reference."""
    modules = _public_modules()
    documented = {i for i in _ids if i.rsplit(".", 1)[0] in modules}
    names = {i.rsplit(".", 1)[1] for i in documented}
    for module, exported in modules.items():
        for name in exported:
            if f"{module}.{name}" not in documented and name not in names:
                log.warning(
                    "%s.%s is in __all__ but on no page of the API reference: "
                    "add `::: %s.%s` to the page of docs/reference/ it belongs on",
                    module,
                    name,
                    module,
                    name,
                )


def _public_modules() -> dict[str, list[str]]:
    """`__all__` of every module of sagakit whose path has no private part."""
    found: dict[str, list[str]] = {}
    for path in sorted((_ROOT / "sagakit").rglob("*.py")):
        parts = path.relative_to(_ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                found[".".join(parts)] = list(ast.literal_eval(node.value))
    return found


def _run_getting_started(markdown: str) -> str | None:
    """What the page's main.py prints (cached per page text); None, warned, if it fails."""
    if markdown in _output:
        return _output[markdown]
    _output[markdown] = None
    blocks = dict(_FILE_BLOCK.findall(markdown))
    missing = [n for n in (*_IN_MEMORY, *_TEMPORAL) if n not in blocks]
    if missing:
        log.warning("getting-started.md: no code block titled %s", ", ".join(missing))
        return None
    env = {**os.environ, "PYTHONPATH": str(_ROOT), "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    with tempfile.TemporaryDirectory(prefix="sagakit-docs-") as tmp:
        for name, body in blocks.items():
            Path(tmp, name).write_text(body)
        printed = ""
        for argv in ([sys.executable, "main.py"], [sys.executable, "-c", _IMPORT_TEMPORAL]):
            run = subprocess.run(
                argv, cwd=tmp, env=env, capture_output=True, text=True, timeout=120
            )
            if run.returncode != 0:
                tail = "\n".join(run.stderr.splitlines()[-15:])
                log.warning("getting-started.md: `%s` failed:\n%s", argv[-1], tail)
                return None
            printed = printed or run.stdout
    _output[markdown] = printed
    return printed


def _check_getting_started(markdown: str) -> None:
    printed = _run_getting_started(markdown)
    shown = _block_after(markdown, _OUTPUT_MARK)
    if shown is None:
        log.warning("getting-started.md: no output block after %r", _OUTPUT_MARK)
    elif printed is not None and shown != printed:
        log.warning(
            "getting-started.md: main.py now prints\n%s\ninstead of what the page shows:\n%s",
            printed,
            shown,
        )


def _check_timeline(markdown: str) -> None:
    shown = _block_after(markdown, _TIMELINE_MARK)
    if shown is None:
        log.warning("index.md: no timeline block after %r", _TIMELINE_MARK)
        return
    printed = _run_getting_started((Path(__file__).parent / "getting-started.md").read_text())
    if printed is None:
        return  # warned already
    lines = printed.splitlines()
    stale = [line for line in shown.splitlines() if line not in lines]
    if stale:
        log.warning(
            "index.md: these timeline lines are not what getting-started.md's main.py prints:\n%s",
            "\n".join(stale),
        )


def _block_after(markdown: str, mark: str) -> str | None:
    """The body of the first fenced code block after the line that starts with `mark`."""
    at = markdown.find(mark)
    if at < 0:
        return None
    found = re.compile(r"^```\w*\n(.*?)^```$", re.M | re.S).search(markdown, at)
    return found.group(1) if found else None
