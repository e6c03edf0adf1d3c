"""Distances between answer distributions and scores of predicted modal answers.

Definitions (options ``v_1 < ... < v_K`` of one ordinal question):

- total variation: ``TV(p, q) = 1/2 sum_i |p_i - q_i|``, in [0, 1] (the share of probability that must move; blind
  to how far it moves: the distance of Meister et al.'s distributional-alignment benchmark);
- normalised Wasserstein: ``W(p, q) = sum_{i<K} |F_p(i) - F_q(i)| (v_{i+1} - v_i) / (v_K - v_1)``, in [0, 1]
  (ordinal: moving mass from "1" to "4" costs three times a move to "2"). OpinionQA's representativeness
  (Santurkar et al. 2023) is ``1 - W`` with options at equal steps;
- Jensen-Shannon distance: ``sqrt(JSD(p, q))`` with base-2 logarithms, in [0, 1];
- accuracy of a predicted answer: 1 when it equals any of the (tied) modal answers;
- NMAE: ``min_m |prediction - m| / (v_K - v_1)`` over the tied modes ``m``; an answer that could not be parsed
  (or a refusal) scores accuracy 0 and NMAE 1 in the primary numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _normalise(p: Sequence[float]) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or (p < 0).any():
        raise ValueError(f"expected a 1-D vector of non-negative counts or probabilities, got {p!r}")
    total = p.sum()
    if total <= 0:
        raise ValueError("a distribution needs a positive total")
    return p / total


def wasserstein(p: Sequence[float], q: Sequence[float], values: Sequence[float] | None = None) -> float:
    """Normalised 1-Wasserstein distance between two distributions over the same ordered options."""
    p, q = _normalise(p), _normalise(q)
    if p.shape != q.shape:
        raise ValueError(f"distributions over different option sets: {p.shape} vs {q.shape}")
    if len(p) < 2:
        return 0.0
    v = np.arange(len(p), dtype=float) if values is None else np.asarray(values, dtype=float)
    gaps = np.diff(v)
    if (gaps <= 0).any():
        raise ValueError("option values must be strictly increasing")
    cdf_gap = np.abs(np.cumsum(p) - np.cumsum(q))[:-1]
    return float((cdf_gap * gaps).sum() / (v[-1] - v[0]))


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Total variation distance ``1/2 sum |p_i - q_i|`` between two distributions over the same options."""
    p, q = _normalise(p), _normalise(q)
    if p.shape != q.shape:
        raise ValueError(f"distributions over different option sets: {p.shape} vs {q.shape}")
    return float(np.abs(p - q).sum() / 2)


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance (square root of the base-2 divergence), in [0, 1]."""
    p, q = _normalise(p), _normalise(q)
    if p.shape != q.shape:
        raise ValueError(f"distributions over different option sets: {p.shape} vs {q.shape}")
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return float(np.sqrt(max(0.0, (kl(p, m) + kl(q, m)) / 2)))


def entropy_bits(counts: Sequence[float]) -> float:
    p = _normalise(counts)
    nz = p > 0
    return float(-(p[nz] * np.log2(p[nz])).sum())


def accuracy(prediction: float | None, modes: Sequence[int]) -> float:
    """1.0 when the prediction is one of the (tied) modal answers, else 0.0 (also for a missing prediction)."""
    if prediction is None or (isinstance(prediction, float) and np.isnan(prediction)):
        return 0.0
    return float(int(prediction) in {int(m) for m in modes})


def nmae(prediction: float | None, modes: Sequence[int], scale_min: int, scale_max: int) -> float:
    """Distance to the nearest modal answer over the scale's range; 1.0 for a missing prediction."""
    if prediction is None or (isinstance(prediction, float) and np.isnan(prediction)):
        return 1.0
    if scale_max <= scale_min:
        raise ValueError(f"scale range must be positive, got {scale_min}..{scale_max}")
    return float(min(abs(float(prediction) - m) for m in modes) / (scale_max - scale_min))


def expected_accuracy(probs: Sequence[float], values: Sequence[int], modes: Sequence[int]) -> float:
    """Accuracy of a predicted distribution in expectation: the probability it gives the (tied) modal answers."""
    p = _normalise(probs)
    return float(sum(pi for v, pi in zip(values, p) if int(v) in {int(m) for m in modes}))


def expected_nmae(probs: Sequence[float], values: Sequence[int], modes: Sequence[int]) -> float:
    """NMAE of a predicted distribution: its expected distance to the nearest mode over the range."""
    p = _normalise(probs)
    v = np.asarray(values, dtype=float)
    d = np.min(np.abs(v[:, None] - np.asarray(modes, dtype=float)[None, :]), axis=1)
    return float((p * d).sum() / (v[-1] - v[0]))


def score_pairs(preds):
    """Add per-pair ``correct``, ``nmae``, ``tv``, ``wasserstein``, ``js`` to a prediction table (one row per pair with
    ``choice``, ``probs``, ``modal_answers``, ``weighted_counts``, ``scale_min``, ``scale_max``), with the
    functions above. Rows marked ``expected`` (the uniform baseline) are scored in expectation over ``probs``;
    a missing choice scores accuracy 0 and NMAE 1; distances need a predicted distribution (else NaN)."""
    import pandas as pd

    correct, nm, tv, wd, jd = [], [], [], [], []
    expected = preds["expected"] if "expected" in preds else pd.Series(False, index=preds.index)
    for row, exp in zip(preds.itertuples(index=False), expected):
        modes, lo, hi = list(row.modal_answers), int(row.scale_min), int(row.scale_max)
        values = list(range(lo, hi + 1))
        p = row.probs
        has_p = p is not None and not (isinstance(p, float) and np.isnan(p))
        if exp:
            correct.append(expected_accuracy(p, values, modes))
            nm.append(expected_nmae(p, values, modes))
        else:
            c = None if pd.isna(row.choice) else int(row.choice)
            correct.append(accuracy(c, modes))
            nm.append(nmae(c, modes, lo, hi))
        truth = np.asarray(row.weighted_counts, dtype=float)
        ok = has_p and truth.sum() > 0
        tv.append(total_variation(p, truth) if ok else np.nan)
        wd.append(wasserstein(p, truth) if ok else np.nan)
        jd.append(jensen_shannon(p, truth) if ok else np.nan)
    return preds.assign(correct=correct, nmae=nm, tv=tv, wasserstein=wd, js=jd)
