"""Respondent noise: each pair's truth rests on the 15-500 respondents of its subgroup who answered the question.

A pair's modal answer is the mode of its (survey-weighted) answer counts; a different sample of the subgroup's
respondents could have a different mode, and the model's accuracy and NMAE on the pair would change with it.
This module redraws the respondents of every pair from its committed counts and rescores the models' fixed
choices against each redrawn mode:

- a redraw of pair ``p`` draws ``n_p`` respondents (its number of valid answers) from its answer shares
  ``counts_p / n_p`` (multinomial), gives each drawn respondent of option ``k`` the mean survey weight of the
  option's respondents (``weighted_counts_pk / counts_pk``), and takes the mode of the weighted redrawn counts
  (ties within a relative 1e-9, as the pairs table breaks them: every tied option is a mode);
- a model's score on the redraw is the accuracy (its choice is one of the redrawn modes) and the NMAE (distance of
  its choice to the nearest redrawn mode over the scale's range); a missing choice scores 0 and 1, as everywhere;
- every model is scored against the same redraw (its truth is shared), so base -> SFT comparisons stay paired.

Approximation, stated: pairs are redrawn independently. The same respondents answer every question of a
subgroup, and subgroups of different strata share respondents; only the per-pair counts are committed, so the
correlation this induces across questions and subgroups is not reproduced.

:func:`.disparities.build_panel` stores these redraws and each pair's respondent-sampling variance of each score;
:func:`.disparities.analyse` combines them with the resampling of questions (stage 1: questions with replacement;
stage 2: each pair's respondents, the b-th redraw for the b-th question resample).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

TIE_RTOL = 1e-9


@dataclass(frozen=True)
class PairTruth:
    """The committed answer counts of each pair, aligned with the rows of a prediction table."""

    counts: np.ndarray  # (P, K) respondents per option, 0-padded to the longest scale
    weights: np.ndarray  # (P, K) mean survey weight of the option's respondents (0 where none)
    values: np.ndarray  # (P, K) the option's value (scale_min + k); NaN beyond the pair's scale
    span: np.ndarray  # (P,) scale_max - scale_min

    @property
    def n(self) -> np.ndarray:
        return self.counts.sum(1)


def pair_truth(preds: pd.DataFrame, pairs: pd.DataFrame) -> PairTruth:
    """Each prediction row's answer counts from the pairs table (``counts``, ``weighted_counts``).

    The counts must give back the pair's committed modal answers (``modal_answers``): a table from another data
    build is refused.
    """
    key = ["qid", "subgroup_id"]
    need = {"counts", "weighted_counts"}
    if not need <= set(pairs.columns):
        raise ValueError(f"The pairs table lacks {sorted(need - set(pairs.columns))}; expected data/processed/pairs.csv "
                         "as `make data` writes it.")
    m = preds[key + ["scale_min", "scale_max", "modal_answers"]].merge(
        pairs[key + ["counts", "weighted_counts"]], on=key, how="left", validate="one_to_one")
    missing = m.counts.isna()
    if missing.any():
        ex = m.loc[missing, key].head(3).to_dict("records")
        raise ValueError(f"{int(missing.sum())} predicted pairs are not in the pairs table (e.g. {ex}); the predictions "
                         "come from another data build: rebuild the data or re-run the evaluation.")
    lo, hi = m.scale_min.to_numpy(int), m.scale_max.to_numpy(int)
    k_max = int((hi - lo).max()) + 1
    p = len(m)
    counts, weights, values = np.zeros((p, k_max)), np.zeros((p, k_max)), np.full((p, k_max), np.nan)
    for i, (c, w, a, b) in enumerate(zip(m.counts, m.weighted_counts, lo, hi)):
        c, w = np.asarray(c, float), np.asarray(w, float)
        if len(c) != b - a + 1 or len(w) != len(c):
            raise ValueError(f"Pair {m.qid.iat[i]} / {m.subgroup_id.iat[i]}: {len(c)} answer counts for a scale "
                             f"{a}..{b}; expected one count per option.")
        if (c < 0).any() or c.sum() <= 0 or not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"Pair {m.qid.iat[i]} / {m.subgroup_id.iat[i]}: answer counts {c.tolist()} / weights "
                             f"{w.tolist()} are not non-negative with a positive total.")
        counts[i, :len(c)] = c
        with np.errstate(invalid="ignore", divide="ignore"):
            weights[i, :len(c)] = np.where(c > 0, w / np.where(c > 0, c, 1), 0.0)
        values[i, :len(c)] = np.arange(a, b + 1)
    truth = PairTruth(counts, weights, values, (hi - lo).astype(float))
    modes = _modes(counts * weights)
    for i, mo in enumerate(m.modal_answers):
        if set(values[i, modes[i]].astype(int).tolist()) != {int(x) for x in mo}:
            raise ValueError(f"Pair {m.qid.iat[i]} / {m.subgroup_id.iat[i]}: the counts' mode "
                             f"{values[i, modes[i]].astype(int).tolist()} is not its modal answer {list(mo)}; the "
                             "predictions and the pairs table come from different data builds.")
    return truth


def _modes(weighted: np.ndarray) -> np.ndarray:
    """Boolean mask of the (tied) modes along the last axis."""
    top = weighted.max(-1, keepdims=True)
    return (weighted >= top * (1 - TIE_RTOL)) & (weighted > 0)


def score(truth: PairTruth, choices: np.ndarray, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and NMAE of ``choices`` (M, P; NaN = missing) against ``modes`` (..., P, K) masks.

    Returns arrays of shape (..., M, P)."""
    ch = np.asarray(choices, float)
    missing = ~np.isfinite(ch)
    chz = np.where(missing, 0.0, ch)
    dist = np.abs(chz[:, :, None] - truth.values[None]) / truth.span[None, :, None]  # (M, P, K)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    md = modes[..., None, :, :]  # (..., 1, P, K)
    correct = np.any(md & (dist == 0), axis=-1).astype(float)
    nmae = np.min(np.where(md, dist, np.inf), axis=-1)
    return np.where(missing, 0.0, correct), np.where(missing, 1.0, nmae)


def redraws(truth: PairTruth, n_draws: int, rng: np.random.Generator, chunk: int = 25) -> Iterator[np.ndarray]:
    """Yield mode masks of redrawn respondents, ``chunk`` redraws at a time: arrays (c, P, K)."""
    n = truth.n.astype(np.int64)
    shares = truth.counts / truth.n[:, None]
    done = 0
    while done < n_draws:
        c = min(chunk, n_draws - done)
        drawn = rng.multinomial(n, shares, size=(c, len(n)))  # (c, P, K)
        yield _modes(drawn * truth.weights[None])
        done += c


def resampled_scores(truth: PairTruth, choices: np.ndarray, n_draws: int, seed: int = 0,
                     chunk: int = 25) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (accuracy, NMAE) of each model's choices on redrawn respondents: arrays (c, M, P) per chunk."""
    rng = np.random.default_rng(seed)
    for modes in redraws(truth, n_draws, rng, chunk):
        yield score(truth, choices, modes)
