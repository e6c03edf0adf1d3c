"""LoRA SFT speed for the default recipe on this machine: tokens/s, seconds per step, peak memory, and the effect
of TRL speed options, measured side by side on the same examples.

    python benchmarks/bench_train.py [--steps 6]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import TrainerCallback  # noqa: E402

from subgroup_values import finetune  # noqa: E402


class Clock(TrainerCallback):
    def __init__(self):
        self.times, self.tokens = [], 0

    def on_step_begin(self, args, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self.t)


def run(name: str, steps: int, **overrides) -> dict:
    out = tempfile.mkdtemp()
    try:
        s, t, m = finetune.load_recipe("configs/sft/default.yaml", output_dir=out, max_steps=steps, save_strategy="no",
                                       logging_steps=1, **overrides)
        trainer, pairs = finetune.build_trainer(s, t, m)
        clock = Clock()
        trainer.add_callback(clock)
        t0 = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - t0
        tokens = max((float(h.get("num_tokens", 0)) for h in trainer.state.log_history), default=0.0)
        steady = clock.times[1:] or clock.times
        return {"name": name, "s/step": sum(steady) / len(steady), "tokens/s": tokens / wall,
                "sequences/s": steps * t.per_device_train_batch_size * t.gradient_accumulation_steps / wall,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    settings = [("default recipe (batch 8, pad to longest)", {}), ("padding_free=True", {"padding_free": True}),
                ("packing=True (bfd)", {"packing": True}), ("batch 16", {"per_device_train_batch_size": 16})]
    rows = []
    for name, kw in settings:
        try:
            rows.append(run(name, args.steps, **kw))
        except Exception as err:  # an option this stack cannot run on a CPU is a result too
            rows.append({"name": name, "error": f"{err.__class__.__name__}: {str(err).splitlines()[0][:90]}"})
    print(f"{'setting':45s} {'s/step':>8s} {'tokens/s':>9s} {'seqs/s':>10s} {'peak RSS MB':>11s}")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:45s} failed: {r['error']}")
            continue
        print(f"{r['name']:45s} {r['s/step']:8.2f} {r['tokens/s']:9.0f} {r['sequences/s']:10.2f} {r['peak_rss_mb']:11.0f}")
    print("tokens/s counts the real (non-padding) tokens trained on; with packing a sequence holds several examples.")
    print("peak RSS is cumulative over the process (each row includes the rows before it).")


if __name__ == "__main__":
    main()
