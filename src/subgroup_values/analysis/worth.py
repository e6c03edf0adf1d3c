"""What a predictor is worth in respondents, and what a persona adds to a few real answers (``disjoint`` only).

For a target pair (question x subgroup, answers of the target fold's respondents), the subgroup's *own*
respondents in the other folds (who answered the question, with their weights) give the curve
``c(m) = E TV(p_hat_m, target)``: the distance to the target of the weighted distribution of ``m`` of them drawn
without replacement, for ``m = 1 .. n`` (the ``n`` available), by ``draws`` random orders (the first ``m`` of
each order). A predictor with TV ``d`` to the target is worth the ``m`` at which ``c(m) = d``:

- **pooled** (the number every claim uses): over the pairs with at least ``max_m`` own respondents, the mean
  curve ``C(m)`` against the predictor's mean TV ``D`` on the same pairs, ``m* = C^-1(D)`` (linear between whole
  m); where ``D < C(max_m)`` the worth is beyond the curve: reported as ``> max_m``, with a fitted extrapolation
  ``C(m)^2 = a + b / m`` (labelled ``extrapolated``; infinite when ``D^2 <= a``: nothing the subgroup's own sample
  can do comes closer). Interval: BCa bootstrap over questions (the curve and ``D`` resampled together; the
  jackknife leaves one question out), as for the tables.
- **per pair**: the same inversion on the pair's own curve (``inf`` where even all ``n`` are farther than the
  predictor); median over pairs.

This pooled worth is Trott's (2024) "number needed to beat": the size of a raw sample of the subgroup's own
respondents that the predictor matches. On a fixed set of pairs it is a monotone function of the mean TV, and a raw
histogram of a few respondents is a poor estimator, so every worth is shown beside uniform's on the same pairs and
beside the worth against *smoothed* samples (``curve_smooth``: the m respondents' distribution with one pseudo-answer
per option, add-one smoothing toward uniform), the estimator a survey statistician would use with m answers. It is
not Huang, Wu and Wang's (2025) coverage-based effective sample size.

**A prior plus k answers** (independent design): the predictor as a Dirichlet prior of strength ``m`` (its pooled
worth measured on the other folds' targets, :func:`cross_fitted_strengths`, so never tuned on the targets it is
scored on; at least 1) updated with ``k`` respondents of the subgroup drawn from the *target fold's* own respondents
of the cell, never from the other folds whose respondents are the prior's inputs (counting them twice would build
in a loss). For each random order of the target fold's respondents of the cell, the first ``k_max`` (10) are the
draw and the rest the target, so the prior alone, the prior plus ``k`` (``k = 1 .. k_max``: the first k of the
draw, weights rescaled to sum to k, posterior mean ``(m p + k p_hat_k) / (m + k)``) and the ``k`` respondents alone
are all scored against the same reduced target. Every prior is shown beside uniform used as a prior by the same
strength rule.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

MAX_M = 40
K_MAX = 10


def _own(resp, qid: str, subgroup_id: str) -> tuple[np.ndarray, np.ndarray]:
    """Options and weights of the cell's respondents in ``resp`` who answered ``qid`` on its scale."""
    dims, idx = resp.cell(subgroup_id)
    y = resp.answers[qid]
    m = y >= 0
    for d, i in zip(dims, idx):
        m &= resp.codes[d] == i
    return y[m], resp.weights[m]


def _orders(n: int, draws: int, rng) -> np.ndarray:
    return np.argsort(rng.random((draws, n)), axis=1)


def _cum(options, weights, order, k) -> np.ndarray:
    """[draws, n, k]: weighted counts of the first 1..n respondents of each order."""
    oh = np.zeros((len(options), k))
    oh[np.arange(len(options)), options] = weights
    return np.cumsum(oh[order], axis=1)


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p = p / np.clip(p.sum(-1, keepdims=True), 1e-300, None)
    return np.abs(p - q).sum(-1) / 2


