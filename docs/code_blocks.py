"""The python code blocks of docs/ and README.md, checked on `mkdocs build` (see hooks.py).

Every ```python block is one of:

- a **file**: its fence has a title naming a `.py` file. getting-started.md's
  files are run by hooks.py; testing.md's test files are run here with pytest
  (`run_tests`); any other page's files are imported (`check_blocks`).
- a **test** of testing.md: an untitled block after a titled test file that
  defines `test_` functions belongs to that file (the page says so).
- a **fragment**: no title. It must compile (top-level `await` allowed) and
  every import in it must import; a fragment that binds every name it uses
  needs nothing around it, so it is run whole.

Each check names the page and the line of the block's fence. Fragments and
files see getting-started.md's files (`trips`, `trip_saga`, `workflows`) on
the import path, as the pages that build on that saga assume.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

_FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```$", re.M | re.S)
_TEST_DEF = re.compile(r"^async def (test_\w+)|^def (test_\w+)", re.M)


class Block(NamedTuple):
    """A fenced code block: its language, title (or None) and code."""

    page: str
    line: int
    lang: str
    title: str | None
    code: str

    @property
    def is_file(self) -> bool:
        """Whether the block is a file: its title is a `.py` file name."""
        return bool(self.title and self.title.endswith(".py"))

    @property
    def where(self) -> str:
        """`page:line`, and the title if it has one: how warnings name the block."""
        named = f' ("{self.title}")' if self.title else ""
        return f"{self.page}:{self.line}{named}"


def blocks(page: str, markdown: str) -> list[Block]:
    """The fenced code blocks of a page, with the line of each fence."""
    found = []
    for m in _FENCE.finditer(markdown):
        title = re.search(r'title="([^"]+)"', m.group(2))
        line = markdown.count("\n", 0, m.start()) + 1
        found.append(Block(page, line, m.group(1), title and title.group(1), m.group(3)))
    return found


def env(*paths: Path) -> dict[str, str]:
    """The environment of a docs run: this checkout's sagakit first, no colour."""
    run_env = {**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    run_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in paths)
    run_env.pop("FORCE_COLOR", None)
    return run_env


# --- fragments and the files of other pages --------------------------------

# Run in a subprocess: for each block, import its file, run it whole, or run
# only its imports; print one JSON list of [where, error].
_CHECK = """
import ast, asyncio, importlib, json, sys, traceback
problems = []
for where, how, code in json.load(sys.stdin):
    try:
        if how == "import":
            importlib.import_module(code)
            continue
        tree = ast.parse(code)
        if how == "imports":
            kept = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
            tree = ast.Module(body=kept, type_ignores=[])
        compiled = compile(tree, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        done = eval(compiled, {"__name__": "__docs__"})
        if asyncio.iscoroutine(done):
            asyncio.run(done)
    except BaseException:
        problems.append([where, traceback.format_exc(limit=-3)])
print(json.dumps(problems))
"""


def free_names(code: str) -> set[str]:
    """Names the code reads but binds nowhere (not scope-exact: any binding counts)."""
    tree = ast.parse(code)
    used: set[str] = set()
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return used - bound


def check_blocks(found: list[Block], support: list[Block]) -> tuple[list[str], dict[str, int]]:
    """The problems of the python blocks `found`, each naming its page and block.

    The files of `support` (getting-started.md's) are written next to them. Also
    returns how many blocks were run whole ("run"), imported as files ("import"),
    or checked as fragments: compiled, their imports run ("imports").
    """
    problems: list[str] = []
    jobs: list[tuple[str, str, str]] = []  # (where, how, code or module name): for _CHECK
    paths = set()
    counts = {"run": 0, "import": 0, "imports": 0}
    with tempfile.TemporaryDirectory(prefix="sagakit-docs-blocks-") as tmp:
        for file in support:
            Path(tmp, file.title or "").write_text(file.code)
        for block in found:
            if block.lang != "python":
                continue
            error = _compile_error(block)
            if error:
                problems.append(f"{block.where}: does not compile: {error}")
                continue
            if block.is_file:
                # A page's own files go in a directory of their own, importable by name.
                folder = Path(tmp, re.sub(r"\W", "_", block.page))
                folder.mkdir(exist_ok=True)
                (folder / str(block.title)).write_text(block.code)
                paths.add(folder)
                jobs.append((block.where, "import", Path(str(block.title)).stem))
                counts["import"] += 1
            else:
                how = "imports" if free_names(block.code) else "run"
                jobs.append((block.where, how, block.code))
                counts[how] += 1
        run = subprocess.run(
            [sys.executable, "-c", _CHECK],
            input=json.dumps(jobs),
            cwd=tmp,
            env=env(_root(), Path(tmp), *sorted(paths)),
            capture_output=True,
            encoding="utf-8",
            timeout=120,
        )
    if run.returncode != 0:
        return [*problems, f"the block checker failed:\n{run.stderr[-2000:]}"], counts
    for where, error in json.loads(run.stdout.splitlines()[-1]):
        problems.append(f"{where}: {error.strip()}")
    return problems, counts


def _compile_error(block: Block) -> str | None:
    """Why the block does not compile as a module, nor (a fragment) as a function's body."""
    try:
        compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        return None
    except SyntaxError as e:
        if block.is_file:
            return str(e)
        body = "async def fragment():\n" + "".join(
            f"    {line}\n" for line in block.code.splitlines()
        )
        try:
            compile(body, block.where, "exec")
            return None
        except SyntaxError:
            return str(e)


