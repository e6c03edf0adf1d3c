"""How many generate-mode replies does the token budget cut? One greedy decoding at the largest budget, read at
every smaller one (subgroup_values.evaluation.evaluate.budget_sweep), on the seeded OOD sample of a generate run.

    .venv/bin/python scripts/measure_token_budget.py --profile default --run base_ood_generate \
        --budgets 12 16 24 32 48 64 96 128 --out results/default/token_budget.csv

Writes the table (budget, share cut, share unparseable, share refused, accuracy) and a record beside it
(``.json``: the sample, the model, the git revision, the seconds) and prints the smallest budget that cuts under
the target share (default 5%).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from subgroup_values.backends import make_backend
from subgroup_values.core.claims import _atomic_write
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.core.provenance import git_revision, write_csv
from subgroup_values.evaluation import evaluate
from subgroup_values.survey import dataset


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--run", default="base_ood_generate", help="a generate run of the profile (its sample)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[12, 16, 24, 32, 48, 64, 96, 128])
    ap.add_argument("--target", type=float, default=0.05, help="the largest share of cut replies accepted")
    ap.add_argument("--adapter", default=None, help="override the run's adapter (empty string: none)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--limit", type=int, default=None, help="a smaller seeded sample than the run's (its first pairs)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    config = yaml.safe_load((REPO_ROOT / "configs" / f"{a.profile}.yaml").read_text())
    if a.run not in config.get("runs", {}):
        raise SystemExit(f"configs/{a.profile}.yaml has no run {a.run!r}; its runs: {sorted(config['runs'])}.")
    run = config["runs"][a.run]
    if run.get("scoring") != "generate":
        raise SystemExit(f"Run {a.run!r} scores by {run.get('scoring')!r}, not 'generate': pick a generate run.")
    nb = config["notebooks"].get("03_evaluate", {})
    adapter = run.get("adapter") if a.adapter is None else (a.adapter or None)
    pairs = dataset.load_pairs(run.get("pairs_file") or None, study=config.get("study"))
    limit = run.get("limit", 0) if a.limit is None else a.limit
    pairs = dataset.sample_pairs(pairs[pairs.split == run["split"]], limit, run.get("sample_seed", 0),
                                 qids=run.get("qids"))
    llm = make_backend("hf", nb.get("model", "models/SmolLM2-135M-Instruct"), adapter=adapter,
                       dtype=nb.get("dtype", "auto"), batch_size=a.batch_size)
    t0 = time.time()
    table = evaluate.budget_sweep(llm, pairs, a.budgets, template=run.get("template", nb.get("template",
                                                                                          "persona_user")))
    seconds = time.time() - t0
    out = Path(a.out)
    write_csv(table, out)
    ok = table[table.share_cut < a.target]
    record = {"profile": a.profile, "run": a.run, "pairs": len(pairs), "split": run["split"],
              "limit": limit, "sample_seed": run.get("sample_seed", 0), "adapter": adapter,
              "backend": llm.identity(), "budgets": sorted(set(a.budgets)), "target_share_cut": a.target,
              "smallest_budget_under_target": int(ok.max_new_tokens.min()) if len(ok) else None,
              "seconds": round(seconds, 1), "git_revision": git_revision()}
    _atomic_write(json.dumps(record, indent=1) + "\n", out.with_suffix(".json"))
    print(table.to_string(index=False))
    print(f"{len(pairs)} pairs, {seconds:.0f} s; smallest budget cutting under {a.target:.0%}: "
          f"{record['smallest_budget_under_target']}")
    return 0 if len(ok) else 1


if __name__ == "__main__":
    raise SystemExit(main())
