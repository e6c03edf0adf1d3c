"""Bootstrap confidence intervals that resample questions (the unit shared by every subgroup and model)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd


def resample_indices(units: pd.Series, n_boot: int = 1000, seed: int = 0):
    """Yield row-index arrays, each the rows of a resample (with replacement) of the distinct units."""
    codes, uniques = pd.factorize(units, sort=True)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    groups = [order[bounds[i]:bounds[i + 1]] for i in range(len(uniques))]
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniques), len(uniques))
        yield np.concatenate([groups[i] for i in pick])


def bootstrap(df: pd.DataFrame, stat: Callable[[pd.DataFrame], float | pd.Series], unit: str = "qid",
              n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Percentile interval of ``stat(df)`` under resampling of ``unit``; returns estimate, lo, hi (and se).

    ``stat`` may return a number or a Series (several statistics at once, resampled together: paired).
    """
    est = stat(df)
    draws = [stat(df.iloc[idx]) for idx in resample_indices(df[unit], n_boot, seed)]
    alpha = (1 - level) / 2
    if isinstance(est, pd.Series):
        d = pd.DataFrame(draws)
        return pd.DataFrame({"estimate": est, "lo": d.quantile(alpha), "hi": d.quantile(1 - alpha),
                             "se": d.std(ddof=1)})
    d = np.asarray(draws, dtype=float)
    return pd.DataFrame({"estimate": [est], "lo": [np.nanquantile(d, alpha)], "hi": [np.nanquantile(d, 1 - alpha)],
                         "se": [np.nanstd(d, ddof=1)]})
