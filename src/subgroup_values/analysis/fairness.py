"""Fairness audit: which personas a model emulates well, and what fine-tuning does to the gaps.

- per subgroup: accuracy, NMAE, Wasserstein over its pairs;
- per attribute value ("Malay", "65+"): the mean over every subgroup that contains it;
- disparity over subgroups (their mean metric ``m_1..m_S``): Norm. Range = (max m - min m) / max m,
  CV = population std(m) / mean(m), the worst group (min accuracy, max NMAE) and the max gap (max m - min m);
- intervals: bootstrap over questions (1,000 draws, seeded), BCa by default (see :mod:`.bootstrap`): range-type
  statistics of noisy subgroup means are biased upwards and their percentile intervals inherit the bias;
  base -> SFT deltas are paired (the same resampled questions for both models);
- :func:`null_coverage` checks the intervals on the data at hand: it builds a world in which base and SFT have
  the same true subgroup means (every true delta is 0) from the real runs' residuals and counts how often each
  statistic's interval covers 0, for each interval method. No method is right for every statistic: ranges,
  maxima and minima of noisy subgroup means are not smooth, and the bootstrap is not guaranteed to be consistent
  for them.
- the base -> SFT disparity verdicts (relative and absolute dispersion, paired permutation tests, two-stage
  intervals with respondent noise, Holm over the family) are :mod:`.disparities`; respondent redraws are
  :mod:`.respondents`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..stats.bootstrap import (
    DEFAULT_METHOD,
    METHOD_NAMES,
    interval,
    jackknife_counts,
    resample_counts,
    subgroup_bootstrap,
    subgroup_sums,
    weighted_means,
    wilson,
)
from ..stats.disparities import dispersion
from ..survey.prompts import UNREADABLE
from ..survey.questions import SENSITIVE_ITEMS
from ..survey.study import study_of

METRIC_COLUMNS = {"accuracy": "correct", "nmae": "nmae", "wasserstein": "wasserstein"}
LOWER_IS_BETTER = {"accuracy": False, "nmae": True, "wasserstein": True}


def per_subgroup(preds: pd.DataFrame, study=None) -> pd.DataFrame:
    """One row per subgroup: its attributes, pair count and mean metrics (incl. refusal and unparseable rates).
    ``study``: the predictions' study (None: the one they carry, :func:`subgroup_values.survey.study.study_of`)."""
    attrs = [d for d in study_of(preds, study).dimensions if d in preds]
    g = preds.groupby("subgroup_id", sort=False)
    out = g.agg(subgroup=("subgroup", "first"), stratum=("stratum", "first"), pairs=("qid", "size"),
                accuracy=("correct", "mean"), nmae=("nmae", "mean"), wasserstein=("wasserstein", "mean"),
                divergent_share=("divergent", "mean"),
                refusal_rate=("status", lambda s: (s == "refusal").mean()),
                unparseable_rate=("status", lambda s: s.isin(list(UNREADABLE)).mean()))
    first = g[attrs].first()
    return out.join(first).reset_index()


DISPARITY_STATISTICS = ("norm_range", "cv", "worst", "max_gap", "sd")


def disparity_arrays(means: np.ndarray, lower_is_better: bool = False) -> dict[str, np.ndarray]:
    """Norm. Range, CV, worst value, max gap and SD over the last axis (subgroups) of ``means``; NaN subgroups
    (absent from a resample) are ignored (:func:`.disparities.dispersion` without the noise correction)."""
    d = dispersion(means, None, lower_is_better)
    return {k: d[k] for k in DISPARITY_STATISTICS}


def disparity(values: pd.Series, lower_is_better: bool = False) -> dict:
    """Norm. Range, CV, worst value and max gap of a metric over subgroups."""
    v = values.dropna().astype(float).to_numpy()
    if v.size == 0:
        return {k: np.nan for k in DISPARITY_STATISTICS}
    return {k: float(a[0]) for k, a in disparity_arrays(v[None, :], lower_is_better).items()}


