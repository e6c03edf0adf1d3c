"""On a fresh clone, make reuses the committed runs whose inputs are unchanged, and only those (dry runs only).

The clone is this working tree committed in a temporary repository; its committed run records are then marked as
made at that commit (as a reference run at that commit would be), so that every committed run is reusable; one
input is then changed at a time and the steps that read it must be scheduled again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline import reuse

MODEL = REPO_ROOT / "models" / "SmolLM2-135M-Instruct"
pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None,
                                reason="needs git and make")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def make(clone: Path, *args: str, check: str = "") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WVS_FILE",
                                                              "WVS_FILE_TUR", "HF_HUB_OFFLINE")}
    # dry runs only: make runs nothing but its makefiles' own rules (deps.mk, the reuse step, with this python)
    cmd = ["make", "--no-print-directory", "-n", *args, f"PYTHON={sys.executable}", "WVS_SEARCH=",
           "WVS_FILE_TUR=", f"WVS_CHECK={check}"]
    r = subprocess.run(cmd, cwd=clone, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def steps_run(output: str) -> set[str]:
    out = set()
    for line in output.splitlines():
        m = re.search(r"subgroup_values\.pipeline\.runner .* notebooks/(\w+)\.ipynb(?: --run (\w+))?", line)
        if m:
            out.add(m.group(1) + (f":{m.group(2)}" if m.group(2) else ""))
    return out


ANALYSIS = {"02_value_landscape", "05_fairness", "08_headroom", "07_paper_comparison"}


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone whose HEAD is this working tree and whose default run records were made at HEAD."""
    base = tmp_path_factory.mktemp("reuse")
    src = base / "src.git"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO_ROOT), str(src)], check=True)
    files = git(REPO_ROOT, "ls-files", "-co", "--exclude-standard").splitlines()
    for f in files:  # the working tree as it is (uncommitted edits included)
        if (REPO_ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / f, src / f)
    git(src, "add", "-A")
    git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "working tree")
    head = git(src, "rev-parse", "HEAD")
    base_ood = json.loads((src / "results/default/base_ood/metrics.json").read_text())
    pairs_sha = base_ood["data"]["pairs_sha256"]
    model = base_ood["backend"]
    for rec in [*src.glob("results/default/*/metrics.json"), *src.glob("results/default/finetune/*_run.json"),
                src / "results/default/open_ended/provenance.json"]:
        d = json.loads(rec.read_text())
        d["git_revision"] = head
        if rec.parent.name == "open_ended":  # what notebook 06 records now (the committed record predates it)
            d["data"] = {"pairs_sha256": pairs_sha}
            ident = {k: model[k] for k in ("backend", "model", "model_weights", "model_files")} | {"adapter": None}
            d["identities"] = {"reference": ident, "judge": ident, "reader": ident, "fine_tunes": {},
                               "system": ident | {"adapter": "build/default/adapters/sft", "adapter_weights": "x"}}
        rec.write_text(json.dumps(d, indent=1) + "\n")
    git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "reference run at HEAD")
    return src


def fresh(clone: Path, tmp_path: Path, with_model: bool = False) -> Path:
    """A fresh clone of ``clone`` (no build/, no models/ unless asked), its aggregates checked as make does."""
    dest = tmp_path / "x"
    subprocess.run(["git", "clone", "-q", str(clone), str(dest)], check=True)
    if with_model:
        (dest / "models").mkdir()
        (dest / "models" / MODEL.name).symlink_to(MODEL)
    # what make does first on a clone without the survey file (its rule needs the virtual environment)
    subprocess.run([sys.executable, "-m", "subgroup_values.survey.dataset", "verify", "data/processed", "build/aggregates.ok"],
                   cwd=dest, check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(dest / "src")})
    return dest


