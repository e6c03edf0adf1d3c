"""Without the licensed survey file the study runs from the committed aggregates, checked against the manifest."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from subgroup_values.core.paths import PROCESSED, REPO_ROOT
from subgroup_values.survey.dataset import verify


def test_committed_aggregates_match_their_manifest():
    m = verify(PROCESSED)
    assert set(m["files"]) == {"pairs", "subgroups", "questions"}


def test_a_changed_or_missing_table_is_refused(tmp_path):
    copy = tmp_path / "processed"
    shutil.copytree(PROCESSED, copy)
    (copy / "subgroups.csv").write_text((copy / "subgroups.csv").read_text().replace("Malay", "Malai", 1))
    with pytest.raises(ValueError, match="subgroups.csv differs from its manifest.*git checkout"):
        verify(copy)
    (copy / "subgroups.csv").unlink()
    with pytest.raises(FileNotFoundError, match="subgroups.csv \\(subgroups\\) is missing"):
        verify(copy)


def make_without_file(*args):
    # not the calling make's variables (make test passes WVS_FILE=... down through MAKEFLAGS)
    env = {k: v for k, v in os.environ.items() if k not in ("WVS_FILE", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", *args, "WVS_SEARCH=/nonexistent/WVS*.csv"],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)


def test_make_all_without_the_file_skips_step_one_and_checks_the_aggregates(tmp_path):
    r = make_without_file("-n", "all", "PROFILE=smoke", f"BUILD={tmp_path}")
    assert r.returncode == 0, r.stderr
    assert "subgroup_values.survey.dataset verify data/processed" in r.stdout
    assert "No survey file found: the study runs from the committed aggregates" in r.stdout
    assert "01_build_dataset" not in r.stdout and "02_value_landscape" in r.stdout


def test_make_data_without_the_file_says_what_to_do(tmp_path):
    r = make_without_file("data", f"BUILD={tmp_path}")
    assert r.returncode != 0 and "No WVS survey file found" in r.stdout + r.stderr