def curves(fd, table: pd.DataFrame, systems: dict[str, pd.DataFrame], draws: int = 30, seed: int = 0,
           max_m: int = MAX_M) -> pd.DataFrame:
    """Per disjoint target pair: fold, qid, subgroup_id, ``n_own`` (own respondents in the other folds),
    ``curve`` (c(1..min(n_own, max_m))), ``c_all`` (c at all n_own) and each system's TV (``tv_<name>``)."""
    from ..evaluation import classical
    from . import folds

    rows = []
    for f in range(fd.k):
        resp = classical.Respondents(fd.inputs_of(f), fd.questions, fd.study)
        t = folds.targets(table, f)
        tvs = {name: s[s.fold == f].set_index(["qid", "subgroup_id"])["tv"] for name, s in systems.items()}
        keys = set(tvs[next(iter(tvs))].index)
        for r in t.itertuples(index=False):
            if (r.qid, r.subgroup_id) not in keys:
                continue
            rng = np.random.default_rng([seed, f, zlib.crc32(f"{r.qid}:{r.subgroup_id}".encode())])
            o, w = _own(resp, r.qid, r.subgroup_id)
            target = np.asarray(r.weighted_counts, float)
            target = target / target.sum()
            row = {"fold": f, "qid": r.qid, "subgroup_id": r.subgroup_id, "stratum": r.stratum, "n_own": len(o)}
            if len(o):
                cum = _cum(o, w, _orders(len(o), draws, rng), len(target))
                c = _tv(cum, target).mean(0)
                row |= {"curve": c[:max_m], "c_all": float(c[-1]), "curve_smooth": _smoothed(cum, target)[:max_m]}
            else:
                row |= {"curve": np.array([]), "c_all": np.nan, "curve_smooth": np.array([])}
            row |= {f"tv_{name}": float(v.loc[(r.qid, r.subgroup_id)]) for name, v in tvs.items()}
            rows.append(row)
    return pd.DataFrame(rows)


def _smoothed(cum: np.ndarray, target: np.ndarray) -> np.ndarray:
    """c_s(m) = E TV((counts of m, rescaled to sum m, + 1 per option) / (m + options), target): the sample of m
    smoothed toward uniform by one pseudo-answer per option (add-one)."""
    m = np.arange(1, cum.shape[1] + 1, dtype=float)[None, :, None]
    counts = cum / np.clip(cum.sum(-1, keepdims=True), 1e-300, None) * m
    return _tv((counts + 1) / (m + cum.shape[-1]), target).mean(0)


def invert(curve: np.ndarray, d: float) -> float:
    """The m (``curve[m - 1]`` is c(m); linear between whole m) where ``curve`` first reaches ``d``: 0.0 when the
    predictor is no closer than one respondent (d >= c(1)), ``inf`` when the curve never reaches d."""
    curve = np.asarray(curve, float)
    if not len(curve) or not np.isfinite(d):
        return np.nan
    if d >= curve[0]:
        return 0.0
    below = np.nonzero(curve <= d)[0]
    if not len(below):
        return np.inf
    j = below[0]
    c0, c1 = curve[j - 1], curve[j]
    return float(j + (c0 - d) / (c0 - c1)) if c0 > c1 else float(j + 1)


def extrapolate(curve: np.ndarray, d: float, m_from: int = 5) -> float:
    """The m with ``a + b / m = d^2`` for ``a, b`` fitted to ``curve(m)^2`` over m >= ``m_from`` (least squares);
    ``inf`` when ``d^2 <= a``."""
    m = np.arange(1, len(curve) + 1, dtype=float)
    sel = m >= m_from
    x = np.column_stack([np.ones(sel.sum()), 1 / m[sel]])
    a, b = np.linalg.lstsq(x, np.asarray(curve, float)[sel] ** 2, rcond=None)[0]
    return float(b / (d ** 2 - a)) if d ** 2 > a and b > 0 else np.inf