def test_a_fresh_clone_reruns_only_the_analysis(clone, tmp_path):
    x = fresh(clone, tmp_path)
    out = make(x, "headroom")
    assert steps_run(out) == {"08_headroom"}, out
    assert "local_models" not in out  # the model is not built: nothing that reads it runs
    stamp = x / "build/notebooks/default/03_evaluate__base_ood.ipynb"
    before = stamp.stat().st_mtime_ns
    assert steps_run(make(x, "paper")) == ANALYSIS
    assert steps_run(make(x, "report")) == ANALYSIS
    assert steps_run(make(x, "fairness")) == {"05_fairness"}
    assert stamp.stat().st_mtime_ns == before  # checked again, not touched: what reads it is not made out of date
    nb = json.loads(stamp.read_text())
    assert nb["metadata"][reuse.MARK]["record"] == "results/default/base_ood/metrics.json"
    # the reused fine-tune's adapter is not here; every step that reads it is reused, so it need not be made
    assert (x / "build/notebooks/default/04_finetune.ipynb").is_file()
    # `make paper` copies the targets to docs/: a reused one comes out as the committed copy it was made from
    # would (the mark does not travel)
    from subgroup_values.reporting import publish

    for name, source in (("stamp", stamp), ("committed", x / "docs/default/notebooks" / stamp.name)):
        (tmp_path / name).mkdir()
        shutil.copy2(source, tmp_path / name / stamp.name)
        publish.publish_notebooks(tmp_path / name, tmp_path / f"{name}-docs")
    published = (tmp_path / "stamp-docs" / stamp.name).read_bytes()
    assert published == (tmp_path / "committed-docs" / stamp.name).read_bytes()
    assert reuse.MARK.encode() not in published


def test_make_settles_its_makefiles_when_the_model_is_not_built(clone, tmp_path):
    """As `make test` starts on CI's fresh clone: the reuse fragment is made again on every make (the survey file is
    checked each time), and with the model not built it empties MODEL_READY; the fragment it writes must not depend
    on that, or make reads its makefiles again forever."""
    x = fresh(clone, tmp_path)
    out = make(x, "headroom", check="FORCE")
    assert steps_run(out) == {"08_headroom"}, out
    assert out.count("reuse: 04_finetune: the committed run") == 1, out  # said once, though make reads it again
    assert "MODEL_READY :=" in (x / "build/reuse.default.mk").read_text()
    again = make(x, "headroom", check="FORCE")
    assert "reuse: " not in again, again  # nothing changed: nothing to say


