"""Coverage of the fairness intervals by simulation in a world built from the committed data.

    .venv/bin/python benchmarks/interval_coverage.py [--sims 150] [--questions 212] [--per-side 4] [--boot 200]

The world is :func:`subgroup_values.analysis.coverage.respondent_world` (``--per-side`` Chinese and as many Malay OOD
subgroups of the default run, with their committed predictions and answer counts); each simulation draws
``--questions`` questions with replacement and every pair's respondents, and computes the notebook's intervals
with and without the respondent stage (:func:`subgroup_values.analysis.coverage.interval_coverage`). The report (stdout,
kept as ``benchmarks/results/interval_coverage.txt``) is one line per statistic and interval: the share of
simulations whose 95% interval covers the world's truth.
"""

from __future__ import annotations

import argparse
import time

from subgroup_values.analysis import coverage, fairness
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.evaluation import runs
from subgroup_values.survey.dataset import load_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sims", type=int, default=150)
    ap.add_argument("--questions", type=int, default=212)
    ap.add_argument("--per-side", type=int, default=4)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    base, _ = runs.load_run(REPO_ROOT / "results" / "default" / "base_ood")
    sft, _ = runs.load_run(REPO_ROOT / "results" / "default" / "sft_ood")
    world, truth, sides = coverage.respondent_world(fairness.paired(base, sft), load_pairs(), per_side=args.per_side)
    start = time.perf_counter()
    cov = coverage.interval_coverage(world, truth, sides, n_sim=args.sims, n_questions=args.questions,
                                     n_boot=args.boot, seed=args.seed)
    names = world.drop_duplicates("subgroup_id").set_index("subgroup_id").subgroup
    print(f"world: {len(world)} pairs, {world.qid.nunique()} questions; subgroups "
          f"{', '.join(names[list(sides[0])])} vs {', '.join(names[list(sides[1])])}")
    print(f"{args.sims} simulations of {args.questions} questions, {args.boot} bootstrap draws each, seed "
          f"{args.seed}; {time.perf_counter() - start:.0f} s")
    table = cov.pivot(index="statistic", columns="interval", values="coverage")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
