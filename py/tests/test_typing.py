"""The stubs type-check a real program: ``mypy --strict`` on the README's research
example (py/examples/research.py), and a program misusing the API is rejected."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "research.py"


def mypy(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("mypy")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", "/dev/null", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_mypy_strict_passes_on_the_research_example() -> None:
    r = mypy(str(EXAMPLE))
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_rejects_a_misuse(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import sia\n"
        "e = sia.Engine('x.db')\n"
        "n: int = e.frame('1', '2', '3')\n"
        "e.studies(patient=1)\n"
    )
    r = mypy(str(bad))
    assert r.returncode == 1
    assert "memoryview" in r.stdout and "patient" in r.stdout, r.stdout