def _root() -> Path:
    return Path(__file__).resolve().parent.parent


# --- testing.md: its test files, with pytest and mypy --strict ------------------


@dataclass
class TestRun:
    """testing.md's test files, running with pytest and mypy --strict in a temporary directory.

    Started before the build (`start`), collected after it (`problems`): the
    dev server starts and the tests run while mkdocs renders the pages.
    """

    tmp: Path
    tests: dict[str, Block]  # test function -> the block that defines it
    origin: dict[str, list[tuple[int, Block]]]  # file -> (its first line, block) per block
    pytest: subprocess.Popen[str]
    mypy: subprocess.Popen[str]
    started: float = field(default_factory=time.perf_counter)

    @property
    def owned(self) -> set[Block]:
        """The blocks this run checks (check_blocks leaves them alone)."""
        return {block for parts in self.origin.values() for _, block in parts}

    @classmethod
    def start(cls, markdown: str, support: list[Block]) -> TestRun | str:
        """Write the page's test files next to `support`'s and start pytest and mypy.

        A problem that keeps them from starting is returned instead.
        """
        origin: dict[str, list[tuple[int, Block]]] = {}
        files: dict[str, str] = {}
        tests: dict[str, Block] = {}

        def add(name: str, block: Block) -> None:
            before = files.get(name, "")
            files[name] = f"{before}\n\n{block.code}" if before else block.code
            first = before.count("\n") + 3 if before else 1
            origin.setdefault(name, []).append((first, block))

        for block in support:
            add(block.title or "", block)
        current: str | None = None
        for block in blocks("testing.md", markdown):
            if block.title and block.title.endswith((".py", ".toml")):
                current = block.title if block.title.startswith("test_") else None
                add(block.title, block)
            elif block.lang == "python" and current and _TEST_DEF.search(block.code):
                add(current, block)
            else:
                continue  # a fragment: check_blocks checks it
            for m in _TEST_DEF.finditer(block.code):
                tests[m.group(1) or m.group(2)] = block
        if not any(name.startswith("test_") for name in files) or "pyproject.toml" not in files:
            return "testing.md: no test file (a block titled test_*.py) or no pyproject.toml"
        tmp = Path(tempfile.mkdtemp(prefix="sagakit-docs-tests-"))
        for name, code in files.items():
            (tmp / name).write_text(code)
        run_env = env(_root(), tmp)
        run_env["MYPYPATH"] = str(_root())

        def start(*argv: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=tmp,
                env=run_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                encoding="utf-8",
            )

        pytest = start("pytest", "-p", "no:cacheprovider", "-q", "--junitxml=tests.xml")
        py_files = sorted(name for name in files if name.endswith(".py"))
        # The cache beside the project's keeps sagakit's and temporalio's types across
        # builds: cold, mypy takes about 5 s; warm, about 1.
        cache = str(_root() / ".mypy_cache" / "docs")
        mypy = start("mypy", "--strict", "--no-error-summary", "--cache-dir", cache, *py_files)
        return cls(tmp, tests, origin, pytest, mypy)

    def problems(self) -> tuple[list[str], float]:
        """Wait for both: the problems, each naming its page and block, and the seconds taken."""
        try:
            pytest_out, _ = self.pytest.communicate(timeout=300)
            mypy_out, _ = self.mypy.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            self.pytest.kill()
            self.mypy.kill()
            shutil.rmtree(self.tmp, ignore_errors=True)
            return ["testing.md: the page's tests took over 5 minutes"], 300.0
        seconds = time.perf_counter() - self.started
        problems = [
            f"{self._block_of(line)}: mypy --strict: {line}"
            for line in mypy_out.splitlines()
            if ": error:" in line
        ]
        problems += self._pytest_problems(pytest_out)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems, seconds

    def _pytest_problems(self, output: str) -> list[str]:
        report = self.tmp / "tests.xml"
        if not report.exists():
            return [f"testing.md: pytest did not run:\n{output[-2000:]}"]
        problems = []
        seen = set()
        for case in ET.parse(report).iter("testcase"):
            name = case.get("name", "").split("[")[0]
            seen.add(name)
            where = self.tests[name].where if name in self.tests else "testing.md"
            for outcome in ("failure", "error", "skipped"):
                for found in case.iter(outcome):
                    # A skip here is a missing Temporal binary: the example did not run.
                    text = (found.text or found.get("message") or "").strip()
                    problems.append(f"{where}: {name} {outcome}:\n{_tail(text)}")
        problems += [
            f"{block.where}: pytest did not collect {name}"
            for name, block in self.tests.items()
            if name not in seen
        ]
        if not seen:
            problems.append(f"testing.md: pytest collected nothing:\n{output[-2000:]}")
        return problems

    def _block_of(self, mypy_line: str) -> str:
        """Where the block is that a mypy line (`file.py:LINE: error: ...`) points into."""
        name, _, rest = mypy_line.partition(":")
        line = rest.partition(":")[0]
        parts = self.origin.get(name, [])
        inside = [b for first, b in parts if line.isdigit() and first <= int(line)]
        return inside[-1].where if inside else name


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])
