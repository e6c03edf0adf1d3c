"""The noise floor: how far a subgroup's observed answer distribution lies from the distribution it was sampled
from, by chance alone. No predictor can be expected to come closer to the observed distribution than this on
average, so every distribution table shows it as its floor (and uniform as its ceiling).

Two estimates per (question, subgroup) pair, from the subgroup's own respondents who answered on the scale:

- ``bootstrap``: resample the respondents with replacement (``n_boot`` times); each respondent keeps its survey
  weight (``W_WEIGHT``), so the resampled distribution is the same weighted estimator as the observed one and the
  variability of the design weights is part of the noise. The floor is the mean distance between the resampled
  and the observed distribution (the bootstrap estimate of E d(p_hat, p)).
- ``split_half``: split the respondents at random into two halves (``n_splits`` times), weighted distribution of
  each half, distance between the halves. For distances that shrink as 1/sqrt(n) (TV, W1 and the JS distance
  of nearby distributions do), E d(half, half') is about sqrt(2) x sqrt(2) = 2 times the full sample's
  E d(p_hat, p), so ``split_half`` reports half of the mean distance: an estimate that does not lean on the
  bootstrap's plug-in assumption.
- ``floor`` (what every table shows): the split-half distance converted to the full sample by the ratio the
  plug-in world gives (bootstrap floor / distance between two bootstrap samples of the halves' sizes) instead of
  the factor 2, which only holds for large n. The bootstrap is biased low by 5-25% for n <= 50 (options the
  sample never saw); this estimator's bias, measured by simulation over n = 15..400 and k = 2..10 (multinomial
  and weighted samples), is in ``tests/test_noise_floor.py`` (:func:`floor_bias`).

Distances are those of :mod:`subgroup_values.stats.metrics` (TV, normalised W1, JS distance).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..stats.metrics import jensen_shannon, total_variation, wasserstein

DISTANCES = {"tv": total_variation, "w1": wasserstein, "jsd": jensen_shannon}

#: Bounds on the floor estimator's relative bias by sample size n (any k = 2..10, multinomial or weighted), as
#: held by tests/test_noise_floor.py (measured there by simulation at these n and between them).
BIAS_BOUNDS = ((15, 0.13), (50, 0.055), (150, 0.03), (400, 0.03))


def bias_bound(n) -> np.ndarray:
    """The bias bound at each ``n``: :data:`BIAS_BOUNDS` interpolated linearly in log n (the bias shrinks
    about as 1/n), the first value below n = 15 and the last above n = 400."""
    xs = np.log([b[0] for b in BIAS_BOUNDS])
    ys = [b[1] for b in BIAS_BOUNDS]
    return np.interp(np.log(np.maximum(np.asarray(n, float), 1.0)), xs, ys)


def _batch_distances(draws: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """TV, W1, JSD of each row of ``draws`` (weighted counts) to ``target`` (vectorised forms of metrics')."""
    p = draws / np.clip(draws.sum(1, keepdims=True), 1e-300, None)
    q = target / target.sum()
    tv = np.abs(p - q).sum(1) / 2
    k = p.shape[1]
    w1 = (np.abs(np.cumsum(p, 1) - np.cumsum(q))[:, :-1].sum(1) / (k - 1)) if k > 1 else np.zeros(len(p))
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(1)
    jsd = np.sqrt(np.clip((kl_p + kl_q) / 2, 0, None))
    return {"tv": tv, "w1": w1, "jsd": jsd}


def _resampled(options: np.ndarray, weights: np.ndarray, idx: np.ndarray, k: int) -> np.ndarray:
    """Weighted answer counts [B, k] of the respondent samples ``idx`` [B, m] (indices into options/weights)."""
    b, m = idx.shape
    flat = (np.arange(b)[:, None] * k + options[idx]).ravel()
    return np.bincount(flat, weights=weights[idx].ravel(), minlength=b * k).reshape(b, k)


def _row_distances(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """TV, W1, JSD between each row of ``a`` and the same row of ``b`` (weighted counts), vectorised."""
    p = a / np.clip(a.sum(1, keepdims=True), 1e-300, None)
    q = b / np.clip(b.sum(1, keepdims=True), 1e-300, None)
    k = p.shape[1]
    tv = np.abs(p - q).sum(1) / 2
    w1 = np.abs(np.cumsum(p, 1) - np.cumsum(q, 1))[:, :-1].sum(1) / (k - 1) if k > 1 else np.zeros(len(p))
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(1)
    return {"tv": tv, "w1": w1, "jsd": np.sqrt(np.clip((kl_p + kl_q) / 2, 0, None))}


def pair_floor(options: np.ndarray, weights: np.ndarray, k: int, n_boot: int = 200, n_splits: int = 50,
               rng: np.random.Generator | None = None) -> dict[str, float]:
    """Noise floor of one pair from its respondents' option indices (0..k-1) and weights.

    ``boot_*``: mean distance of ``n_boot`` bootstrap resamples to the observed distribution (biased low for
    small n: the plug-in distribution has fewer options in use than the truth). ``split_*``: half the mean
    distance between random halves. ``floor_*`` (the floor every table uses): the split-half distance
    ``E d(half, half')``, which is an unbiased estimate of the distance between two independent samples of
    n/2 (no plug-in), times the ratio ``boot / boot_half`` by which the plug-in world converts it to the
    full sample's ``E d(p_hat_n, p)`` (``boot_half``: the distance between two bootstrap samples of the halves'
    sizes). Its bias is measured by simulation in ``tests/test_noise_floor.py``.
    """
    rng = rng or np.random.default_rng(0)
    options = np.asarray(options, dtype=int)
    weights = np.asarray(weights, dtype=float)
    n = len(options)
    if n < 2:
        raise ValueError(f"a noise floor needs at least 2 respondents, got {n}.")
    if len(weights) != n or not np.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"expected {n} finite non-negative weights with a positive total, got {weights!r}.")
    if options.min() < 0 or options.max() >= k:
        raise ValueError(f"options must lie in 0..{k - 1}, got {options.min()}..{options.max()}.")
    observed = np.bincount(options, weights=weights, minlength=k)
    half = n // 2
    boot = _batch_distances(_resampled(options, weights, rng.integers(0, n, (n_boot, n)), k), observed)
    bh = _row_distances(_resampled(options, weights, rng.integers(0, n, (n_boot, half)), k),
                        _resampled(options, weights, rng.integers(0, n, (n_boot, n - half)), k))
    perm = np.argsort(rng.random((n_splits, n)), axis=1)
    split = _row_distances(_resampled(options, weights, perm[:, :half], k),
                           _resampled(options, weights, perm[:, half:], k))
    out = {f"boot_{name}": float(v.mean()) for name, v in boot.items()}
    out |= {f"split_{name}": float(v.mean()) / 2 for name, v in split.items()}
    for name in ("tv", "w1", "jsd"):
        b, h = out[f"boot_{name}"], float(bh[name].mean())
        out[f"floor_{name}"] = float(split[name].mean()) * b / h if h > 0 else 0.0
    return out


def noise_floor(survey, questions, subgroups, pairs: pd.DataFrame, n_boot: int = 200, n_splits: int = 50,
                seed: int = 0, progress: bool = True, study=None) -> pd.DataFrame:
    """The floor of every pair in ``pairs`` (one row per pair: qid, subgroup_id, n_valid, and ``boot_tv``,
    ``boot_w1``, ``boot_jsd``, ``split_tv``, ``split_w1``, ``split_jsd``). ``survey``, ``questions``,
    ``subgroups`` and ``study`` (its dimensions' survey columns; None: the pairs' study) are those the pairs were
    built from (:func:`subgroup_values.survey.dataset.build_dataset`)."""
    from ..survey.study import study_of
    from ..survey.subgroups import subgroup_mask

    study = study_of(pairs, study)
    rng = np.random.default_rng(seed)
    weights = survey.data["W_WEIGHT"].to_numpy(dtype=float)
    by_id = {s.subgroup_id: s for s in subgroups}
    masks: dict[str, np.ndarray] = {}
    qs = {q.qid: q for q in questions}
    rows = []
    for qid, group in tqdm(pairs.groupby("qid", sort=False), desc="noise floor", disable=not progress):
        q = qs[qid]
        scaled = q.to_scale(survey.data[qid]).to_numpy(dtype=float)
        on_scale = ~np.isnan(scaled)
        for r in group.itertuples(index=False):
            if r.subgroup_id not in masks:
                masks[r.subgroup_id] = subgroup_mask(survey, by_id[r.subgroup_id], study)
            sel = masks[r.subgroup_id] & on_scale
            options = (scaled[sel] - q.scale_min).astype(int)
            floor = pair_floor(options, weights[sel], q.n_options, n_boot, n_splits, rng)
            rows.append({"qid": qid, "subgroup_id": r.subgroup_id, "n_valid": int(sel.sum())} | floor)
    return pd.DataFrame(rows)


def floor_file(study=None):
    """Where the floor of a study's pairs is kept, beside its dataset (per-pair aggregates of groups of 30+:
    committed with the data); ``data/processed/noise_floor.csv`` for Singapore (``study`` None)."""
    from ..survey.study import processed_dir

    return processed_dir(study) / "noise_floor.csv"


def from_survey_file(wvs_file, pairs: pd.DataFrame, country: str | None = None, min_size: int | None = None,
                     n_boot: int = 200, n_splits: int = 50, seed: int = 0, progress: bool = True,
                     study=None) -> pd.DataFrame:
    """The floor of ``pairs`` from the survey file (the same respondents and subgroups as the dataset build of the
    pairs' study, :func:`subgroup_values.survey.study.study_of`)."""
    from ..survey.dataset import valid_codes
    from ..survey.questions import load_questions
    from ..survey.study import study_of
    from ..survey.subgroups import find_subgroups, usable_dimensions
    from ..survey.wvs import read_wvs

    study = study_of(pairs, study)
    min_size = study.min_group_size if min_size is None else min_size
    questions = load_questions(rule="all")
    survey = read_wvs(wvs_file, country=country or study.country, items=[q.qid for q in questions],
                      valid_codes=valid_codes(questions), columns=tuple(study.columns),
                      may_lack=study.absent_items)
    used, _ = usable_dimensions(survey, study, min_size)
    subgroups = find_subgroups(survey, used.strata, min_size=min_size, study=used)
    return noise_floor(survey, questions, subgroups, pairs, n_boot, n_splits, seed, progress, study=used)


def save(floor: pd.DataFrame, path=None, study=None) -> bool:
    """Write the floor table (rounded to 6 decimals) only when its content changed; True when written. ``path``
    None: the study's :func:`floor_file`."""
    from pathlib import Path

    from ..core.provenance import write_csv

    path = Path(path) if path else floor_file(study)
    return write_csv(floor.round(6), path)


def load(path=None, study=None) -> pd.DataFrame:
    from pathlib import Path

    path = Path(path) if path else floor_file(study)
    if not path.is_file():
        raise FileNotFoundError(f"No noise floor at {path}: run notebook 08 once with the survey file "
                                f"(make all WVS_FILE=...), which computes and keeps it.")
    return pd.read_csv(path)


def floor_bias(p: np.ndarray, n: int, weight_sigma: float = 0.0, samples: int = 200, truth_draws: int = 4000,
               seed: int = 0, n_boot: int = 200, n_splits: int = 50) -> dict[str, float]:
    """Relative bias of the ``floor_tv`` and ``boot_tv`` estimates for samples of ``n`` respondents from the
    known distribution ``p`` (weights lognormal with ``weight_sigma``; 0: unweighted multinomial samples):
    ``mean(estimate) / E TV(p_hat_n, p) - 1``, the truth by ``truth_draws`` simulated samples. Also returns the
    Monte Carlo standard error of the relative bias (``se``)."""
    rng = np.random.default_rng(seed)
    p = np.asarray(p, float) / np.sum(p)
    k = len(p)

    def draw(size):
        o = rng.choice(k, (size, n), p=p)
        w = rng.lognormal(0, weight_sigma, (size, n)) if weight_sigma > 0 else np.ones((size, n))
        return o, w

    o, w = draw(truth_draws)
    counts = np.zeros((truth_draws, k))
    np.add.at(counts, (np.repeat(np.arange(truth_draws), n), o.ravel()), w.ravel())
    truth = float(_batch_distances(counts, p)["tv"].mean())
    o, w = draw(samples)
    est = [pair_floor(o[i], w[i], k, n_boot, n_splits, rng) for i in range(samples)]
    floor = np.array([e["floor_tv"] for e in est])
    boot = np.array([e["boot_tv"] for e in est])
    return {"truth": truth, "floor": float(floor.mean() / truth - 1), "boot": float(boot.mean() / truth - 1),
            "se": float(floor.std(ddof=1) / np.sqrt(samples) / truth)}
