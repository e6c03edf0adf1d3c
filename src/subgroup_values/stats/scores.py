"""Proper scores of a predicted answer distribution ``p`` against a subgroup's observed distribution ``q``,
beside the distances of :mod:`subgroup_values.stats.metrics` (TV is not a proper scoring rule: a predictor can beat
the true distribution under TV by moving mass to the modes).

- **log score** (``log_score``): the cross-entropy ``-sum_i q_i log2 p~_i`` in bits, the expected log loss of
  the prediction on one of the subgroup's respondents; lower is better. ``kl``: ``KL(q || p~)`` in bits, the
  log score minus the target's entropy (0 for a perfect prediction).
- **smoothing** (the same for every predictor, models and baselines): ``p~ = (1 - SMOOTHING) p + SMOOTHING / k``,
  so a prediction that puts zero on an option someone chose scores a large but finite loss.
- **Brier** (``brier``): the expected quadratic score on one respondent, ``sum_i (p_i - q_i)^2 + 1 - sum_i q_i^2``
  (proper; lower is better; unsmoothed).
- **normalised score** (:func:`normalised_score`): SimBench's (Hu et al. 2025), ``100 x (1 - TV / TV_uniform)``
  with both TVs averaged over the same pairs: 0 is uniform, 100 a perfect match; the noise floor's value shows
  what the targets' own sampling noise allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Mixing weight of the uniform distribution in every prediction before its log score (documented above).
SMOOTHING = 0.01
SCORE_COLUMNS = ("log_score", "kl", "brier")


def pair_scores(p, q) -> dict[str, float]:
    """Log score, KL (bits) and Brier of prediction ``p`` against the target's counts or distribution ``q``."""
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"prediction over {p.shape} options, target over {q.shape}: expected one vector each.")
    if (p < 0).any() or p.sum() <= 0 or (q < 0).any() or q.sum() <= 0 or not np.isfinite([*p, *q]).all():
        raise ValueError(f"expected non-negative finite vectors with positive totals, got p={p}, q={q}.")
    p, q = p / p.sum(), q / q.sum()
    ps = (1 - SMOOTHING) * p + SMOOTHING / len(p)
    nz = q > 0
    ce = float(-(q[nz] * np.log2(ps[nz])).sum())
    h = float(-(q[nz] * np.log2(q[nz])).sum())
    return {"log_score": ce, "kl": max(ce - h, 0.0), "brier": float(((p - q) ** 2).sum() + 1 - (q ** 2).sum())}


def add_scores(preds: pd.DataFrame) -> pd.DataFrame:
    """``preds`` (with ``probs`` and ``weighted_counts``) with ``log_score``, ``kl`` and ``brier`` per pair (NaN
    where there is no predicted distribution)."""
    rows = []
    for p, q in zip(preds["probs"], preds["weighted_counts"]):
        ok = p is not None and not (isinstance(p, float) and np.isnan(p))
        rows.append(pair_scores(p, q) if ok else dict.fromkeys(SCORE_COLUMNS, np.nan))
    return preds.assign(**{c: [r[c] for r in rows] for c in SCORE_COLUMNS})


def normalised_score(tv: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """SimBench's normalised score per column of ``tv`` (one row per pair with ``qid``, a TV column per method
    and ``uniform``), ``100 x (1 - mean TV / mean TV_uniform)`` on the same pairs, with a BCa interval
    resampling questions (the ratio is resampled, not its parts)."""
    from .bootstrap import interval, jackknife_counts, resample_counts

    if "uniform" not in tv:
        raise ValueError("the normalised score needs the uniform predictor's TV on the same pairs.")
    q, qids = pd.factorize(tv["qid"], sort=True)
    cols = [c for c in tv.columns if c != "qid"]
    sums = np.zeros((len(qids), len(cols)))
    for j, c in enumerate(cols):
        np.add.at(sums[:, j], q, tv[c].to_numpy(float))
    u = cols.index("uniform")

    def stat(w):
        s = w @ sums
        return 100 * (1 - s / s[:, [u]])

    est = stat(np.ones((1, len(qids))))[0]
    boot = stat(resample_counts(len(qids), n_boot, seed))
    jack = stat(jackknife_counts(len(qids)))
    rows = []
    for j, c in enumerate(cols):
        lo, hi = interval(est[j], boot[:, j], jack[:, j])
        rows.append({"method": c, "normalised": est[j], "normalised_lo": lo, "normalised_hi": hi})
    return pd.DataFrame(rows)
