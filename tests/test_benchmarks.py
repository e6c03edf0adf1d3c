"""The benchmark scripts still run against the package's current interfaces (their numbers are measured by `make
bench`, `make bench-bf16`, `make bench-server`, never here): each one that needs nothing beyond the study's own
environment runs end to end at a small size and prints its machine-readable lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO


def test_bf16_effect_runs_end_to_end_on_a_small_sample(smollm2):
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "benchmarks/bf16_effect.py", "--train-pairs", "16", "--ood-pairs", "24"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert re.search(r"^fp32: trained on 16 pairs .* OOD accuracy \d\.\d{4}$", r.stdout, re.M), r.stdout
    assert re.search(r"^bf16 - fp32 +-?\d", r.stdout, re.M), r.stdout  # the paired difference, with its interval
    assert re.search(r"^speedup: \d+\.\d\dx over fp32 training \(bf16 autocast\)$", r.stdout, re.M), r.stdout
