"""What bf16 autocast does to a trained adapter: the default recipe trained twice on the same seeded training
pairs, in fp32 and with ``bf16: true`` (autocast, on CPUs with AVX-512 bf16), each adapter scored (fp32, exact) on
the same seeded OOD pairs. Prints both accuracies, the paired difference with a BCa interval (questions
resampled), the share of pairs whose predicted answer differs, and the training speed of each.

    python benchmarks/bf16_effect.py [--train-pairs 2000] [--ood-pairs 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pandas as pd  # noqa: E402

from subgroup_values.backends.cache import NullCache  # noqa: E402
from subgroup_values.backends.hf import HFBackend  # noqa: E402
from subgroup_values.evaluation.evaluate import predict  # noqa: E402
from subgroup_values.stats.bootstrap import mean_bootstrap  # noqa: E402
from subgroup_values.survey.dataset import load_pairs, sample_pairs  # noqa: E402
from subgroup_values.training import finetune  # noqa: E402

RECIPE = "configs/sft/default.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-pairs", type=int, default=2000)
    ap.add_argument("--ood-pairs", type=int, default=2000)
    args = ap.parse_args()
    ood = sample_pairs(load_pairs(split="ood"), args.ood_pairs, 0)
    work = tempfile.mkdtemp()
    preds, speed = {}, {}
    try:
        for name, bf16 in (("fp32", False), ("bf16", True)):
            out = os.path.join(work, name)
            s, t, m = finetune.load_recipe(RECIPE, output_dir=out, train_limit=args.train_pairs, bf16=bf16,
                                           save_strategy="no")
            record = finetune.main(s, t, m)
            speed[name] = record["training"]["examples_per_second"]
            backend = HFBackend(m.model_name_or_path, adapter=out, dtype="float32", batch_size=16)
            preds[name] = predict(backend, ood, cache=NullCache(), progress=False)
            print(f"{name}: trained on {args.train_pairs} pairs at {speed[name]:.2f} examples/s, mean training "
                  f"loss {record['training']['train_loss']:.4f}; OOD accuracy {preds[name]['correct'].mean():.4f}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    both = pd.DataFrame({"qid": preds["fp32"]["qid"].to_numpy(), "fp32": preds["fp32"]["correct"].to_numpy(float),
                         "bf16": preds["bf16"]["correct"].to_numpy(float)})
    both["bf16 - fp32"] = both["bf16"] - both["fp32"]  # paired: the mean difference is the difference of means
    ci = mean_bootstrap(both, ["fp32", "bf16", "bf16 - fp32"], n_boot=1000)
    print(f"\n{len(both)} OOD pairs ({both.qid.nunique()} questions), adapters trained on {args.train_pairs} "
          f"training pairs; BCa 95% intervals, questions resampled:")
    print(ci[["estimate", "lo", "hi"]].round(4).to_string())
    differ = (preds["fp32"]["choice"].to_numpy() != preds["bf16"]["choice"].to_numpy()).mean()
    print(f"predicted answer differs on {differ:.1%} of pairs")
    print(f"speedup: {speed['bf16'] / speed['fp32']:.2f}x over fp32 training (bf16 autocast)")


if __name__ == "__main__":
    main()
