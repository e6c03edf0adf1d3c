"""LoRA SFT with TRL on the tiny model: loss falls, labels cover the completion only, the adapter reloads and
changes predictions, and resuming from a checkpoint reaches the same final state."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file

from subgroup_values.backends.base import ScoreRequest
from subgroup_values.backends.hf import HFBackend
from subgroup_values.survey.prompts import build_messages
from subgroup_values.training import finetune


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


def test_resume_refuses_checkpoints_of_another_recipe(tiny_model, tmp_path, capsys):
    """Checkpoints of another recipe, or of one that cannot be checked, are never resumed: training starts afresh
    and says so."""
    out = tmp_path / "sft"
    s, t, m = recipe(tiny_model, out, train_limit=16, num_train_epochs=1, save_steps=1, max_steps=3)
    finetune.main(s, t, m)
    shutil.rmtree(out / "checkpoint-3")  # an unfinished checkpoint is left (step 2)
    s, t, m = recipe(tiny_model, out, train_limit=16, num_train_epochs=1, save_steps=1, max_steps=3,
                     learning_rate=1e-3)
    record = finetune.main(s, t, m)
    said = capsys.readouterr().out
    assert "Not resuming from" in said and "another training" in said and "learning_rate" in said
    assert record["training"]["resumed_from"] is None and record["training"]["global_step"] == 3
    shutil.rmtree(out / "checkpoint-3")
    (out / "recipe.json").unlink()
    record = finetune.main(s, t, m)
    assert "no recipe.json" in capsys.readouterr().out and record["training"]["resumed_from"] is None


def test_a_finished_training_is_never_resumed_after_its_pairs_change(tiny_model, tmp_path, capsys):
    """Issue 29, case 1: after the training pairs change, the rerun trains afresh (not 0 steps from the old final
    checkpoint), and its record carries the hash of the pairs it read; an identical rerun of a finished training
    trains again too."""
    import pandas as pd

    data = tmp_path / "data"
    data.mkdir()
    table = pd.read_csv("data/processed/pairs.csv")
    table.to_csv(data / "pairs.csv", index=False)
    out = tmp_path / "sft"
    s, t, m = recipe(tiny_model, out, train_limit=16, num_train_epochs=1, save_steps=2, max_steps=2,
                     pairs_file=str(data / "pairs.csv"), study="sgp")  # a table of one's own names its study
    first = finetune.main(s, t, m)
    assert first["training"]["global_step"] == 2 and first["training"]["train_loss"] > 0
    table.loc[table.split == "train", "weighted_counts"] = table.loc[table.split == "train", "weighted_counts"].map(
        lambda v: str(list(reversed(__import__("json").loads(v)))))
    table.loc[table.split == "train", "modal_answers"] = "[1]"
    table.to_csv(data / "pairs.csv", index=False)
    capsys.readouterr()
    second = finetune.main(s, t, m)
    said = capsys.readouterr().out
    assert "Not resuming" in said and "inputs" in said
    assert second["training"]["resumed_from"] is None and second["training"]["global_step"] == 2
    assert second["training"]["train_loss"] > 0
    assert second["data"]["pairs_sha256"] != first["data"]["pairs_sha256"]
    from subgroup_values.core.provenance import sha256_of

    assert second["data"]["pairs_sha256"] == sha256_of(data / "pairs.csv")
    assert second["data"]["base_model"]["weights"] is not None
    third = finetune.main(s, t, m)  # the same inputs, but that training finished
    assert "finished" in capsys.readouterr().out and third["training"]["resumed_from"] is None


def test_base_completion_trains_on_the_plain_text_the_evaluation_scores(tiny_model, tmp_path):
    """A base model (no chat template) trains on the base_completion prompt as plain text, the loss on the line
    "Answer: <modal code>" and the end of sequence only; the packed trainer's loss and gradients equal TRL's on it."""
    from test_packing import check, compare, trainers

    from subgroup_values.survey.prompts import plain_text

    base = tmp_path / "base-model"
    shutil.copytree(tiny_model, base)
    (base / "chat_template.jinja").unlink()
    pairs = finetune.training_pairs(finetune.SubgroupSFTArguments(train_limit=4))
    rec = finetune.sft_records(pairs.head(1), "base_completion")[0]
    assert isinstance(rec["prompt"], str) and rec["prompt"].endswith("\n") and "Respondent: " in rec["prompt"]
    assert rec["prompt"] == plain_text(build_messages(*_question_and_persona(pairs.iloc[0]), "base_completion"))
    assert rec["completion"] == f"Answer: {min(pairs.modal_answers.iloc[0])}"
    s, t, m = recipe(base, tmp_path / "sft", train_limit=4, trainer="trl", template="base_completion")
    with pytest.raises(ValueError, match="no chat template .*base_completion"):  # a chat template: refused
        finetune.build_trainer(*recipe(base, tmp_path / "chat", train_limit=4, trainer="trl"))
    for trainer in (finetune.build_trainer(s, t, m)[0],
                    finetune.build_trainer(*recipe(base, tmp_path / "p", train_limit=4, trainer="packed",
                                                   template="base_completion"))[0]):
        text, loss_part = finetune.loss_tokens(trainer, 0)
        eos = trainer.processing_class.eos_token
        assert loss_part.startswith("Answer: ") and loss_part.endswith(eos) and "Respondent:" not in loss_part
        assert "Respondent: " in text and "<|im_start|>user" not in text
    trl_trainer, packed = trainers(base, "configs/sft/smoke.yaml", tmp_path,
                                   limit=40, per_chunk=3, template="base_completion")
    check(compare(trl_trainer, packed, n_chunks=2, fp64=False))


def _question_and_persona(row):
    from subgroup_values.survey.prompts import attributes_of
    from subgroup_values.survey.questions import load_questions

    return {q.qid: q for q in load_questions(rule="all")}[row["qid"]], attributes_of(row.to_dict())