def _pooled(curves: np.ndarray, tv: np.ndarray) -> tuple[float, str]:
    """Pooled worth from the pairs' curves [pairs, max_m] and the predictor's TVs [pairs]."""
    c, d = curves.mean(0), float(tv.mean())
    m = invert(c, d)
    if np.isinf(m):
        return extrapolate(c, d), "extrapolated"
    return m, "curve"


def pooled_worth(cv: pd.DataFrame, names: list[str], n_boot: int = 500, seed: int = 0, max_m: int = MAX_M,
                 by: str | None = None) -> pd.DataFrame:
    """Pooled worth in respondents of each system (``names``) over the pairs with ``max_m``+ own respondents,
    with a BCa bootstrap interval over questions, the median of the per-pair worth and the share of
    pairs where the predictor is closer than all the own respondents; ``by`` (e.g. ``stratum``): per group too."""
    from ..stats.bootstrap import resample_indices

    ok = cv[cv.n_own >= max_m].reset_index(drop=True)
    if ok.empty:
        raise ValueError(f"No target pair has {max_m}+ own respondents in the other folds: no worth curve.")
    groups = [("all", ok)] + ([(g, d.reset_index(drop=True)) for g, d in ok.groupby(by)] if by else [])
    rows = []
    for group, sub in groups:
        curves = np.stack(sub.curve.to_numpy())
        smooth = np.stack(sub.curve_smooth.to_numpy()) if "curve_smooth" in sub else None
        resamples = list(resample_indices(sub.qid, n_boot, seed))
        leave_out = _leave_one_question_out(sub.qid)
        for name in names:
            tv = sub[f"tv_{name}"].to_numpy(float)
            m, kind = _pooled(curves, tv)
            boot = np.asarray([_pooled(curves[i], tv[i])[0] for i in resamples], float)
            jack = np.asarray([_pooled(curves[i], tv[i])[0] for i in leave_out], float)
            lo, hi = _bca(m, boot, jack)
            per_pair = np.asarray([invert(c, d) for c, d in zip(curves, tv)])
            # the comparison the worth stands on: the paired TV difference from uniform on the same pairs
            paired = (_mean_ci(tv - sub["tv_uniform"].to_numpy(float), sub.qid, resamples, leave_out)
                      if "tv_uniform" in sub and name != "uniform" else (np.nan, np.nan, np.nan))
            if smooth is not None:  # the same inversion against samples smoothed toward uniform (no extrapolation)
                ms = invert(smooth.mean(0), float(tv.mean()))
                sboot = np.asarray([invert(smooth[i].mean(0), float(tv[i].mean())) for i in resamples], float)
                sjack = np.asarray([invert(smooth[i].mean(0), float(tv[i].mean())) for i in leave_out], float)
                smoothed = {"worth_smoothed": ms, "worth_smoothed_lo": _bca(ms, sboot, sjack)[0],
                            "worth_smoothed_hi": _bca(ms, sboot, sjack)[1],
                            "smooth_at_1": float(smooth[:, 0].mean())}
            else:
                smoothed = {}
            c_all = sub["c_all"].to_numpy(float)
            rows.append({"method": name, "group": group, "pairs": len(sub), "questions": sub.qid.nunique(),
                         "worth": m, "worth_lo": lo, "worth_hi": hi, "kind": kind, "mean_tv": float(tv.mean()),
                         "curve_at_1": float(curves[:, 0].mean()), "curve_at_max": float(curves[:, -1].mean()),
                         "median_per_pair": float(np.median(per_pair)),
                         "share_closer_than_40": float(np.mean(np.isinf(per_pair))),
                         "share_closer_than_all_own": float(np.mean(tv < c_all)),
                         "median_own": float(sub.n_own.median()),
                         "interval": INTERVAL, "max_m": max_m, "subgroups": sub.subgroup_id.nunique(),
                         "tv_minus_uniform": paired[0], "tv_minus_uniform_lo": paired[1],
                         "tv_minus_uniform_hi": paired[2]} | smoothed)
    return pd.DataFrame(rows)


