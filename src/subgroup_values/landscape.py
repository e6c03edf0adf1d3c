"""The value landscape: how divided are subgroups, question by question?

Modal Diversity Score (MDS) of one question in one stratum: take every subgroup's modal answer; MDS = entropy
(base 2) of the distribution of those modes / log2(min(#subgroups, #options)). 0: every subgroup has the same
mode; 1: the modes are spread as evenly as possible. A subgroup whose modes tie spreads its vote equally over
them. Cross-check: the mean normalised Wasserstein distance between the answer distributions of every pair of
subgroups in the stratum (:func:`subgroup_values.metrics.wasserstein`).
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd

from .bootstrap import mean_bootstrap
from .metrics import entropy_bits, wasserstein

WEIGHTINGS = ("weighted", "unweighted")


def modal_diversity(modes: list[list[int]], n_options: int) -> float:
    """MDS of one question in one stratum from each subgroup's (possibly tied) modal answers."""
    k = min(len(modes), n_options)
    if k < 2:
        return 0.0
    votes: Counter = Counter()
    for m in modes:
        for v in m:
            votes[v] += 1 / len(m)
    return entropy_bits(list(votes.values())) / np.log2(k)


def _columns(weighting: str) -> tuple[str, str]:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    return ("modal_answers", "weighted_counts") if weighting == "weighted" else \
        ("modal_answers_unweighted", "counts")


def question_landscape(pairs: pd.DataFrame, weighting: str = "weighted") -> pd.DataFrame:
    """One row per (question, stratum): MDS, mean pairwise Wasserstein, number of subgroups and distinct modes."""
    mode_col, dist_col = _columns(weighting)
    rows = []
    for (qid, category, stratum), g in pairs.groupby(["qid", "category", "stratum"], sort=False):
        n_options = len(g[dist_col].iloc[0])
        dists = [np.asarray(c, dtype=float) for c in g[dist_col]]
        pairs_w = [wasserstein(a, b) for a, b in itertools.combinations(dists, 2)]
        rows.append({"qid": qid, "category": category, "stratum": stratum, "subgroups": len(g),
                     "n_options": n_options, "distinct_modes": len({m[0] for m in g[mode_col]}),
                     "mds": modal_diversity(list(g[mode_col]), n_options),
                     "wasserstein": float(np.mean(pairs_w)) if pairs_w else 0.0})
    return pd.DataFrame(rows)


def by_category(landscape: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mean MDS and Wasserstein per category (over questions and strata), with bootstrap intervals over questions."""
    out = []
    for category, g in landscape.groupby("category"):
        ci = mean_bootstrap(g, ["mds", "wasserstein"], n_boot=n_boot, seed=seed)
        out.append({"category": category, "questions": g.qid.nunique(),
                    "mds": ci.loc["mds", "estimate"], "mds_lo": ci.loc["mds", "lo"], "mds_hi": ci.loc["mds", "hi"],
                    "wasserstein": ci.loc["wasserstein", "estimate"], "wasserstein_lo": ci.loc["wasserstein", "lo"],
                    "wasserstein_hi": ci.loc["wasserstein", "hi"]})
    return pd.DataFrame(out).sort_values("mds", ascending=False).reset_index(drop=True)


def category_by_stratum(landscape: pd.DataFrame, value: str = "mds") -> pd.DataFrame:
    """Mean of ``value`` per category (rows, most divided first) and stratum (columns)."""
    table = landscape.pivot_table(index="category", columns="stratum", values=value, aggfunc="mean")
    order = table.mean(axis=1).sort_values(ascending=False).index
    strata = list(dict.fromkeys(landscape.stratum))
    return table.loc[order, strata]


def extreme_questions(landscape: pd.DataFrame, n: int = 3, value: str = "mds") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` most and least divisive questions by mean ``value`` over strata (ties broken by Wasserstein)."""
    per_q = landscape.groupby(["qid", "category"], as_index=False)[["mds", "wasserstein"]].mean()
    ranked = per_q.sort_values([value, "wasserstein"], ascending=False)
    return ranked.head(n).reset_index(drop=True), ranked.tail(n).iloc[::-1].reset_index(drop=True)
