"""The packed trainer is TRL's SFTTrainer computed once per question prefix: the same loss and LoRA gradients on
the same examples (fp32, within 1e-5; exactly in fp64), on the tiny model and on the embedded one."""

from __future__ import annotations

import pytest
import torch

from subgroup_values.training import finetune
from subgroup_values.training.packing import IGNORE, PackedCollator, question_chunks, split_point


def test_split_point_keeps_the_predictor_of_the_first_completion_token_in_the_suffix():
    seqs = [[1, 2, 3, 4, 9, 7, 8], [1, 2, 3, 5, 9, 7, 8]]
    labs = [[IGNORE] * 5 + [7, 8], [IGNORE] * 5 + [7, 8]]
    assert split_point(seqs, labs) == 3  # the common prefix [1, 2, 3]
    same = [[1, 2, 3, 9, 7, 8]] * 2
    same_labs = [[IGNORE] * 4 + [7, 8]] * 2
    assert split_point(same, same_labs) == 3  # identical examples: the token before "7" stays in each suffix


def test_chunks_are_balanced_seeded_and_refuse_examples_without_completion():
    ids = [[1, 2, 3, 10 + i, 7] for i in range(10)] + [[4, 5, 6, 30 + i, 7] for i in range(3)]
    labs = [[IGNORE] * 4 + [7]] * 13
    groups = ["a"] * 10 + ["b"] * 3
    chunks = question_chunks(ids, labs, groups, subgroups_per_chunk=4, seed=0)
    assert sorted(len(c["rows"]) for c in chunks if c["group"] == "a") == [3, 3, 4]
    assert sorted(r for c in chunks for r in c["rows"]) == list(range(13))
    assert all(c["prefix"] == [1, 2, 3] for c in chunks if c["group"] == "a" and len(c["rows"]) > 1)
    assert chunks == question_chunks(ids, labs, groups, subgroups_per_chunk=4, seed=0)
    assert [c["rows"] for c in chunks] != [c["rows"] for c in question_chunks(ids, labs, groups, 4, seed=1)]
    with pytest.raises(ValueError, match="no completion token"):
        question_chunks(ids, [[IGNORE] * 5] + labs[1:], groups)
    with pytest.raises(ValueError, match="one entry per example"):
        question_chunks(ids, labs, groups[:-1])


def test_collator_mask_is_a_tree():
    chunk = {"prefix": [1, 2], "suffixes": [[3, 4], [5]], "suffix_labels": [[IGNORE, 4], [5]]}
    batch = PackedCollator(pad_token_id=0)([chunk, {"prefix": [1], "suffixes": [[6]], "suffix_labels": [[6]]}])
    m = batch["attention_mask"][0, 0].int().tolist()
    assert m == [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 1]]
    assert batch["position_ids"][0].tolist() == [0, 1, 2, 3, 2]
    assert batch["labels"][0].tolist() == [IGNORE, IGNORE, IGNORE, 4, 5]
    assert batch["input_ids"][1].tolist() == [1, 6, 0, 0, 0] and batch["attention_mask"][1, 0, 3].int().tolist() == [
        0, 0, 0, 1, 0]  # padding sees itself only
    assert int(batch["real_tokens"]) == 7


def trainers(model_path, recipe, tmp_path, limit, per_chunk, **overrides):
    kw = dict(model_name_or_path=str(model_path), train_limit=limit, lora_dropout=0.0, **overrides)
    s, t, m = finetune.load_recipe(recipe, trainer="trl", output_dir=str(tmp_path / "trl"), **kw)
    trl_trainer, _ = finetune.build_trainer(s, t, m)
    s, t, m = finetune.load_recipe(recipe, trainer="packed", subgroups_per_chunk=per_chunk,
                                   output_dir=str(tmp_path / "packed"), **kw)
    packed, _ = finetune.build_trainer(s, t, m)
    return trl_trainer, packed


