"""The gemma profile (configs/gemma.yaml, configs/sft/gemma.yaml): it validates, every run uses the base_completion
template on Gemma 3 270M, and make knows its model and steps."""

from __future__ import annotations

import os
import subprocess

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline.runner import load_profile, notebook_parameters
from subgroup_values.training.finetune import load_recipe


def test_the_gemma_profile_validates_and_uses_the_base_template(tmp_path):
    cfg = load_profile("gemma")
    assert cfg["profile"] == "gemma" and cfg["study"] == "sgp"
    runs = {name: notebook_parameters("gemma", "03_evaluate", run=name) for name in cfg["runs"]}
    assert set(runs) == {"base_ood", "base_train", "sft_ood"}
    for p in runs.values():  # check_parameters validated each (the template among prompts.TEMPLATES)
        assert p["model"] == "models/gemma-3-270m" and p["template"] == "base_completion" and p["scoring"] == "logprob"
    # base and SFT on the same seeded OOD sample (paired)
    assert runs["base_ood"]["limit"] == runs["sft_ood"]["limit"] == 1000 and runs["base_ood"]["split"] == "ood"
    assert runs["base_ood"]["sample_seed"] == runs["sft_ood"]["sample_seed"]
    assert runs["base_train"]["limit"] == 500 and runs["base_train"]["split"] == "train"
    assert runs["sft_ood"]["adapter"] == "build/gemma/adapters/sft"
    script, training, model = load_recipe(REPO_ROOT / "configs" / "sft" / "gemma.yaml", output_dir=str(tmp_path))
    assert model.model_name_or_path == "models/gemma-3-270m" and script.template == "base_completion"
    assert script.train_limit == 3000 and model.use_peft
    assert training.output_dir == str(tmp_path)


def test_make_knows_the_gemma_profile(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "--no-print-directory", "-n", "all", "PROFILE=gemma", f"BUILD={tmp_path}",
                        "WVS_CHECK=", f"PAIRS={tmp_path}/pairs.csv"], cwd=REPO_ROOT, capture_output=True, text=True,
                       env=env | {"PYTHONPATH": str(REPO_ROOT / "src")}, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    runs = [line for line in r.stdout.splitlines() if "subgroup_values.pipeline.runner --profile gemma" in line]
    assert [line.split("--run ")[1] for line in runs if "--run" in line] == ["base_ood", "base_train", "sft_ood"]
    # the fine-tune runs with the gemma recipe, before its OOD run
    ft = [i for i, line in enumerate(runs) if "04_finetune.ipynb" in line]
    assert len(ft) == 1 and "-p recipe configs/sft/gemma.yaml" in runs[ft[0]] and "--run sft_ood" in runs[ft[0] + 1]
    r = subprocess.run(["make", "--no-print-directory", "-pn", "PROFILE=gemma", f"BUILD={tmp_path}", "WVS_CHECK=",
                        f"PAIRS={tmp_path}/pairs.csv", "help"], cwd=REPO_ROOT, capture_output=True, text=True,
                       env=env, timeout=300)
    assert "MODEL_READY := models/gemma-3-270m/model.safetensors" in r.stdout
