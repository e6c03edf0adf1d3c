"""Bootstrap confidence intervals that resample questions (the unit shared by every subgroup and model).

Two interval methods (``METHODS``), named in every table that shows an interval:

- ``bca`` (default): the bias-corrected and accelerated interval (Efron 1987; Efron & Tibshirani 1993, ch. 14).
  With ``B`` resampled values ``t*`` of a statistic whose estimate is ``t``:
  ``z0 = Phi^-1( (#{t* < t} + #{t* = t}/2) / B )`` (median bias of the resampled values),
  ``a = sum(d^3) / (6 (sum d^2)^1.5)`` with ``d_i = mean(t_(.)) - t_(i)`` over the jackknife values ``t_(i)``
  (the statistic with question ``i`` left out), and the interval is the ``B``-quantiles at
  ``Phi(z0 + (z0 + z_alpha) / (1 - a (z0 + z_alpha)))`` for ``z_alpha`` = ``Phi^-1(0.025)`` and ``Phi^-1(0.975)``.
  When the resampled values sit above the estimate (as they do for ranges, maxima and CVs over noisy subgroup
  means), ``z0 < 0`` moves the interval down, where the percentile interval leaves it biased.
- ``basic``: the reverse-percentile interval ``[2t - q_0.975, 2t - q_0.025]`` (Davison & Hinkley 1997, 5.2):
  it assumes ``t* - t`` is distributed like ``t - theta`` and so reflects the resampled bias to the other side.
- ``percentile``: the 2.5% and 97.5% quantiles of the resampled values (right for smooth, unbiased statistics
  such as means; biased for range-type statistics; kept for comparison).

**Degenerate statistics.** When every resample gives the same value (a baseline that is right on every consensus
pair by construction, a judge that always picks the same slot), the interval has zero width: that is not
precision but a statistic that resampling cannot move. Every table of intervals says so in a ``degenerate``
column (:func:`is_degenerate`), and the printed form (:func:`show`) is "uninformative", never ``[x, x]``.

``subgroup_bootstrap`` is the fast, vectorised path for statistics of subgroup means (disparities): a resample
is a vector of question counts, so every subgroup's mean in every resample is one matrix product.
``mean_bootstrap`` is the same idea for plain column means over pairs (the evaluation summaries): per question
sums and counts, one matrix product for every resample and every jackknife leave-one-out. Both draw the very
resamples ``bootstrap`` draws for the same seed, so they give its intervals (to rounding) in a fraction of the time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import norm

METHODS = ("bca", "basic", "percentile")
DEFAULT_METHOD = "bca"
METHOD_NAMES = {"bca": "BCa bootstrap over questions", "basic": "basic (reverse-percentile) bootstrap over questions",
                "percentile": "percentile bootstrap over questions"}


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"Unknown interval method {method!r}; expected one of {METHODS}.")


def resample_counts(n_units: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """A (n_boot, n_units) matrix: how often each unit is drawn in each resample (with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_units, (n_boot, n_units))
    counts = np.zeros((n_boot, n_units))
    np.add.at(counts, (np.repeat(np.arange(n_boot), n_units), draws.ravel()), 1)
    return counts


def jackknife_counts(n_units: int) -> np.ndarray:
    """A (n_units, n_units) matrix: row i leaves unit i out."""
    return 1.0 - np.eye(n_units)


