"""The value landscape: how divided are subgroups, question by question?

Modal Diversity Score (MDS) of one question in one stratum: take every subgroup's modal answer; MDS = entropy
(base 2) of the distribution of those modes / log2(min(#subgroups, #options)). 0: every subgroup has the same
mode; 1: the modes are spread as evenly as possible. A subgroup whose modes tie spreads its vote equally over
them. Cross-check: the mean normalised Wasserstein distance between the answer distributions of every pair of
subgroups in the stratum (:func:`subgroup_values.stats.metrics.wasserstein`).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pandas as pd

from ..core.claims import Claim, fmt, fmt_ci
from ..stats.bootstrap import mean_bootstrap, resample_counts
from ..stats.metrics import entropy_bits, wasserstein

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


def category_ranks(landscape: pd.DataFrame, value: str = "mds", n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95) -> pd.DataFrame:
    """Each category's rank by mean ``value`` (1 = most divided) with a bootstrap interval of the rank: the
    questions of each category are resampled (categories hold disjoint questions, so each has its own draws),
    the means recomputed and the categories ranked in every resample. Also the share of resamples in which the
    category ranks first and last, and the percentile interval of its difference from the next category down
    (for the first) or up (for the last)."""
    cats = sorted(landscape.category.unique())
    boot = np.zeros((n_boot, len(cats)))
    est = np.zeros(len(cats))
    for k, cat in enumerate(cats):
        g = landscape[landscape.category == cat]
        codes, uniq = pd.factorize(g.qid, sort=True)
        sums = np.bincount(codes, weights=g[value].to_numpy(float), minlength=len(uniq))
        counts = np.bincount(codes, minlength=len(uniq)).astype(float)
        w = resample_counts(len(uniq), n_boot, seed + 7919 * (k + 1))  # independent draws per category
        boot[:, k] = (w @ sums) / (w @ counts)
        est[k] = sums.sum() / counts.sum()
    ranks = (-boot).argsort(axis=1).argsort(axis=1) + 1
    a = (1 - level) / 2
    order = np.argsort(-est)
    out = pd.DataFrame({"category": cats, value: est, "rank": (-est).argsort().argsort() + 1,
                        "rank_lo": np.floor(np.quantile(ranks, a, axis=0)).astype(int),
                        "rank_hi": np.ceil(np.quantile(ranks, 1 - a, axis=0)).astype(int),
                        "share_first": (ranks == 1).mean(axis=0), "share_last": (ranks == len(cats)).mean(axis=0)})
    out["neighbour"], out["gap"], out["gap_lo"], out["gap_hi"] = "", np.nan, np.nan, np.nan
    for pos, other in ((0, 1), (len(cats) - 1, len(cats) - 2)):
        if len(cats) < 2:
            break
        i, j = order[pos], order[other]
        sign = 1 if pos == 0 else -1  # the first's lead over the second; the last's distance below the one above
        diff = sign * (boot[:, i] - boot[:, j])
        out.loc[i, ["neighbour", "gap", "gap_lo", "gap_hi"]] = [cats[j], sign * (est[i] - est[j]),
                                                                float(np.quantile(diff, a)),
                                                                float(np.quantile(diff, 1 - a))]
    return out.sort_values("rank").reset_index(drop=True)


def landscape_claims(ranks: pd.DataFrame, cats: pd.DataFrame, reported: dict[str, float], value: str = "mds",
                     level: float = 0.95) -> list[Claim]:
    """The most and the least divided category, each "first"/"last" only where the interval of its rank is that
    rank alone; and each category the paper reports beside our value and interval. Protocol: none (no predictor)."""
    n = len(ranks)
    ci = cats.set_index("category")
    out = []
    for pos, word, end in ((0, "most", 1), (n - 1, "least", n)):
        r = ranks.iloc[pos]
        separated = r.rank_lo == r.rank_hi == end
        gap = (f"; its lead over {r.neighbour} ({fmt(ranks.set_index('category').loc[r.neighbour, value])}) is "
               f"{fmt_ci(r.gap, r.gap_lo, r.gap_hi)}" if r.neighbour and word == "most" else
               f"; its distance below {r.neighbour} ({fmt(ranks.set_index('category').loc[r.neighbour, value])}) is "
               f"{fmt_ci(r.gap, r.gap_lo, r.gap_hi)}" if r.neighbour else "")
        out.append(Claim(
            id=f"landscape.{word}_divided", topic="landscape", statistic=f"rank of the category by mean {value}",
            estimate=float(r[value]), lo=float(ci.loc[r.category, f"{value}_lo"]),
            hi=float(ci.loc[r.category, f"{value}_hi"]),
            method=f"bootstrap over questions within each category ({level:.0%} percentile interval of the rank)",
            rule=f"rank {end} is stated when the interval of the rank is {end} alone; else not separated",
            verdict=f"rank {end}" if separated else "not separated",
            sentence=(f"{r.category} has the {'highest' if word == 'most' else 'lowest'} mean MDS, "
                      f"{fmt_ci(r[value], ci.loc[r.category, f'{value}_lo'], ci.loc[r.category, f'{value}_hi'])}"
                      f" (rank {int(r['rank'])} of {n}; {level:.0%} interval of the rank {int(r.rank_lo)}-"
                      f"{int(r.rank_hi)}, {'first' if word == 'most' else 'last'} in "
                      f"{(r.share_first if word == 'most' else r.share_last):.0%} of resamples{gap}): "
                      + (f"it is the {word} divided category, separated from the others." if separated else
                         f"the {word} divided category is not identified (its rank is not separated).")),
            source="results/<profile>/landscape/category_ranks.csv"))
    for cat, val in reported.items():
        if cat not in ci.index:
            continue
        lo, hi = float(ci.loc[cat, f"{value}_lo"]), float(ci.loc[cat, f"{value}_hi"])
        est = float(ci.loc[cat, value])
        inside = lo <= val <= hi
        rk = ranks.set_index("category").loc[cat]
        out.append(Claim(
            id="landscape.paper." + re.sub(r"[^a-z0-9]+", "_", cat.lower()).strip("_"), topic="landscape",
            statistic=f"mean {value} of {cat}, ours against the paper's", estimate=est, lo=lo, hi=hi,
            method=f"BCa bootstrap over the category's questions ({level:.0%})",
            rule="the paper's value inside our interval: consistent; else differs",
            verdict="consistent with the paper" if inside else "differs from the paper",
            sentence=(f"{cat}: mean MDS {fmt_ci(est, lo, hi)} here, the paper's {fmt(val)} "
                      + ("inside our interval" if inside else "outside our interval")
                      + f"; our rank {int(rk['rank'])} of {n} (interval {int(rk.rank_lo)}-{int(rk.rank_hi)})."),
            source="results/<profile>/landscape/category_ranking.csv"))
    return out


def measures_claim(mds_table: pd.DataFrame, wasserstein_table: pd.DataFrame) -> Claim:
    """How alike MDS and Wasserstein rank the categories (Spearman correlation of the category means)."""
    rho = float(mds_table.mean(axis=1).corr(wasserstein_table.mean(axis=1), method="spearman"))
    return Claim(
        id="landscape.mds_vs_wasserstein", topic="landscape", estimate=rho,
        statistic="Spearman correlation of the category means of MDS and of Wasserstein", method="Spearman",
        sentence=(f"MDS and Wasserstein rank the {len(mds_table)} categories with a Spearman correlation of "
                  f"{fmt(rho)}: MDS sees only whether modes flip, Wasserstein sees shifts of the whole distribution "
                  "(a long scale can shift without changing its mode)."),
        source="results/<profile>/landscape/mds_category_by_stratum.csv")