INTERVAL = "BCa bootstrap over questions"


def _strength(per_fold: dict) -> float:
    """The mean over folds of the (clipped) prior strength, as the tables show it."""
    return float(np.mean([min(max(v, 1.0), MAX_STRENGTH) for v in per_fold.values()]))


def _mean_ci(values: np.ndarray, qids: pd.Series, resamples, leave_out,
             level: float = 0.95) -> tuple[float, float, float]:
    est = float(values.mean())
    boot = np.asarray([values[i].mean() for i in resamples])
    jack = np.asarray([values[i].mean() for i in leave_out])
    return (est, *_bca(est, boot, jack, level))


def _leave_one_question_out(qids: pd.Series) -> list[np.ndarray]:
    codes = pd.factorize(qids)[0]
    return [np.nonzero(codes != q)[0] for q in range(codes.max() + 1)]


def _bca(estimate: float, boot: np.ndarray, jack: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """BCa interval (:func:`subgroup_values.stats.bootstrap.interval`; non-finite resamples, where the extrapolation
    has no finite answer, are dropped by it)."""
    from ..stats.bootstrap import interval

    if not np.isfinite(estimate):
        return (np.inf, np.inf)
    return interval(estimate, boot, jack, level)


#: A prior whose worth is beyond any sample size (infinite) enters the combination with this strength.
MAX_STRENGTH = 1000.0


def cross_fitted_strengths(cv: pd.DataFrame, names: list[str], k: int, max_m: int = MAX_M) -> dict:
    """The prior strength for target fold f: the predictor's pooled worth measured on the *other* folds'
    targets (whose respondents are fold f's inputs), never on fold f's own targets; {name: {fold: m}}."""
    ok = cv[cv.n_own >= max_m]
    out = {}
    for name in names:
        per = {f: _pooled(np.stack(g.curve.to_numpy()), g[f"tv_{name}"].to_numpy(float))[0]
               for f, g in ok.groupby("fold")}
        out[name] = {f: float(np.mean([v for g, v in per.items() if g != f])) for f in range(k)}
    return out


def prior_plus_answers(fd, table: pd.DataFrame, systems: dict[str, pd.DataFrame], strengths: dict[str, dict],
                       draws: int = 30, seed: int = 0, k_max: int = K_MAX, min_target: int = 20,
                       n_boot: int = 500) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each predictor as a Dirichlet prior (strength ``strengths[name]``, at least 1) plus ``k`` respondents drawn
    from the target fold's own respondents of the cell (the independent design of the module's docstring), on the
    target pairs whose cell has at least ``k_max + min_target`` target-fold respondents who answered. Returns the
    mean TV of the prior plus k for k = 0 .. k_max and of the k respondents alone (one row per name and k), and per
    name at k = ``k_max``: the paired change from the prior alone, the difference from the k respondents alone and
    from uniform used as a prior with the same k (when uniform is among the priors), each with a BCa bootstrap
    interval over questions, Bonferroni over the priors (``level``, ``level_uniform``)."""
    from ..evaluation import classical
    from ..stats.bootstrap import resample_indices
    from . import folds

    rows = []
    for f in range(fd.k):
        drawn = classical.Respondents(fd.targets_of(f), fd.questions, fd.study)  # never the prior's inputs
        t = folds.targets(table, f)
        preds = {n: s[s.fold == f].set_index(["qid", "subgroup_id"])["probs"] for n, s in systems.items()}
        keys = set(preds[next(iter(preds))].index)
        for r in t.itertuples(index=False):
            if (r.qid, r.subgroup_id) not in keys:
                continue
            o, w = _own(drawn, r.qid, r.subgroup_id)
            if len(o) < k_max + min_target:
                continue
            rng = np.random.default_rng([seed, f, zlib.crc32(f"{r.qid}:{r.subgroup_id}".encode())])
            n_opt = len(r.weighted_counts)
            cum = _cum(o, w, _orders(len(o), draws, rng), n_opt)  # [draws, n, options]
            rest = cum[:, -1] - cum[:, k_max - 1]  # the target: every respondent after the first k_max
            target = rest / rest.sum(1, keepdims=True)  # [draws, options]
            sample = cum[:, :k_max]  # the first k of each order, k = 1 .. k_max
            sample = sample / sample.sum(-1, keepdims=True) * np.arange(1, k_max + 1)[None, :, None]
            row = {"fold": f, "qid": r.qid, "subgroup_id": r.subgroup_id,
                   "alone": _tv(sample, target[:, None]).mean(0)}
            for name, p in preds.items():
                prior = np.asarray(p.loc[(r.qid, r.subgroup_id)], float)
                m = min(max(strengths[name][f], 1.0), MAX_STRENGTH)
                post = (m * prior + sample) / (m + np.arange(1, k_max + 1)[None, :, None])
                row[name] = np.concatenate([[_tv(prior[None], target).mean()], _tv(post, target[:, None]).mean(0)])
            rows.append(row)
    per = pd.DataFrame(rows)
    if per.empty:
        raise ValueError(f"No target cell has {k_max + min_target}+ respondents in its fold: no prior-plus-k design.")
    alone = np.stack(per["alone"].to_numpy())  # [pairs, k_max]
    resamples = list(resample_indices(per.qid, n_boot, seed))
    leave_out = _leave_one_question_out(per.qid)
    out, summary = [], []
    uniform = np.stack(per["uniform"].to_numpy()) if "uniform" in preds else None
    # each comparison is a family over the priors: Bonferroni (the levels are in the table)
    level = 1 - 0.05 / len(preds)
    level_uniform = 1 - 0.05 / max(len(preds) - 1, 1)
    for name in preds:
        comb = np.stack(per[name].to_numpy())  # [pairs, k_max + 1]
        for k in range(k_max + 1):
            out.append({"method": name, "k": k, "strength": _strength(strengths[name]),
                        "tv_combined": float(comb[:, k].mean()),
                        "tv_own_alone": float(alone[:, k - 1].mean()) if k else np.nan,
                        "tv_prior_alone": float(comb[:, 0].mean())})
        change = _mean_ci(comb[:, k_max] - comb[:, 0], per.qid, resamples, leave_out, level)
        versus = _mean_ci(comb[:, k_max] - alone[:, k_max - 1], per.qid, resamples, leave_out, level)
        vs_uniform = (_mean_ci(comb[:, k_max] - uniform[:, k_max], per.qid, resamples, leave_out, level_uniform)
                      if uniform is not None and name != "uniform" else (np.nan, np.nan, np.nan))
        summary.append({"method": name, "k": k_max, "strength": _strength(strengths[name]),
                        "tv_prior": float(comb[:, 0].mean()), "tv_prior_plus_k": float(comb[:, k_max].mean()),
                        "tv_k_alone": float(alone[:, k_max - 1].mean()),
                        "change": change[0], "change_lo": change[1], "change_hi": change[2],
                        "versus_alone": versus[0], "versus_alone_lo": versus[1], "versus_alone_hi": versus[2],
                        "versus_uniform_prior": vs_uniform[0], "versus_uniform_prior_lo": vs_uniform[1],
                        "versus_uniform_prior_hi": vs_uniform[2],
                        "level": level, "level_uniform": level_uniform, "subgroups": per.subgroup_id.nunique(),
                        "pairs": len(per), "questions": per.qid.nunique(), "min_target": min_target,
                        "design": "k drawn from the target fold's cell and removed from its target",
                        "interval": INTERVAL})
    return pd.DataFrame(out), pd.DataFrame(summary)