def interval(estimate: float, draws: np.ndarray, jackknife: np.ndarray | None = None, level: float = 0.95,
             method: str = DEFAULT_METHOD) -> tuple[float, float]:
    """The ``level`` interval of one statistic from its resampled values (and jackknife values, for BCa)."""
    _check_method(method)
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if not np.isfinite(estimate) or d.size == 0:
        return (np.nan, np.nan)
    alpha = (1 - level) / 2
    if method == "percentile":
        return (float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha)))
    if method == "basic":
        return (float(2 * estimate - np.quantile(d, 1 - alpha)), float(2 * estimate - np.quantile(d, alpha)))
    if np.ptp(d) == 0:  # every resample gives the same value: nothing to correct
        return (float(d[0]), float(d[0]))
    p = (np.sum(d < estimate) + 0.5 * np.sum(d == estimate)) / d.size
    z0 = norm.ppf(np.clip(p, 0.5 / d.size, 1 - 0.5 / d.size))
    acc = 0.0
    if jackknife is not None:
        j = np.asarray(jackknife, dtype=float)
        j = j[np.isfinite(j)]
        dev = j.mean() - j if j.size else j
        ss = float((dev ** 2).sum())
        acc = float((dev ** 3).sum() / (6 * ss ** 1.5)) if ss > 0 else 0.0
    z = norm.ppf([alpha, 1 - alpha])
    q = norm.cdf(z0 + (z0 + z) / (1 - acc * (z0 + z)))
    return (float(np.quantile(d, q[0])), float(np.quantile(d, q[1])))


#: A statistic whose resamples are finite less often than this is uninformative (its interval would rest on the few
#: resamples where it exists: a subgroup missing from most of them, an empty subset).
MIN_FINITE_SHARE = 0.99


def p_value(estimate: float, draws: np.ndarray, jackknife: np.ndarray | None = None, method: str = DEFAULT_METHOD,
            null: float = 0.0) -> float:
    """The two-sided p-value of ``null`` that inverts :func:`interval`: the smallest ``1 - level`` whose interval
    leaves ``null`` out (bisection; intervals narrow as the level falls), so that the ``level`` interval excludes
    ``null`` exactly when this p-value is under ``1 - level``. Its resolution is that of the draws: never under
    ``1 / (B + 1)`` (every draw on one side says no more than that). A degenerate statistic (every resample the
    null) gets 1.0, a member of its family that cannot reject; NaN where there is no test (a missing estimate,
    every resample another single value, or fewer than :data:`MIN_FINITE_SHARE` of the resamples finite)."""
    d = np.asarray(draws, dtype=float)
    total = d.size
    d = d[np.isfinite(d)]
    if not np.isfinite(estimate) or d.size == 0 or d.size < MIN_FINITE_SHARE * total:
        return float("nan")
    if np.ptp(d) == 0:
        return 1.0 if d[0] == null and estimate == null else float("nan")

    def excludes(a: float) -> bool:
        lo, hi = interval(estimate, d, jackknife, 1 - a, method)
        return bool(lo > null or hi < null)

    lo_a, hi_a = 1.0 / (total + 1), 1.0 - 1e-9
    if excludes(lo_a):
        return lo_a
    if not excludes(hi_a):
        return 1.0
    for _ in range(40):
        mid = (lo_a + hi_a) / 2
        lo_a, hi_a = (lo_a, mid) if excludes(mid) else (mid, hi_a)
    return hi_a


