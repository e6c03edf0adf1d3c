"""Routes a newcomer takes outside the reference run: the hub setting (offline only on the project machines, and
switchable), notebook parameters given on the command line, and an installed copy of the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pytest

from subgroup_values import paths
from subgroup_values.paths import REPO_ROOT
from subgroup_values.runner import _parse_value


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HUB")}
    env.pop("SUBGROUP_VALUES_STUDY", None)
    return env | extra


# ---- the hub: offline on the project machines, online elsewhere, and what the user says wins -------------------

def test_the_hub_is_offline_only_on_the_project_machines(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    elsewhere = tmp_path / "clone"
    elsewhere.mkdir()
    assert not paths.project_machine(elsewhere)
    assert paths.settle_hub_mode(elsewhere) == "0" and os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["HF_DATASETS_OFFLINE"] == "0"
    (tmp_path / "shared" / "wvs7_sgp").mkdir(parents=True)  # what a project machine has beside its checkouts
    monkeypatch.delenv("HF_HUB_OFFLINE")
    assert paths.project_machine(elsewhere) and paths.settle_hub_mode(elsewhere) == "1"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # the user's own setting is kept, on a project machine too
    assert paths.settle_hub_mode(elsewhere) == "0"


@pytest.mark.parametrize(("args", "env", "expected"), [
    ([], {}, "1" if paths.project_machine() else "0"),
    (["HUB=online"], {}, "0"),
    (["HUB=offline"], {"HF_HUB_OFFLINE": "0"}, "1"),  # the command line wins over the shell
    ([], {"HF_HUB_OFFLINE": "0"}, "0"),  # the shell's setting is kept (make's export no longer overrides it)
])
def test_make_passes_the_hub_setting_on(args, env, expected):
    r = subprocess.run(["make", "-s", "--no-print-directory", "--eval",
                        "hub-env: ; @echo $$HF_HUB_OFFLINE $$HF_DATASETS_OFFLINE", "hub-env", *args],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=_clean_env(**env), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [expected, expected]


def test_make_refuses_an_unknown_hub_setting():
    r = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "hub-env: ; @true", "hub-env", "HUB=yes"],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=_clean_env(), timeout=60)
    assert r.returncode != 0 and "expected HUB=online or HUB=offline" in r.stderr


# ---- notebook parameters from the command line ----------------------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [("", ""), ("  ", "  "), ("0", 0), ("[]", []), ("a b", "a b"),
                                              ("[Q1, Q2]", ["Q1", "Q2"]), ("null", None), ("a: b: c", "a: b: c")])
def test_a_flag_value_reads_as_yaml_but_empty_stays_a_string(text, value):
    assert _parse_value(text) == value and type(_parse_value(text)) is type(value)


def _probe_notebook(path):
    """A notebook whose parameters cell takes a string, an integer, a list and another string, and which writes
    what its kernel received (parameters and hub setting) to ``probe``."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\nmarginals_runs = "x,y"\nlimit = 5\nqids = ["Q1"]\n'
                                       'note = "n"\nprobe = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import json, os\n"
        "json.dump({'marginals_runs': marginals_runs, 'limit': limit, 'qids': qids, 'note': note,\n"
        "           'hub': os.environ.get('HF_HUB_OFFLINE'), 'datasets': os.environ.get('HF_DATASETS_OFFLINE')},\n"
        "          open(probe, 'w'))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


@pytest.mark.parametrize("hub", ["unset", "0"])
def test_the_runner_hands_flags_and_the_hub_setting_to_the_kernel(tmp_path, hub):
    """A real papermill run (a kernel start: seconds): `-p marginals_runs ""` reaches the notebook as "", not None,
    and the kernel sees the hub setting the runner settled (the notebooks' own `setdefault` then keeps it)."""
    nb = _probe_notebook(tmp_path / "probe.ipynb")
    probe = tmp_path / "probe.json"
    env = _clean_env(**({} if hub == "unset" else {"HF_HUB_OFFLINE": hub}))
    r = subprocess.run([sys.executable, "-m", "subgroup_values.runner", str(nb), "--profile", "smoke", "--out-dir",
                        str(tmp_path / "out"), "--no-html", "-p", "marginals_runs", "", "-p", "limit", "0", "-p",
                        "qids", "[]", "-p", "note", "a b", "-p", "probe", str(probe)],
                       capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got = json.loads(probe.read_text())
    expected_hub = ("1" if paths.project_machine() else "0") if hub == "unset" else hub
    assert got == {"marginals_runs": "", "limit": 0, "qids": [], "note": "a b", "hub": expected_hub,
                   "datasets": expected_hub}