def compare(trl_trainer, packed, n_chunks: int, fp64: bool = True) -> dict:
    """Loss and LoRA gradients of TRL's compute_loss and the packed one on the same examples: fp32 (TRL's own code,
    its fused output layer included) and fp64 (the plain causal-LM loss of TRL's collated batch, see below)."""
    model = trl_trainer.model
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if p.requires_grad and "lora_B" in name:  # B starts at zero: move it so that A has gradients too
            p.data.normal_(0, 0.005)
    model.train()
    chunks = [c for c in packed.chunks if len(c["rows"]) > 1][:n_chunks]
    rows = [r for c in chunks for r in c["rows"]]
    batch = trl_trainer.data_collator([trl_trainer.train_dataset[i] for i in rows])

    def run(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return float(loss.detach()), {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.requires_grad}

    out = {"examples": len(rows)}
    lt, gt = run(lambda: trl_trainer.compute_loss(model, dict(batch)))
    lp, gp = run(lambda: packed.compute_loss(model, packed.data_collator(chunks)))
    out["fp32_loss"] = abs(lt - lp)
    out["fp32_grad"] = max(float((gt[k] - gp[k]).abs().max()) for k in gt)
    out["grad_scale"] = max(float(g.abs().max()) for g in gt.values())
    out["nonzero_grads"] = sum(bool(g.abs().max() > 0) for g in gp.values()) / len(gp)
    if not fp64:
        return out
    model.double()
    try:
        lx, gx = run(lambda: causal_lm_loss(model, batch))
        lp64, gp64 = run(lambda: packed.compute_loss(model, packed.data_collator(chunks)))
    finally:
        model.float()
    out["fp64_loss"] = abs(lx - lp64)
    out["fp64_grad"] = max(float((gx[k] - gp64[k]).abs().max()) for k in gx)
    return out


def causal_lm_loss(model, batch):
    """The completion-only causal-LM loss of an unpacked batch, in the model's own precision (transformers' loss
    casts the logits to fp32, which would hide an fp64 comparison)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=IGNORE, reduction="sum") / (labels != IGNORE).sum()


def check(d: dict) -> None:
    assert d["examples"] >= 4
    assert d["nonzero_grads"] == 1.0  # every LoRA matrix gets a gradient: the comparison covers them all
    assert d["fp32_loss"] <= 1e-5, d
    assert d["fp32_grad"] <= 1e-5, d
    # in fp64 only rounding is left (Llama's RMSNorm still computes in fp32: ~1e-8 on the embedded model)
    if "fp64_loss" in d:
        assert d["fp64_loss"] <= 1e-7 and d["fp64_grad"] <= 1e-7, d


def test_same_loss_and_gradients_as_trl_on_the_tiny_model(tiny_model, tmp_path):
    trl_trainer, packed = trainers(tiny_model, "configs/sft/smoke.yaml", tmp_path, limit=600, per_chunk=4)
    check(compare(trl_trainer, packed, n_chunks=3))


def test_same_loss_and_gradients_as_trl_on_the_embedded_model(smollm2, tmp_path):
    trl_trainer, packed = trainers(smollm2, "configs/sft/default.yaml", tmp_path, limit=600, per_chunk=4)
    check(compare(trl_trainer, packed, n_chunks=3))


def test_packed_training_learns_and_counts_chunks(tiny_model, tmp_path):
    s, t, m = finetune.load_recipe("configs/sft/smoke.yaml", model_name_or_path=str(tiny_model),
                                   output_dir=str(tmp_path / "sft"), train_limit=400, subgroups_per_chunk=8,
                                   per_device_train_batch_size=2, num_train_epochs=2, save_strategy="no")
    trainer, pairs = finetune.build_trainer(s, t, m)
    assert sum(len(c["rows"]) for c in trainer.chunks) == len(pairs) == 400
    assert trainer.packed_tokens < trainer.example_tokens
    text, loss_part = finetune.loss_tokens(trainer, 0)
    assert loss_part.startswith("Answer: ") and "Question:" in text and "Question:" not in loss_part
    record = finetune.train(trainer, pairs, s, t, m)
    assert record["training"]["global_step"] == 2 * -(-len(trainer.chunks) // 2)
    assert record["training"]["last_loss"] < record["training"]["first_loss"]
    assert record["data"]["train_pairs"] == 400


def test_packed_trainer_refuses_what_it_cannot_keep_exact(tiny_model, tmp_path):
    for bad in ({"packing": True}, {"shuffle_dataset": True}):
        s, t, m = finetune.load_recipe("configs/sft/smoke.yaml", model_name_or_path=str(tiny_model),
                                       output_dir=str(tmp_path / "x"), train_limit=20, **bad)
        with pytest.raises(ValueError, match="packed trainer"):
            finetune.build_trainer(s, t, m)
    with pytest.raises(ValueError, match="trainer must be one of"):
        finetune.training_pairs(finetune.SubgroupSFTArguments(trainer="fast"))


def distribution_trainer(model_path, tmp_path, limit=300, per_chunk=4, recipe="configs/sft/smoke.yaml"):
    s, t, m = finetune.load_recipe(recipe, model_name_or_path=str(model_path), output_dir=str(tmp_path / "dist"),
                                   train_limit=limit, loss="distribution", subgroups_per_chunk=per_chunk,
                                   lora_dropout=0.0)
    return finetune.build_trainer(s, t, m)[0]


def brute_force_loss(model, chunks, digit_mask) -> float:
    """Each option scored by a full forward pass over prompt + option tokens (no packing, no tree), renormalised
    over the options; cross-entropy with the target, averaged over the examples."""
    losses = []
    with torch.no_grad():
        for c in chunks:
            for suffix, options, target in zip(c["suffixes"], c["options"], c["targets"]):
                prompt = c["prefix"] + suffix
                lps = []
                for opt in options:
                    ids = torch.tensor([prompt + list(opt)])
                    logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
                    lp = sum(float(logp[len(prompt) - 1 + j, tok]) for j, tok in enumerate(opt))
                    lp += float(torch.log1p(-logp[-1].exp()[digit_mask].sum()))
                    lps.append(lp)
                q = torch.log_softmax(torch.tensor(lps), 0)
                losses.append(float(-(torch.tensor(target, dtype=torch.float64) * q).sum()))
    return sum(losses) / len(losses)


def test_distribution_loss_equals_the_hand_computed_value(tiny_model, tmp_path):
    trainer = distribution_trainer(tiny_model, tmp_path)
    model = trainer.model
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if p.requires_grad and "lora_B" in name:
            p.data.normal_(0, 0.01)
    model.eval()
    chunks = [c for c in trainer.chunks if len(c["rows"]) > 1][:3]
    with torch.no_grad():
        loss = float(trainer.distribution_loss(model, trainer.data_collator(chunks)))
    assert loss == pytest.approx(brute_force_loss(model, chunks, trainer.digit_mask), abs=1e-5)


def test_distribution_gradient_moves_mass_toward_the_target(tiny_model, tmp_path):
    trainer = distribution_trainer(tiny_model, tmp_path)
    model = trainer.model
    model.train()
    batch = trainer.data_collator(trainer.chunks[:4])
    params = [p for p in model.parameters() if p.requires_grad]
    before = float(trainer.distribution_loss(model, batch))
    kl_before = trainer._metrics["train"]["kl"][-1]
    mass_before = trainer._metrics["train"]["target_prob"][-1]
    for _ in range(5):
        model.zero_grad()
        trainer.distribution_loss(model, batch).backward()
        with torch.no_grad():
            for p in params:
                p -= 0.05 * p.grad
    after = float(trainer.distribution_loss(model, batch))
    assert after < before
    assert trainer._metrics["train"]["kl"][-1] < kl_before
    assert trainer._metrics["train"]["target_prob"][-1] > mass_before


def test_distribution_training_runs_and_refuses_bad_settings(tiny_model, tmp_path):
    s, t, m = finetune.load_recipe("configs/sft/smoke.yaml", model_name_or_path=str(tiny_model),
                                   output_dir=str(tmp_path / "d"), train_limit=64, loss="distribution",
                                   num_train_epochs=1, save_strategy="no")
    trainer, pairs = finetune.build_trainer(s, t, m)
    text, loss_part = finetune.loss_tokens(trainer, 0)  # what notebook 4 shows: the prompt, then the target
    assert text.rstrip().endswith("Answer:") and loss_part.startswith("target distribution {")
    shown = [float(x.rsplit(":", 1)[1]) for x in loss_part[len("target distribution {"):-1].split(", ")]
    assert shown == pytest.approx(trainer.chunks[0]["targets"][0], abs=5e-4) and sum(shown) == pytest.approx(1, abs=5e-3)
    record = finetune.train(trainer, pairs, s, t, m)
    assert record["training"]["global_step"] > 0 and record["data"]["train_pairs"] == 64
    with pytest.raises(ValueError, match="packed trainer"):
        finetune.training_pairs(finetune.SubgroupSFTArguments(loss="distribution", trainer="trl"))
    with pytest.raises(ValueError, match="loss must be"):
        finetune.training_pairs(finetune.SubgroupSFTArguments(loss="kl"))
    from subgroup_values.training.packing import distribution_chunks
    with pytest.raises(ValueError, match="one non-negative weight per option"):
        distribution_chunks([[1, 2]], [[[5], [6]]], [[1.0]], ["q"])