def _holm_order(p: np.ndarray) -> tuple[np.ndarray, int]:
    """Members in Holm's order (smallest p first) and the family size: a member with no test (NaN) counts in the
    family as a test that cannot reject (p = 1), so it never shrinks the family the rule names."""
    q = np.where(np.isfinite(p), p, 1.0)
    return np.argsort(q, kind="stable"), len(p)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (same order, capped at 1). A NaN member (no test) counts
    in the family as p = 1 and stays NaN."""
    p = np.asarray(p_values, dtype=float)
    order, m = _holm_order(p)
    q = np.where(np.isfinite(p), p, 1.0)
    adj = np.maximum.accumulate((m - np.arange(m)) * q[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return np.where(np.isfinite(p), out, np.nan)


def holm_levels(p_values, alpha: float = 0.05) -> np.ndarray:
    """Interval levels that agree with Holm's step-down test of the same p-values (from :func:`p_value`).

    With the family's ``m`` p-values sorted, the ``r``-th is tested at ``alpha / (m - r + 1)`` while every
    smaller one was rejected; from the first one not rejected (rank ``r0``) on, every test is at
    ``alpha / (m - r0 + 1)``. A statistic's interval at ``1 -`` its level excludes the null exactly when Holm
    rejects it, so the interval shown is the interval that decides: a decision interval, whose level is not that of
    an ordinary confidence interval (simultaneous coverage of the sizes is not claimed: Strassburger & Bretz 2008
    show Holm-compatible simultaneous intervals are uninformative for rejected nulls). A NaN member (no test)
    counts in ``m`` and gets NaN."""
    p = np.asarray(p_values, dtype=float)
    order, m = _holm_order(p)
    q = np.where(np.isfinite(p), p, 1.0)
    out = np.full(m, np.nan)
    stopped = None
    for r, i in enumerate(order):
        a = alpha / (m - r) if stopped is None else stopped
        if stopped is None and not q[i] < a:
            stopped = a
        out[i] = 1 - a
    return np.where(np.isfinite(p), out, np.nan)


def endpoint_mc_se(draws: np.ndarray, level: float) -> float:
    """Monte Carlo standard error of a ``level`` interval's endpoint from ``B`` draws (the normal approximation of a
    sample quantile: ``sqrt(q (1 - q) / B) / phi(z_q)`` times the draws' SD, ``q = (1 - level) / 2``): how far the
    endpoint would move with another set of draws."""
    d = np.asarray(draws, dtype=float)
    d = d[np.isfinite(d)]
    if d.size < 2 or not np.isfinite(level):
        return float("nan")
    q = (1 - level) / 2
    return float(np.sqrt(q * (1 - q) / d.size) / norm.pdf(norm.ppf(q)) * np.std(d, ddof=1))


def holm_intervals(estimates, draws, jackknives, alpha: float = 0.05, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """A family of statistics decided by their intervals with Holm's step-down: per statistic its bootstrap
    p-value (:func:`p_value`), the Holm-adjusted p-value, the level Holm tests it at (:func:`holm_levels`), the
    interval at that level (which excludes 0 exactly when the adjusted p is under ``alpha``), and ``borderline``:
    the endpoint nearer 0 lies within 2 Monte Carlo standard errors of it (:func:`endpoint_mc_se`), so another set
    of draws could turn the decision. ``jackknives``: one jackknife array per statistic (or None each)."""
    est = [float(e) for e in estimates]
    pb = [p_value(e, d, j, method) for e, d, j in zip(est, draws, jackknives)]
    levels = holm_levels(pb, alpha)
    rows = []
    for e, d, j, p, adj, lev in zip(est, draws, jackknives, pb, holm(pb), levels):
        lo, hi = interval(e, d, j, lev, method) if np.isfinite(lev) else (np.nan, np.nan)
        se = endpoint_mc_se(d, lev)
        near = min(abs(lo), abs(hi)) if np.isfinite(lo) and np.isfinite(hi) else np.nan
        rows.append({"p_bootstrap": p, "p_bootstrap_holm": adj, "level": lev, "lo": lo, "hi": hi,
                     "endpoint_mc_se": se, "borderline": bool(np.isfinite(near) and near < 2 * se)})
    return pd.DataFrame(rows)


def is_degenerate(draws) -> bool:
    """True when every finite resampled value is the same, or there is none, or fewer than
    :data:`MIN_FINITE_SHARE` of the resamples are finite: the interval says nothing."""
    d = np.asarray(draws, dtype=float)
    total = d.size
    d = d[np.isfinite(d)]
    return bool(d.size == 0 or d.size < MIN_FINITE_SHARE * total or np.ptp(d) == 0)


def show(estimate: float, lo: float, hi: float, degenerate: bool | None = None, digits: int = 3) -> str:
    """An estimate with its interval as tables print it: ``0.371 [0.322, 0.431]``; a degenerate one (``degenerate``,
    or an interval of zero width) as ``0.500 (uninformative: every resample gives the same value)``."""
    if estimate is None or not np.isfinite(estimate):
        return ""
    if degenerate or (degenerate is None and lo is not None and hi is not None and lo == hi):
        return f"{estimate:.{digits}f} (uninformative: all resamples equal)"
    return f"{estimate:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _unit_groups(units: pd.Series) -> list[np.ndarray]:
    codes, uniques = pd.factorize(units, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return [order[bounds[i]:bounds[i + 1]] for i in range(len(uniques))]


def resample_indices(units: pd.Series, n_boot: int = 1000, seed: int = 0):
    """Yield row-index arrays, each the rows of a resample (with replacement) of the distinct units."""
    groups = _unit_groups(units)
    counts = resample_counts(len(groups), n_boot, seed)
    for row in counts:
        yield np.concatenate([np.tile(groups[i], int(c)) for i, c in enumerate(row) if c > 0])


def bootstrap(df: pd.DataFrame, stat: Callable[[pd.DataFrame], float | pd.Series], unit: str = "qid",
              n_boot: int = 1000, seed: int = 0, level: float = 0.95, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """Interval of ``stat(df)`` under resampling of ``unit``; returns estimate, lo, hi, se and method.

    ``stat`` may return a number or a Series (several statistics at once, resampled together: paired).
    BCa evaluates ``stat`` once more per unit left out (the jackknife).
    """
    _check_method(method)
    est = stat(df)
    draws = [stat(df.iloc[idx]) for idx in resample_indices(df[unit], n_boot, seed)]
    jack = None
    if method == "bca":
        groups = _unit_groups(df[unit])
        jack = [stat(df.iloc[np.concatenate([g for j, g in enumerate(groups) if j != i])])
                for i in range(len(groups))] if len(groups) > 1 else None
    if isinstance(est, pd.Series):
        d = pd.DataFrame(draws).reindex(columns=est.index)
        jk = pd.DataFrame(jack).reindex(columns=est.index) if jack is not None else None
        rows = {k: interval(est[k], d[k].to_numpy(float), None if jk is None else jk[k].to_numpy(float), level,
                            method) for k in est.index}
        return pd.DataFrame({"estimate": est, "lo": {k: v[0] for k, v in rows.items()},
                             "hi": {k: v[1] for k, v in rows.items()}, "se": d.std(ddof=1), "method": method,
                             "degenerate": {k: is_degenerate(d[k].to_numpy(float)) for k in est.index}})
    d = np.asarray(draws, dtype=float)
    lo, hi = interval(float(est), d, None if jack is None else np.asarray(jack, float), level, method)
    return pd.DataFrame({"estimate": [est], "lo": [lo], "hi": [hi], "se": [np.nanstd(d, ddof=1)],
                         "method": [method], "degenerate": [is_degenerate(d)]})


def mean_bootstrap(df: pd.DataFrame, columns: list[str], unit: str = "qid", n_boot: int = 1000, seed: int = 0,
                   level: float = 0.95, method: str = DEFAULT_METHOD) -> pd.DataFrame:
    """``bootstrap(df, lambda d: d[columns].mean())``, vectorised: the mean of each column over rows (missing values
    skipped, as pandas does) with its interval under resampling of ``unit``. Same resamples, same columns out.

    A resample that draws question ``i`` ``c_i`` times has the mean ``sum_i c_i S_i / sum_i c_i N_i`` with ``S_i``
    and ``N_i`` the question's sum and number of non-missing values; the jackknife drops one question's terms.
    """
    _check_method(method)
    codes, uniques = pd.factorize(df[unit], sort=True)
    nq = len(uniques)
    values = df[columns].to_numpy(dtype=float)
    ok = np.isfinite(values)
    sums = np.zeros((nq, len(columns)))
    counts = np.zeros_like(sums)
    np.add.at(sums, codes, np.where(ok, values, 0.0))
    np.add.at(counts, codes, ok.astype(float))

    def means(weights: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (weights @ sums) / (weights @ counts)

    est = means(np.ones((1, nq)))[0]
    boot = means(resample_counts(nq, n_boot, seed))
    jack = means(jackknife_counts(nq)) if method == "bca" and nq > 1 else None
    rows = {c: interval(est[k], boot[:, k], None if jack is None else jack[:, k], level, method)
            for k, c in enumerate(columns)}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column missing everywhere: its se is NaN, as in pandas
        se = np.nanstd(boot, axis=0, ddof=1)
    return pd.DataFrame({"estimate": pd.Series(est, index=columns), "lo": {c: v[0] for c, v in rows.items()},
                         "hi": {c: v[1] for c, v in rows.items()}, "se": pd.Series(se, index=columns),
                         "method": method,
                         "degenerate": {c: is_degenerate(boot[:, k]) for k, c in enumerate(columns)}})


# ---- statistics of subgroup means, vectorised ---------------------------------------------------------------

def subgroup_sums(df: pd.DataFrame, columns: list[str], unit: str = "qid",
                  group: str = "subgroup_id") -> tuple[np.ndarray, np.ndarray, list, list]:
    """Per (question, subgroup): the sum and the number of non-missing values of each column.

    Returns ``sums`` and ``counts`` of shape (questions, subgroups, columns), and the question and subgroup ids.
    """
    q, qids = pd.factorize(df[unit], sort=True)
    s, sids = pd.factorize(df[group], sort=True)
    sums = np.zeros((len(qids), len(sids), len(columns)))
    counts = np.zeros_like(sums)
    for k, col in enumerate(columns):
        v = df[col].to_numpy(dtype=float)
        ok = np.isfinite(v)
        np.add.at(sums[:, :, k], (q[ok], s[ok]), v[ok])
        np.add.at(counts[:, :, k], (q[ok], s[ok]), 1)
    return sums, counts, list(qids), list(sids)


def weighted_means(weights: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Subgroup means (W, S, K) and pair-weighted overall means (W, K) for each row of question weights (W, Q)."""
    num = np.einsum("wq,qsk->wsk", weights, sums)
    den = np.einsum("wq,qsk->wsk", weights, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den, num.sum(1) / den.sum(1)


def subgroup_bootstrap(df: pd.DataFrame, columns: list[str],
                       stats: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]], n_boot: int = 1000,
                       seed: int = 0, level: float = 0.95, method: str = DEFAULT_METHOD, unit: str = "qid",
                       group: str = "subgroup_id") -> pd.DataFrame:
    """Intervals of statistics of subgroup means, resampling questions.

    ``stats(means, overall)`` gets subgroup means of shape (W, S, K) and overall means (W, K) for W weightings
    of the questions (the data, each resample, each jackknife leave-one-out) and returns named arrays of
    shape (W,). All statistics are computed on the same resamples (paired).
    """
    _check_method(method)
    sums, counts, qids, _ = subgroup_sums(df, columns, unit, group)
    nq = len(qids)
    est = stats(*weighted_means(np.ones((1, nq)), sums, counts))
    boot = stats(*weighted_means(resample_counts(nq, n_boot, seed), sums, counts))
    jack = stats(*weighted_means(jackknife_counts(nq), sums, counts)) if method == "bca" and nq > 1 else None
    rows = []
    for name, e in est.items():
        lo, hi = interval(float(e[0]), boot[name], None if jack is None else jack[name], level, method)
        rows.append({"statistic": name, "estimate": float(e[0]), "lo": lo, "hi": hi,
                     "se": float(np.nanstd(boot[name], ddof=1)), "method": method,
                     "degenerate": is_degenerate(boot[name])})
    return pd.DataFrame(rows)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial share ``k / n``."""
    if n <= 0:
        raise ValueError(f"A share needs at least one trial, got n={n}.")
    if not 0 <= k <= n:
        raise ValueError(f"A share needs 0 <= k <= n, got k={k}, n={n}.")
    z = norm.ppf(1 - (1 - level) / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # exact at the ends (k = 0 or k = n): the bounds' formula leaves rounding residue there
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))
