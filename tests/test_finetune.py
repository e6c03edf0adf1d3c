"""LoRA SFT with TRL on the tiny model: loss falls, labels cover the completion only, the adapter reloads and
changes predictions, and resuming from a checkpoint reaches the same final state."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from subgroup_values import finetune
from subgroup_values.backends.base import ScoreRequest
from subgroup_values.backends.hf import HFBackend
from subgroup_values.prompts import build_messages


def recipe(tiny_model, out, **kw):
    return finetune.load_recipe("configs/sft/smoke.yaml", model_name_or_path=str(tiny_model), output_dir=str(out), **kw)


def test_dataset_targets_the_modal_answer():
    assert finetune.modal_completion([3]) == "Answer: 3"
    assert finetune.modal_completion([4, 2]) == "Answer: 2"  # ties: the lowest code
    args = finetune.SubgroupSFTArguments(train_limit=10)
    pairs = finetune.training_pairs(args)
    assert len(pairs) == 10 and set(pairs.split) == {"train"}
    rec = finetune.sft_records(pairs.head(1))[0]
    assert rec["completion"][0]["content"] == f"Answer: {min(pairs.modal_answers.iloc[0])}"
    assert rec["prompt"][-1]["role"] == "user"
    with pytest.raises(ValueError, match="template"):
        finetune.training_pairs(finetune.SubgroupSFTArguments(template="nope"))


def test_train_save_reload_and_labels(tiny_model, tmp_path, questions):
    # TRL's own SFTTrainer here (the packed trainer's equality with it: tests/test_packing.py)
    s, t, m = recipe(tiny_model, tmp_path / "sft", train_limit=48, save_steps=1000, trainer="trl")
    trainer, pairs = finetune.build_trainer(s, t, m)
    text, loss_part = finetune.loss_tokens(trainer, 0)
    assert loss_part.startswith("Answer: ") and "Question:" not in loss_part and "Question:" in text
    batch = trainer.data_collator([trainer.train_dataset[0]])
    labels = batch["labels"][0]
    carries = (labels != -100).nonzero().flatten()
    # only the completion carries loss: one contiguous run of a few tokens at the end of the prompt
    assert 0 < len(carries) < len(labels) / 5
    assert (carries == torch.arange(carries[0], carries[0] + len(carries))).all()
    assert (labels[: carries[0]] == -100).all()
    record = finetune.train(trainer, pairs, s, t, m)
    assert record["training"]["last_loss"] < record["training"]["first_loss"]
    out = tmp_path / "sft"
    assert (out / "adapter_model.safetensors").is_file() and (out / "provenance.json").is_file()
    q = questions["Q1"]
    req = [ScoreRequest(build_messages(q, {"sex": "Male"}), ["1", "2", "3", "4"])]
    base = HFBackend(tiny_model, dtype="float32").score(req)[0].probs
    tuned = HFBackend(tiny_model, adapter=out, dtype="float32").score(req)[0].probs
    assert max(abs(a - b) for a, b in zip(base, tuned)) > 1e-3
    assert HFBackend(tiny_model, adapter=out).identity()["adapter_weights"] is not None


def test_resume_from_checkpoint_gives_the_same_final_state(tiny_model, tmp_path):
    full = tmp_path / "full"
    s, t, m = recipe(tiny_model, full, train_limit=48, num_train_epochs=1, save_steps=3)
    finetune.main(s, t, m)
    part = tmp_path / "part"
    s, t, m = recipe(tiny_model, part, train_limit=48, num_train_epochs=1, save_steps=3)
    finetune.main(s, t, m)
    # pretend the run died after step 3: drop what came later, then run again (resume=True is the default)
    shutil.rmtree(part / "checkpoint-6")
    (part / "adapter_model.safetensors").unlink()
    record = finetune.main(s, t, m)
    assert record["training"]["resumed_from"].endswith("checkpoint-3")
    a, b = load_file(full / "adapter_model.safetensors"), load_file(part / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_resume_refuses_checkpoints_of_another_recipe(tiny_model, tmp_path):
    out = tmp_path / "sft"
    s, t, m = recipe(tiny_model, out, train_limit=16, num_train_epochs=1, save_steps=1)
    finetune.main(s, t, m)
    s, t, m = recipe(tiny_model, out, train_limit=16, num_train_epochs=1, save_steps=1, learning_rate=1e-3)
    with pytest.raises(RuntimeError, match="different recipe"):
        finetune.main(s, t, m)
    (out / "recipe.json").unlink()
    with pytest.raises(RuntimeError, match="no recipe.json"):
        finetune.main(s, t, m)
