"""Fairness audit: which personas a model emulates well, and what fine-tuning does to the gaps.

- per subgroup: accuracy, NMAE, Wasserstein over its pairs;
- per attribute value ("Malay", "65+"): the mean over every subgroup that contains it;
- disparity over subgroups: Norm. Range = (max - min) / max, CV = population std / mean, the worst group and
  the max gap (max - min);
- intervals: bootstrap over questions (1,000 draws, seeded); base -> SFT deltas are paired (the same resampled
  questions for both models).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import bootstrap
from .subgroups import DIMENSIONS

#: Items on which refusals are most likely (sexuality, abortion, divorce, violence, religion).
SENSITIVE_ITEMS = {
    "Q22": "neighbours: homosexuals", "Q36": "homosexual couples as parents", "Q182": "homosexuality",
    "Q183": "prostitution", "Q184": "abortion", "Q185": "divorce", "Q186": "sex before marriage",
    "Q187": "suicide", "Q188": "euthanasia", "Q189": "a man beating his wife", "Q190": "parents beating children",
    "Q191": "violence against other people", "Q193": "casual sex", "Q6": "importance of religion",
    "Q164": "importance of God", "Q169": "science vs religion", "Q170": "the only acceptable religion",
}
METRIC_COLUMNS = {"accuracy": "correct", "nmae": "nmae", "wasserstein": "wasserstein"}
LOWER_IS_BETTER = {"accuracy": False, "nmae": True, "wasserstein": True}


def per_subgroup(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per subgroup: its attributes, pair count and mean metrics (incl. refusal and unparseable rates)."""
    attrs = [d for d in DIMENSIONS if d in preds]
    g = preds.groupby("subgroup_id", sort=False)
    out = g.agg(subgroup=("subgroup", "first"), stratum=("stratum", "first"), pairs=("qid", "size"),
                accuracy=("correct", "mean"), nmae=("nmae", "mean"), wasserstein=("wasserstein", "mean"),
                divergent_share=("divergent", "mean"),
                refusal_rate=("status", lambda s: (s == "refusal").mean()),
                unparseable_rate=("status", lambda s: s.isin(["unparseable", "out_of_range", "empty"]).mean()))
    first = g[attrs].first()
    return out.join(first).reset_index()


def disparity(values: pd.Series, lower_is_better: bool = False) -> dict:
    """Norm. Range, CV, worst value and max gap of a metric over subgroups."""
    v = values.dropna().astype(float)
    if v.empty:
        return {"norm_range": np.nan, "cv": np.nan, "worst": np.nan, "max_gap": np.nan}
    hi, lo, mean = v.max(), v.min(), v.mean()
    return {"norm_range": (hi - lo) / hi if hi > 0 else np.nan, "cv": v.std(ddof=0) / mean if mean > 0 else np.nan,
            "worst": hi if lower_is_better else lo, "max_gap": hi - lo}


def _subgroup_means(preds: pd.DataFrame, column: str) -> pd.Series:
    return preds.groupby("subgroup_id")[column].mean()


def disparity_table(preds: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    metrics: tuple[str, ...] = ("accuracy", "nmae")) -> pd.DataFrame:
    """Disparity statistics of each metric over subgroups, with bootstrap intervals over questions."""
    def stat(d: pd.DataFrame) -> pd.Series:
        out = {}
        for m in metrics:
            for k, v in disparity(_subgroup_means(d, METRIC_COLUMNS[m]), LOWER_IS_BETTER[m]).items():
                out[f"{m}_{k}"] = v
        return pd.Series(out)

    ci = bootstrap(preds, stat, n_boot=n_boot, seed=seed)
    ci.index.name = "statistic"
    return ci.reset_index()


def paired(base: pd.DataFrame, sft: pd.DataFrame) -> pd.DataFrame:
    """Base and SFT predictions side by side on the pairs both scored (columns suffixed _base and _sft)."""
    key = ["qid", "subgroup_id"]
    keep = ["correct", "nmae", "wasserstein", "status"]
    meta = [c for c in base.columns if c not in keep + ["choice", "probs", "option_mass", "reply", "js", "expected"]]
    merged = base[meta + keep].merge(sft[key + keep], on=key, suffixes=("_base", "_sft"), validate="one_to_one")
    if not len(merged) == len(base) == len(sft):
        raise ValueError("base and SFT predictions cover different pairs; evaluate both on the same split/sample.")
    return merged


