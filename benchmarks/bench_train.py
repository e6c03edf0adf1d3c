"""LoRA SFT speed on the default recipe's examples: TRL's SFTTrainer (one example per row, batch 8) against the
packed trainer (a question's shared prompt once per step), on the same training examples, side by side.

    python benchmarks/bench_train.py [--questions 2] [--bf16]

Each trainer runs in its own process (so each peak RSS is its own) on the same examples: every training subgroup
of the first ``--questions`` questions of the default recipe's training pairs, one epoch, no checkpoints. Reported:
examples/s, real tokens/s (the tokens of the unpacked examples, the same work for both), seconds per example,
peak RSS, and the loss of the first batch computed by both trainers on the same examples (TRL's ``compute_loss``
against the packed one). Ends with one ``speedup: <X>x over <anchor>`` line per anchor.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
RECIPE = "configs/sft/default.yaml"


def select(trainer, kind: str, questions: int):
    """Restrict a trainer to the examples of the first ``questions`` questions: (examples, their rows, tokens)."""
    if kind == "packed":
        keep = sorted({c["group"] for c in trainer.chunks})[:questions]
        trainer.chunks = [c for c in trainer.chunks if c["group"] in keep]
        trainer.train_dataset = trainer.chunks
        tokens = sum(len(c["prefix"]) + len(x) for c in trainer.chunks for x in c["suffixes"])
        return sum(len(c["rows"]) for c in trainer.chunks), [r for c in trainer.chunks for r in c["rows"]], tokens
    raise ValueError(kind)


def worker(kind: str, questions: int, bf16: bool) -> dict:
    from subgroup_values.training import finetune

    out = tempfile.mkdtemp()
    try:
        overrides = dict(output_dir=out, save_strategy="no", logging_steps=1, train_limit=0, bf16=bf16)
        # the packed trainer defines which examples run: every training subgroup of the first questions
        s, t, m = finetune.load_recipe(RECIPE, trainer="packed", **overrides)
        packed, pairs = finetune.build_trainer(s, t, m)
        n, rows, tokens = select(packed, "packed", questions)
        if kind == "trl":
            s, t, m = finetune.load_recipe(RECIPE, trainer="trl", per_device_train_batch_size=8,
                                           gradient_accumulation_steps=1, **overrides)
            del packed
            trainer, _ = finetune.build_trainer(s, t, m)
            trainer.train_dataset = trainer.train_dataset.select(rows)
            if sum(len(x) for x in trainer.train_dataset["input_ids"]) != tokens:
                raise RuntimeError("TRL's examples and the packed trainer's differ in their tokens.")
        else:
            trainer = packed
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        return {"kind": kind, "examples": n, "seconds": wall, "examples/s": n / wall, "tokens": tokens,
                "steps": trainer.state.global_step, "first_loss": losses[0] if losses else None,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def same_loss(questions: int) -> dict:
    """TRL's compute_loss and the packed one on the same examples (one chunk of each of the first questions),
    fp32, LoRA B perturbed so that every LoRA weight has a gradient."""
    import torch

    from subgroup_values.training import finetune

    s, t, m = finetune.load_recipe(RECIPE, trainer="trl", output_dir=tempfile.mkdtemp(), train_limit=0,
                                   lora_dropout=0.0)
    trl_trainer, _ = finetune.build_trainer(s, t, m)
    s2, t2, m2 = finetune.load_recipe(RECIPE, trainer="packed", output_dir=tempfile.mkdtemp(), train_limit=0,
                                      lora_dropout=0.0, subgroups_per_chunk=6)
    packed, _ = finetune.build_trainer(s2, t2, m2)
    model = trl_trainer.model
    torch.manual_seed(0)
    for name, p in model.named_parameters():
        if p.requires_grad and "lora_B" in name:
            p.data.normal_(0, 0.005)
    model.train()
    chunks = packed.chunks[:questions]
    rows = [r for c in chunks for r in c["rows"]]

    def run(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return float(loss), {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.requires_grad}

    lt, gt = run(lambda: trl_trainer.compute_loss(model, trl_trainer.data_collator(
        [trl_trainer.train_dataset[i] for i in rows])))
    lp, gp = run(lambda: packed.compute_loss(model, packed.data_collator(chunks)))
    return {"examples": len(rows), "loss_trl": lt, "loss_packed": lp, "loss_diff": abs(lt - lp),
            "grad_diff": max(float((gt[k] - gp[k]).abs().max()) for k in gt)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=2, help="questions whose training subgroups are trained on")
    ap.add_argument("--bf16", action="store_true", help="also time the packed trainer with bf16 autocast")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker == "same_loss":
            print("RESULT " + json.dumps(same_loss(args.questions)))
        else:
            print("RESULT " + json.dumps(worker(args.worker, args.questions, args.worker_bf16)))
        return
    runs = [("TRL SFTTrainer (batch 8, fp32)", "trl", False), ("packed trainer (fp32)", "packed", False)]
    if args.bf16:
        runs.append(("packed trainer (bf16 autocast)", "packed", True))
    rows = {}
    for name, kind, bf16 in runs + [("same examples, one batch", "same_loss", False)]:
        cmd = [sys.executable, __file__, "--worker", kind, "--questions", str(args.questions)]
        if bf16:
            cmd.append("--worker-bf16")
        print(f"running: {name} ...", flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
        if out.returncode or not line:
            raise SystemExit(f"{name} failed (exit {out.returncode}):\n{out.stderr[-3000:]}")
        rows[name] = json.loads(line[-1][7:])
    same = rows.pop("same examples, one batch")
    tokens = rows[runs[0][0]]["tokens"]
    print(f"\n{rows[runs[0][0]]['examples']} training examples ({args.questions} questions x their training "
          f"subgroups), {tokens} real tokens, default recipe (LoRA r=16, all linear layers), 2 threads")
    print(f"{'trainer':34s} {'steps':>5s} {'seconds':>8s} {'examples/s':>10s} {'tokens/s':>9s} {'s/example':>9s} "
          f"{'peak RSS MB':>11s}")
    for name, r in rows.items():
        print(f"{name:34s} {r['steps']:5d} {r['seconds']:8.1f} {r['examples/s']:10.2f} {tokens / r['seconds']:9.0f} "
              f"{r['seconds'] / r['examples']:9.3f} {r['peak_rss_mb']:11.0f}")
    print(f"same loss on the same {same['examples']} examples (fp32): TRL {same['loss_trl']:.7f}, packed "
          f"{same['loss_packed']:.7f}, |difference| {same['loss_diff']:.1e}; LoRA gradients max |difference| "
          f"{same['grad_diff']:.1e}")
    anchor = rows[runs[0][0]]["examples/s"]
    if args.bf16:
        print(f"bf16 autocast: {rows[runs[2][0]]['examples/s'] / rows[runs[1][0]]['examples/s']:.2f}x the packed "
              f"trainer in fp32")
    print(f"speedup: {rows[runs[1][0]]['examples/s'] / anchor:.1f}x over TRL SFTTrainer")


if __name__ == "__main__":
    main()
