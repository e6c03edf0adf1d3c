"""The quick look's time: `subgroup-values evaluate --limit 200` with the embedded model, as a sample of pairs (how
it drew before) and as whole questions (how it draws now: survey.sampling), beside the full run's per-pair time.

    python benchmarks/bench_quick_look.py [--limit 200] [--full-questions 10] [--model models/SmolLM2-135M-Instruct]

Each design is one `evaluate_run` (hf backend, no response cache, fresh output folder), timed end to end in this
process after one warm-up load of the model, so the three rows share the machine's state; on a loaded machine read
the ratios. The full run scores every question whole (all 48 subgroups of each), so its per-pair time is measured on
``--full-questions`` whole questions and extrapolated to every OOD pair.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from subgroup_values.evaluation.runs import evaluate_run  # noqa: E402
from subgroup_values.survey.dataset import load_pairs, sample_pairs  # noqa: E402
from subgroup_values.survey.sampling import whole_questions  # noqa: E402


def timed_run(model: str, out: str, **cfg) -> tuple[float, int]:
    t = time.perf_counter()
    done = evaluate_run({"model": model, "cache": "", "quiet": True, "n_boot": 10} | cfg, out)
    return time.perf_counter() - t, len(done["preds"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--full-questions", type=int, default=10, help="whole questions timed for the full run's rate")
    ap.add_argument("--model", default="models/SmolLM2-135M-Instruct")
    args = ap.parse_args(argv)
    ood = load_pairs(split="ood")
    by_pairs = sample_pairs(ood, args.limit, 0)
    quick = whole_questions(ood, args.limit, 0)
    full = whole_questions(ood, args.full_questions * int(ood.groupby("qid").size().max()), 1)
    with tempfile.TemporaryDirectory() as tmp:
        timed_run(args.model, f"{tmp}/warm", qids=quick[:1])  # loads the model once: the disk cache is warm
        rows = []
        for name, cfg in (("pairs (before)", {"limit": args.limit}),
                          ("whole questions (now)", {"qids": quick}),
                          ("full run's rate", {"qids": full})):
            seconds, n = timed_run(args.model, f"{tmp}/{len(rows)}", **cfg)
            rows.append((name, n, seconds))
    print(f"quick look, --limit {args.limit}, {args.model} ({os.cpu_count()} CPU cores):")
    print(f"  pairs from {by_pairs.qid.nunique()} questions / from {len(quick)} whole questions / "
          f"{len(full)} whole questions for the full run's rate")
    for name, n, seconds in rows:
        print(f"{name:>22}: {n:5d} pairs in {seconds:6.1f} s  ({n / seconds:5.1f} pairs/s, {1000 * seconds / n:5.0f} ms a pair)")
    (_, n_full, s_full), (_, n_q, s_q), (_, n_p, s_p) = rows[2], rows[1], rows[0]
    print(f"full run, extrapolated: {len(ood):,} OOD pairs x {s_full / n_full:.3f} s = {len(ood) * s_full / n_full / 60:.1f} min")
    print(f"speed-up of the quick look: {s_p / s_q * n_q / n_p:.2f}x per pair")
    print(f"quick look {'under' if s_q < 30 else 'OVER'} the 30 s target: {s_q:.1f} s")


if __name__ == "__main__":
    main()