def paired_deltas(both: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                  metrics: tuple[str, ...] = ("accuracy", "nmae")) -> pd.DataFrame:
    """Mean metric and disparity statistics for base and SFT and their differences (SFT - base), paired."""
    def stat(d: pd.DataFrame) -> pd.Series:
        out = {}
        for m in metrics:
            col = METRIC_COLUMNS[m]
            for side in ("base", "sft"):
                out[f"{m}_mean_{side}"] = d[f"{col}_{side}"].mean()
                for k, v in disparity(_subgroup_means(d, f"{col}_{side}"), LOWER_IS_BETTER[m]).items():
                    out[f"{m}_{k}_{side}"] = v
            for k in ("mean", "norm_range", "cv", "worst", "max_gap"):
                out[f"{m}_{k}_delta"] = out[f"{m}_{k}_sft"] - out[f"{m}_{k}_base"]
        return pd.Series(out)

    ci = bootstrap(both, stat, n_boot=n_boot, seed=seed)
    ci.index.name = "statistic"
    ci = ci.reset_index()
    parts = ci.statistic.str.rsplit("_", n=1, expand=True)
    return ci.assign(quantity=parts[0], side=parts[1])


def per_attribute(preds: pd.DataFrame, metric: str = "accuracy", n_boot: int = 1000, seed: int = 0,
                  by_subset: bool = False) -> pd.DataFrame:
    """Per attribute value: the mean of ``metric`` over every subgroup containing it, with intervals.

    With ``by_subset`` the same is computed separately on consensus and divergent pairs, so that "the model
    favours Chinese personas" can be told apart from "Chinese answers are the population's".
    """
    col = METRIC_COLUMNS[metric]
    subsets = [("all", preds)]
    if by_subset:
        subsets += [("consensus", preds[~preds.divergent]), ("divergent", preds[preds.divergent])]
    rows = []
    for subset, d in subsets:
        if d.empty:
            continue
        members = {(dim, val): d.loc[d[dim] == val, "subgroup_id"].unique()
                   for dim in DIMENSIONS if dim in d for val in DIMENSIONS[dim].categories.values()}
        members = {k: v for k, v in members.items() if len(v)}

        def stat(x: pd.DataFrame, members=members) -> pd.Series:
            sg = x.groupby("subgroup_id")[col].mean()
            return pd.Series({f"{dim}={val}": sg.reindex(ids).mean() for (dim, val), ids in members.items()})

        ci = bootstrap(d, stat, n_boot=n_boot, seed=seed)
        for key, r in ci.iterrows():
            dim, val = key.split("=", 1)
            rows.append({"subset": subset, "dimension": dim, "value": val, "metric": metric,
                         "subgroups": len(members[(dim, val)]), "estimate": r.estimate, "lo": r.lo, "hi": r.hi})
    out = pd.DataFrame(rows)
    order = {(d, v): i for i, (d, v) in enumerate((d, v) for d in DIMENSIONS for v in DIMENSIONS[d].categories.values())}
    return out.assign(_o=[order[(d, v)] for d, v in zip(out.dimension, out.value)]).sort_values(["subset", "_o"]) \
        .drop(columns="_o").reset_index(drop=True)


def refusals(preds: pd.DataFrame) -> pd.DataFrame:
    """Refusal and unparseable rates on all items and on the sensitive items."""
    sens = preds.qid.isin(list(SENSITIVE_ITEMS))
    rows = []
    for name, d in [("all items", preds), ("sensitive items", preds[sens]), ("other items", preds[~sens])]:
        rows.append({"items": name, "pairs": len(d), "refusal_rate": (d.status == "refusal").mean(),
                     "unparseable_rate": d.status.isin(["unparseable", "out_of_range", "empty"]).mean()})
    return pd.DataFrame(rows)
