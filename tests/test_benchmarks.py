"""The benchmark scripts still start against the package's current interfaces: each one's imports and argument
parser run (``--help``). Their numbers are measured by `make bench`, `make bench-bf16`, `make bench-server`, never
in the tests: a benchmark is no test."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_starts(script):
    r = subprocess.run([sys.executable, f"benchmarks/{script}", "--help"], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage:" in r.stdout