def test_make_stops_instead_of_reading_its_makefiles_forever(tmp_path):
    """A generated makefile that changes on every read stops make with a message (the guard, on a planted loop)."""
    text = (REPO_ROOT / "Makefile").read_text()
    start = text.index("# make reads its makefiles again")
    guard = text[start:text.index("endif\n", start) + len("endif\n")]
    (tmp_path / "Makefile").write_text("BUILD := build\n" + guard + "all: ;\ninclude flip.mk\n"
                                       "flip.mk: FORCE\n\t@echo \"# $$(date +%N)\" > $@\nFORCE:\n")
    r = subprocess.run(["make", "--no-print-directory"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "read its makefiles 6 times" in r.stderr, r.stdout + r.stderr


def test_a_changed_config_entry_runs_that_step_again(clone, tmp_path):
    x = fresh(clone, tmp_path, with_model=True)
    cfg = x / "configs/default.yaml"
    cfg.write_text(cfg.read_text().replace("base_ood: {split: ood, scoring: logprob}",
                                           "base_ood: {split: ood, scoring: logprob, limit: 100}"))
    out = make(x, "headroom")
    assert steps_run(out) == {"03_evaluate:base_ood", "08_headroom"}, out
    assert "03_evaluate__base_ood: runs (configs/default.yaml changed for this step" in out


def test_a_model_with_the_same_weights_and_another_tokenizer_config_is_another_model(clone, tmp_path):
    if not MODEL.is_dir():
        pytest.skip(f"no {MODEL} (make model)")
    x = fresh(clone, tmp_path)
    folder = x / "models" / MODEL.name
    folder.mkdir(parents=True)
    for f in MODEL.iterdir():
        if f.name == "tokenizer_config.json":
            (folder / f.name).write_text(f.read_text().replace('"local_files_only": true', '"local_files_only": false'))
        else:
            (folder / f.name).symlink_to(f)
    out = make(x, "headroom")
    assert "03_evaluate:base_ood" in steps_run(out), out
    assert (f"models/{MODEL.name} differs from the one the run used (same weights; its other files (config, "
            "tokenizer, chat template)") in out, out


def test_a_changed_module_runs_the_steps_that_import_it_and_a_comment_does_not(clone, tmp_path):
    x = fresh(clone, tmp_path, with_model=True)
    (x / "src/subgroup_values/stats/metrics.py").write_text((x / "src/subgroup_values/stats/metrics.py").read_text()
                                                      + "\n# a comment changes no result\n")
    (x / "src/subgroup_values/training/finetune.py").write_text((x / "src/subgroup_values/training/finetune.py").read_text()
                                                       + "\nREUSE_TEST = 1\n")
    out = make(x, "fairness")
    # finetune.py is read by notebook 4 only: the modal fine-tune runs again, and so every run of its adapter
    assert {"04_finetune", "03_evaluate:sft_ood", "05_fairness"} <= steps_run(out), out
    assert not any(s.startswith("03_evaluate:base") for s in steps_run(out)), out
    assert "code changed since" in out and "src/subgroup_values/training/finetune.py" in out


def test_changed_data_and_missing_evidence_are_not_reused(clone, tmp_path):
    x = fresh(clone, tmp_path, with_model=True)
    rec = x / "results/default/base_train/metrics.json"
    d = json.loads(rec.read_text())
    d["data"]["pairs_sha256"] = "0" * 64
    rec.write_text(json.dumps(d))
    git(x, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "another table")
    d = json.loads((x / "results/default/base_ood_generate/metrics.json").read_text())
    d["git_revision"] += "-dirty"
    (x / "results/default/base_ood_generate/metrics.json").write_text(json.dumps(d))
    git(x, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "a dirty record")
    out = make(x, "fairness")
    assert {"03_evaluate:base_train", "03_evaluate:base_ood_generate"} <= steps_run(out), out
    assert "03_evaluate:base_ood" not in steps_run(out)
    assert "the pairs table data/processed/pairs.csv changed" in out
    assert "names no clean revision" in out


def test_the_digests_are_the_hf_backends():
    from subgroup_values.backends import hf

    folder = REPO_ROOT / "models" / "tiny-random"
    if not folder.is_dir():
        pytest.skip("no models/tiny-random (make tiny-model)")
    assert reuse.weights_digest(folder) == hf.weights_digest(folder)
    assert reuse.files_digest(folder) == hf.files_digest(folder)
    assert reuse.NOT_MODEL == hf.NOT_MODEL


@pytest.mark.parametrize("online", ["0", "1"])
def test_a_model_built_online_or_offline_has_the_same_digest(online, tmp_path):
    """transformers writes into a saved tokenizer_config.json how the tokenizer was loaded (local_files_only: the
    hub's mode); the model builder writes it the same either way, so a model built where the hub is online (a
    newcomer's machine, CI outside the project machines) has the digest of the committed runs' records."""
    if not (MODEL / "tokenizer_config.json").is_file():
        pytest.skip(f"no {MODEL} (make model)")
    code = ("import sys; from pathlib import Path; from transformers import AutoTokenizer; "
            "from subgroup_values.pipeline.local_models import save_tokenizer; "
            f"tok = AutoTokenizer.from_pretrained({str(MODEL)!r}, local_files_only={online == '1'}); "
            "save_tokenizer(tok, Path(sys.argv[1]))")
    env = {**os.environ, "HF_HUB_OFFLINE": online, "PYTHONPATH": str(REPO_ROOT / "src")}
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, env=env, capture_output=True)
    for name in ("tokenizer_config.json", "tokenizer.json"):
        assert (tmp_path / name).read_bytes() == (MODEL / name).read_bytes(), name
    # what happened without it: the flag follows the hub's mode
    raw = tmp_path / "raw"
    subprocess.run([sys.executable, "-c", code.replace("save_tokenizer(tok, Path(sys.argv[1]))",
                                                       "tok.save_pretrained(sys.argv[1])"), str(raw)],
                   check=True, env=env, capture_output=True)
    assert f'"local_files_only": {"true" if online == "1" else "false"}' in (raw / "tokenizer_config.json").read_text()
