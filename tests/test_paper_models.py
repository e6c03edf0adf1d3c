"""The paper profile names the paper's seven open models (hub id, architecture, LoRA targets, chat-template notes),
the LoRA targets are every linear layer of each architecture, and the profile refuses a machine without a GPU."""

from __future__ import annotations

import os
import subprocess

import pytest
import torch
import yaml

from subgroup_values.pipeline import paper_models as pm

REPO = pm.REPO
PAPER_NAMES = ["Llama-3.1-8B", "Llama-3.2-3B", "SEA-LION-v3-8B", "Qwen2.5-7B", "Sailor2-8B", "SeaLLMs-v3-7B",
               "Phi-4-mini"]  # Tan et al. (2026), the open models of the main table


def linear_names(model) -> set[str]:
    """Leaf names of the Linear layers below the output layer (what peft's "all-linear" wraps)."""
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.endswith("lm_head")}


def test_the_recipe_names_the_seven_models_and_the_profile_follows_it():
    table = pm.paper_models()
    assert list(table) == PAPER_NAMES
    assert len({e["hub_id"] for e in table.values()}) == 7
    recipe = yaml.safe_load((REPO / "configs" / "sft" / "paper.yaml").read_text())
    profile_text = (REPO / "configs" / "paper.yaml").read_text()
    profile = yaml.safe_load(profile_text)
    hub_ids = {e["hub_id"] for e in table.values()}
    assert recipe["model_name_or_path"] in hub_ids and profile["notebooks"]["03_evaluate"]["model"] in hub_ids
    assert all(e["hub_id"] in profile_text for e in table.values())  # the profile's comment lists them all
    from subgroup_values.training.finetune import load_recipe

    script, training, model = load_recipe(REPO / "configs" / "sft" / "paper.yaml", output_dir="/tmp/x", bf16=False,
                                         use_cpu=True)  # on this machine
    assert model.model_name_or_path == recipe["model_name_or_path"]  # the table is no trainer argument
    with pytest.raises(ValueError, match="lacks"):
        bad = REPO / "configs" / "sft" / "paper.yaml"
        text = yaml.safe_load(bad.read_text())
        del text["paper_models"]["Phi-4-mini"]["hub_id"]
        tmp = bad.parent.parent.parent / "build" / "bad_paper.yaml"
        tmp.parent.mkdir(exist_ok=True)
        tmp.write_text(yaml.safe_dump(text))
        pm.paper_models(tmp)


@pytest.mark.parametrize("name", PAPER_NAMES)
def test_lora_targets_are_every_linear_layer_of_the_architecture(name):
    """The targets named per model are exactly the linear layers of its architecture (a tiny config of it), so
    naming them equals the recipe's "all-linear" and none is misspelt (Phi 3's fused qkv_proj, gate_up_proj)."""
    import transformers

    entry = pm.paper_models()[name]
    arch = getattr(transformers, entry["architecture"])
    cfg = arch.config_class(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                            num_attention_heads=2, num_key_value_heads=1, pad_token_id=0, bos_token_id=1,
                            eos_token_id=2)
    assert linear_names(arch(cfg)) == set(entry["lora_target_modules"])
    if entry["family"]:  # the tiny model of the family (real tokenizer) has the same layers
        assert entry["family"] in {"llama3", "qwen2"} and entry["architecture"] == {
            "llama3": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}[entry["family"]]


def test_the_paper_profile_refuses_a_machine_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        pm.check_gpu()
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "--no-print-directory", "-n", "all", "PROFILE=paper", "WVS_CHECK=",
                          "BUILD=build/test_paper_models"], cwd=REPO, capture_output=True, text=True, env=env,
                         timeout=120)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    first_step = next(i for i, ln in enumerate(lines) if "subgroup_values.pipeline.runner" in ln)
    assert any("paper_models check-gpu" in ln for ln in lines[:first_step])  # the check comes before any step
    smoke = subprocess.run(["make", "--no-print-directory", "-n", "all", "PROFILE=smoke", "WVS_CHECK=",
                            "BUILD=build/test_paper_models"], cwd=REPO, capture_output=True, text=True, env=env,
                           timeout=120)
    assert smoke.returncode == 0 and "check-gpu" not in smoke.stdout
    if not torch.cuda.is_available():  # the real check on this machine: exit 1, the message
        real = subprocess.run(["make", "--no-print-directory", "check-gpu"], cwd=REPO, capture_output=True,
                              text=True, env=env, timeout=120)
        assert real.returncode != 0 and "needs a CUDA GPU" in real.stderr + real.stdout