def disparity_table(preds: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                    metrics: tuple[str, ...] = ("accuracy", "nmae"), method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Disparity statistics of each metric over subgroups, with bootstrap intervals over questions."""
    cols = [METRIC_COLUMNS[m] for m in metrics]

    def stats(means, overall):
        out = {}
        for k, m in enumerate(metrics):
            for name, v in disparity_arrays(means[:, :, k], LOWER_IS_BETTER[m]).items():
                out[f"{m}_{name}"] = v
        return out

    return subgroup_bootstrap(preds, cols, stats, n_boot=n_boot, seed=seed, method=method)


def paired(base: pd.DataFrame, sft: pd.DataFrame) -> pd.DataFrame:
    """Base and SFT predictions side by side on the pairs both scored (columns suffixed _base and _sft)."""
    key = ["qid", "subgroup_id"]
    keep = [c for c in ("correct", "nmae", "wasserstein", "status", "choice") if c in base and c in sft]
    meta = [c for c in base.columns if c not in keep + ["choice", "probs", "option_mass", "reply", "tv", "js", "expected"]]
    merged = base[meta + keep].merge(sft[key + keep], on=key, suffixes=("_base", "_sft"), validate="one_to_one")
    if not len(merged) == len(base) == len(sft):
        raise ValueError("base and SFT predictions cover different pairs; evaluate both on the same split/sample.")
    if base.attrs.get("study") and base.attrs.get("study") == sft.attrs.get("study"):
        merged.attrs["study"] = base.attrs["study"]  # a merge of frames with different attrs drops them
    return merged


def _paired_stats(metrics: tuple[str, ...]):
    def stats(means, overall):
        out = {}
        for k, m in enumerate(metrics):
            for j, side in enumerate(("base", "sft")):
                out[f"{m}_mean_{side}"] = overall[:, 2 * k + j]
                for name, v in disparity_arrays(means[:, :, 2 * k + j], LOWER_IS_BETTER[m]).items():
                    out[f"{m}_{name}_{side}"] = v
            for name in ("mean", *DISPARITY_STATISTICS):
                out[f"{m}_{name}_delta"] = out[f"{m}_{name}_sft"] - out[f"{m}_{name}_base"]
        return out
    return stats


def _paired_columns(metrics: tuple[str, ...]) -> list[str]:
    return [f"{METRIC_COLUMNS[m]}_{side}" for m in metrics for side in ("base", "sft")]


def paired_deltas(both: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                  metrics: tuple[str, ...] = ("accuracy", "nmae"), method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Mean metric and disparity statistics for base and SFT and their differences (SFT - base), paired.

    The mean is over pairs; disparities are over subgroup means. Every statistic is computed on the same
    resampled questions for both models.
    """
    ci = subgroup_bootstrap(both, _paired_columns(metrics), _paired_stats(metrics), n_boot=n_boot, seed=seed,
                            method=method)
    parts = ci.statistic.str.rsplit("_", n=1, expand=True)
    return ci.assign(quantity=parts[0], side=parts[1])


def sft_effect(pairs_by_split: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0,
               method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Base vs SFT mean accuracy and NMAE with paired delta intervals, per split and on all / consensus /
    divergent pairs. ``pairs_by_split`` maps a split name to :func:`paired` output."""
    rows = []
    for split, pair in pairs_by_split.items():
        for subset, d in [("all", pair), ("consensus", pair[~pair.divergent]), ("divergent", pair[pair.divergent])]:
            if d.empty:
                continue
            get = paired_deltas(d, n_boot=n_boot, seed=seed, method=method).set_index("statistic")
            for m in ("accuracy", "nmae"):
                rows.append({"split": split, "subset": subset, "metric": m, "pairs": len(d),
                             "base": get.loc[f"{m}_mean_base", "estimate"], "sft": get.loc[f"{m}_mean_sft", "estimate"],
                             "delta": get.loc[f"{m}_mean_delta", "estimate"],
                             "delta_lo": get.loc[f"{m}_mean_delta", "lo"], "delta_hi": get.loc[f"{m}_mean_delta", "hi"],
                             "interval": METHOD_NAMES[method]})
    return pd.DataFrame(rows)


def null_coverage(both: pd.DataFrame, n_sim: int = 200, n_boot: int = 500, seed: int = 0, level: float = 0.95,
                  metrics: tuple[str, ...] = ("accuracy", "nmae"),
                  methods: tuple[str, ...] = ("bca", "basic", "percentile")) -> pd.DataFrame:
    """How often each paired statistic's interval covers the true delta of 0, in a world built from the data.

    The world: both models have the base model's observed subgroup means as their true means; each model's
    per-pair values are those means plus its own observed residuals (value - its subgroup mean), with whole
    questions drawn with replacement (so within-question dependence and each model's own noise level are kept).
    Every true delta (mean and disparities) is then exactly 0. Each simulation draws a dataset of the real
    number of questions, computes the intervals as :func:`paired_deltas` does, and checks whether they cover 0.
    Returns one row per delta statistic and method: coverage, and the mean estimate (its bias).
    """
    cols = _paired_columns(metrics)
    sums, counts, qids, _ = subgroup_sums(both, cols)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = sums.sum(0) / counts.sum(0)  # (S, 2K): each model's subgroup means
        values = sums / counts  # (Q, S, 2K); NaN where a pair is missing
    truth = own.copy()
    for k in range(len(metrics)):
        truth[:, 2 * k + 1] = own[:, 2 * k]  # SFT's true means := base's
    world = values - own[None] + truth[None]
    present = counts > 0
    world = np.where(present, world, 0.0)
    stats = _paired_stats(metrics)
    names = [n for n in stats(*weighted_means(np.ones((1, len(qids))), world, present.astype(float)))
             if n.endswith("_delta")]
    rng = np.random.default_rng(seed)
    nq = len(qids)
    hits = {(n, m): 0 for n in names for m in methods}
    ests = {n: [] for n in names}
    for _ in range(n_sim):
        pick = rng.integers(0, nq, nq)
        s, c = world[pick] * present[pick], present[pick].astype(float)
        est = stats(*weighted_means(np.ones((1, nq)), s, c))
        boot = stats(*weighted_means(resample_counts(nq, n_boot, int(rng.integers(1 << 31))), s, c))
        jack = stats(*weighted_means(jackknife_counts(nq), s, c))
        for n in names:
            ests[n].append(float(est[n][0]))
            for m in methods:
                lo, hi = interval(float(est[n][0]), boot[n], jack[n], level, m)
                hits[(n, m)] += bool(lo <= 0 <= hi)
    return pd.DataFrame([{"statistic": n, "method": m, "coverage": hits[(n, m)] / n_sim, "nominal": level,
                          "mean_estimate_under_null": float(np.mean(ests[n])), "simulations": n_sim}
                         for n in names for m in methods])


def verdict(lo: float, hi: float, positive: str, negative: str,
            unclear: str = "no clear difference (the interval includes 0)") -> str:
    """The claim one interval supports: ``positive`` when it lies above 0, ``negative`` below, else ``unclear``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    return positive if lo > 0 else negative if hi < 0 else unclear


def baseline_disparities(systems: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0,
                         method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Relative (Norm. Range, CV) and absolute (max gap, SD) dispersion of accuracy and NMAE over subgroups for
    each system (models and baselines), with intervals over questions."""
    rows = []
    for name, preds in systems.items():
        t = disparity_table(preds, n_boot=n_boot, seed=seed, method=method).set_index("statistic")
        for s in (f"{m}_{k}" for m in ("accuracy", "nmae") for k in ("norm_range", "cv", "max_gap", "sd")):
            rows.append({"system": name, "statistic": s, "estimate": t.loc[s, "estimate"], "lo": t.loc[s, "lo"],
                         "hi": t.loc[s, "hi"], "interval": METHOD_NAMES[method]})
    return pd.DataFrame(rows)


def per_attribute(preds: pd.DataFrame, metric: str = "accuracy", n_boot: int = 1000, seed: int = 0,
                  by_subset: bool = False, study=None) -> pd.DataFrame:
    """Per attribute value: the mean of ``metric`` over every subgroup containing it, with intervals (attributes
    in the order of ``study``'s dimensions and categories; None: the predictions' study).

    With ``by_subset`` the same is computed separately on consensus and divergent pairs, so that "the model
    favours Chinese personas" can be told apart from "Chinese answers are the population's".
    """
    col = METRIC_COLUMNS[metric]
    dims = study_of(preds, study).dimensions
    subsets = [("all", preds)]
    if by_subset:
        subsets += [("consensus", preds[~preds.divergent]), ("divergent", preds[preds.divergent])]
    rows = []
    for subset, d in subsets:
        if d.empty:
            continue
        members = {(dim, val): d.loc[d[dim] == val, "subgroup_id"].unique()
                   for dim in dims if dim in d for val in dims[dim].categories.values()}
        members = {k: v for k, v in members.items() if len(v)}

        # The statistic is a mean of subgroup means (a subgroup that a resample leaves without pairs is skipped):
        # the vectorised subgroup bootstrap, on subgroups in the order it factorises them.
        position = {sid: i for i, sid in enumerate(pd.factorize(d["subgroup_id"], sort=True)[1])}
        index = {f"{dim}={val}": np.array([position[i] for i in ids]) for (dim, val), ids in members.items()}

        def stat(means: np.ndarray, overall: np.ndarray, index=index) -> dict[str, np.ndarray]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # every member subgroup left out: NaN, skipped
                return {key: np.nanmean(means[:, idx, 0], axis=1) for key, idx in index.items()}

        ci = subgroup_bootstrap(d, [col], stat, n_boot=n_boot, seed=seed).set_index("statistic")
        for key, r in ci.iterrows():
            dim, val = key.split("=", 1)
            rows.append({"subset": subset, "dimension": dim, "value": val, "metric": metric,
                         "subgroups": len(members[(dim, val)]), "estimate": r.estimate, "lo": r.lo, "hi": r.hi})
    out = pd.DataFrame(rows)
    order = {(d, v): i for i, (d, v) in enumerate((d, v) for d in dims for v in dims[d].categories.values())}
    return out.assign(_o=[order[(d, v)] for d, v in zip(out.dimension, out.value)]).sort_values(["subset", "_o"]) \
        .drop(columns="_o").reset_index(drop=True)


def refusals(preds: pd.DataFrame) -> pd.DataFrame:
    """Refusal and unparseable rates on all items, on the sensitive items and on the others, the refusal rate with
    its Wilson interval (pairs as trials). A subset with no pairs (a run drawn from the sensitive items only has no
    other items) is a row that says so, with no rates."""
    sens = preds.qid.isin(list(SENSITIVE_ITEMS))
    rows = []
    for name, d in [("all items", preds), ("sensitive items", preds[sens]), ("other items", preds[~sens])]:
        if len(d) == 0:
            rows.append({"items": name, "pairs": 0, "refusal_rate": np.nan, "refusal_lo": np.nan,
                         "refusal_hi": np.nan, "unparseable_rate": np.nan, "note": "no pairs of these items in the run"})
            continue
        k = int((d.status == "refusal").sum())
        lo, hi = wilson(k, len(d))
        rows.append({"items": name, "pairs": len(d), "refusal_rate": k / len(d), "refusal_lo": lo, "refusal_hi": hi,
                     "unparseable_rate": d.status.isin(list(UNREADABLE)).mean(), "note": ""})
    return pd.DataFrame(rows)


# ---- the audit's tables, one function each (notebook 5 shows them) ----------------------------------------------

def attribute_table(models: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0,
                    metrics: tuple[str, ...] = ("accuracy", "nmae"), study=None) -> pd.DataFrame:
    """:func:`per_attribute` for every model and metric, on all / consensus / divergent pairs, with a ``model``
    column and a ``label`` ("religion: Muslim") for plots."""
    parts = [per_attribute(preds, m, n_boot=n_boot, seed=seed, by_subset=True, study=study).assign(model=name)
             for name, preds in models.items() for m in metrics]
    out = pd.concat(parts, ignore_index=True)
    return out.assign(label=out.dimension + ": " + out.value)


def divergent_share_by_attribute(preds: pd.DataFrame, study=None) -> pd.DataFrame:
    """Per attribute value: the mean share of divergent pairs over the subgroups that contain it (one row)."""
    dims = study_of(preds, study).dimensions
    share = per_subgroup(preds, study)
    out = {f"{d}: {v}": share.loc[share[d] == v, "divergent_share"].mean()
           for d in dims if d in share for v in dims[d].categories.values() if (share[d] == v).any()}
    return pd.Series(out, name="share of divergent pairs").to_frame().T


def subgroup_comparison(base: pd.DataFrame, sft: pd.DataFrame, study=None) -> pd.DataFrame:
    """:func:`per_subgroup` of base with SFT's accuracy and NMAE beside it (suffixes _base, _sft)."""
    return per_subgroup(base, study).merge(per_subgroup(sft, study)[["subgroup_id", "accuracy", "nmae"]], on="subgroup_id",
                                    suffixes=("_base", "_sft"))


def refusal_table(generate_runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """:func:`refusals` of each generate-mode run, with a ``model`` column (empty when there is none)."""
    parts = [refusals(g).assign(model=name) for name, g in generate_runs.items()]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
