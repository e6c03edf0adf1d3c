"""How much is there to emulate? Every predictor and model placed between the noise floor and uniform.

The table (``results/<profile>/headroom/headroom.csv``) has one row per method and pair set (``all``,
``consensus``, ``divergent``): accuracy (of the predicted answer against the weighted mode), total variation
(``tv``), normalised ordinal Wasserstein (``w1``) and Jensen-Shannon distance (``jsd``) of the predicted
distribution to the subgroup's weighted answer distribution, each with a BCa interval over questions
(:func:`subgroup_values.evaluate.summarise`). The noise floor (:mod:`subgroup_values.noise_floor`) is a row of
its own (``method`` = ``noise_floor``: the mean bootstrap floor, with its interval over questions; no accuracy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import mean_bootstrap
from .evaluate import summarise

METRICS = {"accuracy": "accuracy", "tv": "tv", "wasserstein": "w1", "js": "jsd"}
SUBSETS = ("all", "consensus", "divergent")


def _wide(summary: pd.DataFrame, method: str) -> list[dict]:
    rows = []
    for subset, g in summary.groupby("subset", sort=False):
        row = {"method": method, "pairs": subset, "n_pairs": int(g["pairs"].iloc[0])}
        for metric, name in METRICS.items():
            r = g[g.metric == metric]
            if len(r):
                row |= {name: r.estimate.iloc[0], f"{name}_lo": r.lo.iloc[0], f"{name}_hi": r.hi.iloc[0]}
        rows.append(row)
    return rows


def model_predictions(profile: str, run: str, all_pairs: pd.DataFrame) -> pd.DataFrame:
    """A model run's predictions (``results/<profile>/<run>/predictions.parquet``), scored again with today's
    metrics (TV included) against the pairs' weighted distributions."""
    from pathlib import Path

    from .metrics import score_pairs

    path = Path(f"results/{profile}/{run}/predictions.parquet")
    if not path.is_file():
        raise FileNotFoundError(f"No predictions at {path}: run notebook 3 for {run} (make all) first.")
    preds = pd.read_parquet(path).drop(columns=["correct", "nmae", "tv", "wasserstein", "js", "weighted_counts"],
                                       errors="ignore")
    preds = preds.merge(all_pairs[["qid", "subgroup_id", "weighted_counts"]], on=["qid", "subgroup_id"])
    return score_pairs(preds)


def floor_rows(floor: pd.DataFrame, pairs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """The noise floor's rows: mean bootstrap floor on all / consensus / divergent pairs, BCa over questions."""
    f = pairs[["qid", "subgroup_id", "divergent"]].merge(floor, on=["qid", "subgroup_id"], how="left")
    if f["boot_tv"].isna().any():
        missing = f[f.boot_tv.isna()][["qid", "subgroup_id"]].head(3).to_dict("records")
        raise ValueError(f"The noise floor lacks {int(f.boot_tv.isna().sum())} of these pairs (e.g. {missing}): "
                         f"rebuild it from the survey file.")
    rows = []
    for subset, d in (("all", f), ("consensus", f[~f.divergent]), ("divergent", f[f.divergent])):
        if d.empty:
            continue
        ci = mean_bootstrap(d, ["boot_tv", "boot_w1", "boot_jsd"], n_boot=n_boot, seed=seed)
        row = {"method": "noise_floor", "pairs": subset, "n_pairs": len(d), "accuracy": np.nan}
        for col, name in (("boot_tv", "tv"), ("boot_w1", "w1"), ("boot_jsd", "jsd")):
            row |= {name: ci.loc[col, "estimate"], f"{name}_lo": ci.loc[col, "lo"], f"{name}_hi": ci.loc[col, "hi"]}
        rows.append(row)
    return rows


def headroom_table(systems: dict[str, pd.DataFrame], floor: pd.DataFrame, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """Rows for the noise floor and every system (scored predictions of a model run or a baseline, all on the
    same pairs), sorted within each pair set from the floor upwards by TV."""
    names = list(systems)
    ref = systems[names[0]]
    keys = set(zip(ref.qid, ref.subgroup_id))
    for name in names[1:]:
        if set(zip(systems[name].qid, systems[name].subgroup_id)) != keys:
            raise ValueError(f"{name} is scored on other pairs than {names[0]}: a headroom table compares methods "
                             "on the same pairs.")
    rows = floor_rows(floor, ref, n_boot, seed)
    for name, preds in systems.items():
        rows += _wide(summarise(preds, n_boot=n_boot, seed=seed), name)
    table = pd.DataFrame(rows)
    table["pairs"] = pd.Categorical(table["pairs"], SUBSETS, ordered=True)
    return table.sort_values(["pairs", "tv"]).reset_index(drop=True)


def finding(table: pd.DataFrame, models: list[str]) -> str:
    """The finding in words, from the table: where the models and the best non-LLM predictor stand between the
    noise floor (0% of the way) and uniform (100%), by TV, on all and on divergent pairs."""
    out = []
    for subset in ("all", "divergent"):
        t = table[table.pairs == subset].set_index("method")
        if "noise_floor" not in t.index or "uniform" not in t.index:
            continue
        lo, hi = t.loc["noise_floor", "tv"], t.loc["uniform", "tv"]

        def place(m, t=t, lo=lo, hi=hi):
            return (t.loc[m, "tv"] - lo) / (hi - lo)

        others = [m for m in t.index if m not in models and m not in ("noise_floor", "uniform", "true_mode",
                                                                      "population_mode_point")]
        best = min(others, key=lambda m: t.loc[m, "tv"]) if others else None
        parts = [f"{m} TV {t.loc[m, 'tv']:.3f} [{t.loc[m, 'tv_lo']:.3f}, {t.loc[m, 'tv_hi']:.3f}] "
                 f"({place(m):.0%} of the way from the floor to uniform)" for m in models if m in t.index]
        if best:
            parts.append(f"the best non-LLM predictor, {best}, TV {t.loc[best, 'tv']:.3f} ({place(best):.0%})")
        out.append(f"On {subset} pairs ({int(t.loc['uniform', 'n_pairs']):,}), the noise floor is TV {lo:.3f} "
                   f"[{t.loc['noise_floor', 'tv_lo']:.3f}, {t.loc['noise_floor', 'tv_hi']:.3f}] and uniform "
                   f"{hi:.3f}: " + "; ".join(parts) + ".")
    return "\n".join(out)
