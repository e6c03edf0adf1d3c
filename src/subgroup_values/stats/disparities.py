"""Disparity over subgroups, base -> SFT: which kind of dispersion moved, tested and bounded.

Each model's subgroup means ``m_1..m_S`` of a metric (accuracy, NMAE) give five dispersion statistics. The
means are question-adjusted: a subgroup's mean of (score - the question's mean over subgroups), plus the overall
mean, so that a subgroup without some (hard or easy) questions is not moved by their absence.

- relative (the paper's): Norm. Range ``(max m - min m) / max m`` and CV ``SD(m) / mean(m)``; both move when
  the mean moves and the spread does not;
- absolute: the max gap ``max m - min m``, the SD of subgroup means (population SD, as in the CV), and the
  noise-corrected SD ``sqrt(max(0, SD(m)^2 - (1 - 1/S) mean_s v_s))``, where ``v_s`` is the respondent-sampling
  variance of subgroup ``s``'s mean (:mod:`.respondents`: ``sum_q var_qs / n_s^2`` over its ``n_s`` pairs). With
  independent noise ``e_s`` of variance ``v_s`` on the true means, ``E[SD(m)^2] = SD(mu)^2 + (1 - 1/S) mean(v)``.

Each base -> SFT change (SFT - base) gets

- a paired permutation test over questions: a permutation swaps the base and SFT scores of every pair of a
  question with probability 1/2, independently over questions (the two models' scores are exchangeable within a
  question under the null of no difference). For the relative statistics each model's scores are first divided
  by its own mean, so that the null is "equal relative dispersion" rather than "identical models" (Norm. Range
  and CV are unchanged by the scaling); two-sided p = (1 + #{|T*| >= |T| - 1e-12}) / (1 + n_perm) (the
  tolerance keeps rounding from deciding ties);
- a two-stage bootstrap interval (stage 1: questions with replacement; stage 2: each pair's respondents redrawn
  from its committed counts, the same redraw for both models), BCa by default with the jackknife over questions
  for the acceleration. The draws are centred on the bootstrap world's truth: in that world the observed scores
  are the true ones, so a statistic that removes respondent noise (the noise-corrected SD) has as its truth the
  uncorrected statistic of the observed scores, and its draws are shifted by the difference;
- the verdict, decided by the interval shown and the test together: a change ("widen" / "narrow", by the
  estimate's sign) needs both the paired permutation test and the two-stage interval to reject; else "no clear
  change" (a non-rejection, stated with its interval; where the two disagree the sentence says which rejected);
  "uninformative" when every resample gives the same value. Over the family of dispersion tests (both metrics, all
  five statistics) both are Holm-adjusted: the permutation p-values with Holm's step-down, and each interval is
  shown at the level Holm's step-down tests it at (:func:`.bootstrap.holm_intervals`: it excludes 0 exactly when
  its Holm-adjusted bootstrap p is under ``alpha``), so the interval shown is the interval that decides. A level
  statistic (mean, worst subgroup) is a family of one (95%). Beside it the same BCa interval on question resamples
  only, at the same level (the respondent redraws lower accuracy on average, so the two-stage draws centre
  elsewhere: ``bootstrap_centre``; BCa's bias correction refers them back to the estimate), and the unadjusted 95%
  interval (``delta_lo_95``, ``delta_hi_95``). ``p_monte_carlo_se`` is each permutation p-value's Monte-Carlo error.

Per-attribute contrasts (``young vs elderly``, ...) use the same machinery: the per-question difference between
the mean over one side's subgroups and the other's, averaged over questions; a sign-flip permutation test of the
per-question differences and the two-stage bootstrap interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.claims import Claim, fmt, fmt_ci
from .bootstrap import METHOD_NAMES, holm, holm_intervals, interval, is_degenerate, jackknife_counts, resample_counts
from .respondents import PairTruth, _modes, resampled_scores, score

RELATIVE = ("norm_range", "cv")
ABSOLUTE = ("max_gap", "sd", "sd_corrected")
DISPERSION = RELATIVE + ABSOLUTE
KIND = {**{k: "relative" for k in RELATIVE}, **{k: "absolute" for k in ABSOLUTE}, "mean": "level", "worst": "level"}
LABELS = {"norm_range": "Norm. Range", "cv": "CV", "max_gap": "max gap", "sd": "SD of subgroup means",
          "sd_corrected": "respondent-noise-corrected SD", "mean": "mean", "worst": "worst subgroup"}
METRIC_LABELS = {"accuracy": "accuracy", "nmae": "NMAE"}
METRIC_COLUMNS = {"accuracy": "correct", "nmae": "nmae"}
LOWER_IS_BETTER = {"accuracy": False, "nmae": True}
TWO_STAGE = "two-stage bootstrap (questions, then each pair's respondents)"


def method_name(method: str) -> str:
    """The interval's name as tables print it: ``BCa two-stage bootstrap (questions, then ...)``."""
    return METHOD_NAMES[method].split(" bootstrap")[0] + " " + TWO_STAGE


def dispersion(means: np.ndarray, noise: np.ndarray | None = None, lower_is_better: bool = False) -> dict:
    """Dispersion statistics over the last axis (subgroups) of ``means``; NaN subgroups are left out.

    ``noise``: each subgroup mean's respondent-sampling variance (same shape); without it no noise-corrected SD.
    """
    m = np.asarray(means, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi, lo, mean, sd = np.nanmax(m, -1), np.nanmin(m, -1), np.nanmean(m, -1), np.nanstd(m, -1)
        out = {"norm_range": np.where(hi > 0, (hi - lo) / hi, np.nan), "cv": np.where(mean > 0, sd / mean, np.nan),
               "max_gap": hi - lo, "sd": sd, "worst": hi if lower_is_better else lo}
        if noise is not None:
            ok = np.isfinite(m)
            s = ok.sum(-1)
            v = np.where(ok, noise, 0.0).sum(-1) / np.where(s > 0, s, np.nan)
            out["sd_corrected"] = np.sqrt(np.maximum(0.0, sd ** 2 - (1 - 1 / s) * v))
    return out


# ---- a panel of per-pair scores, observed and redrawn ------------------------------------------------------

@dataclass
class Panel:
    """Per (question, subgroup) scores of some columns (``accuracy_base``, ``accuracy_sft``, ...).

    ``values`` (Q, S, K): observed scores (0 where the pair is absent); ``present`` (Q, S): 1 where the pair
    exists; ``noise`` (Q, S, K): each pair's respondent-sampling variance of each score; ``draws`` (B, Q, S, K):
    the scores on ``B`` respondent redraws (float32)."""

    values: np.ndarray
    present: np.ndarray
    noise: np.ndarray
    draws: np.ndarray
    columns: list[str]
    qids: list
    sids: list

    def column(self, name: str) -> int:
        return self.columns.index(name)


def build_panel(frame: pd.DataFrame, truth: PairTruth, models: tuple[str, ...] = ("base", "sft"),
                metrics: tuple[str, ...] = ("accuracy", "nmae"), n_draws: int = 1000, seed: int = 0) -> Panel:
    """The panel of a paired frame (:func:`.fairness.paired`: ``correct_base``, ``choice_sft``, ...) whose rows
    ``truth`` is aligned with. The observed scores must be the scores of the choices against the committed
    modes (checked), so that the redraws rescore the very predictions the tables report."""
    q, qids = pd.factorize(frame["qid"], sort=True)
    s, sids = pd.factorize(frame["subgroup_id"], sort=True)
    if len(frame) != len(truth.counts):
        raise ValueError(f"{len(frame)} pairs but counts for {len(truth.counts)}; build the truth from this frame.")
    choices = np.stack([frame[f"choice_{m}"].to_numpy(dtype=float) for m in models])
    columns = [f"{m}_{side}" for m in metrics for side in models]
    observed = dict(zip(("accuracy", "nmae"), score(truth, choices, _modes(truth.counts * truth.weights))))
    for metric in metrics:
        for j, side in enumerate(models):
            seen = frame[f"{METRIC_COLUMNS[metric]}_{side}"].to_numpy(dtype=float)
            again = observed[metric][j]
            bad = ~np.isclose(seen, again, atol=1e-9)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(f"{int(bad.sum())} {metric} scores of the {side} predictions are not the scores of "
                                 f"their choices against the pairs' modes (e.g. {frame.qid.iat[i]} / "
                                 f"{frame.subgroup_id.iat[i]}: {seen[i]} vs {again[i]}); rescore the run "
                                 "(runs.rescore_run) or rebuild the data.")
    nq, ns, k = len(qids), len(sids), len(columns)
    values = np.zeros((nq, ns, k))
    present = np.zeros((nq, ns))
    present[q, s] = 1.0
    for c, name in enumerate(columns):
        metric, side = name.rsplit("_", 1)
        values[q, s, c] = frame[f"{METRIC_COLUMNS[metric]}_{side}"].to_numpy(dtype=float)
    draws = np.zeros((n_draws, nq, ns, k), dtype=np.float32)
    total = np.zeros((len(frame), k))
    square = np.zeros((len(frame), k))
    b = 0
    for acc, nm in resampled_scores(truth, choices, n_draws, seed):
        c = acc.shape[0]
        for ci, name in enumerate(columns):
            metric, side = name.rsplit("_", 1)
            x = (acc if metric == "accuracy" else nm)[:, models.index(side)]  # (c, P)
            draws[b:b + c, q, s, ci] = x
            total[:, ci] += x.sum(0)
            square[:, ci] += (x ** 2).sum(0)
        b += c
    var = np.maximum(0.0, (square - total ** 2 / n_draws) / max(n_draws - 1, 1))
    noise = np.zeros_like(values)
    noise[q, s] = var
    return Panel(values, present, noise, draws, columns, list(qids), list(sids))


def _question_means(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Each question's mean over the subgroups that have it: (..., Q, K) from values (..., Q, S, K)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return values.sum(-2) / present.sum(1)[:, None]


def _adjusted(raw, overall, sub, den):
    """Question-adjusted subgroup means: mean over the subgroup's questions of (score - question mean), plus the
    overall mean. ``sub``: sum over the subgroup's questions (weighted) of the question means."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return raw - sub / den + overall[:, None, :]


def _means(weights: np.ndarray, values: np.ndarray, present: np.ndarray, noise: np.ndarray):
    """Question-adjusted subgroup means (W, S, K), overall pair-weighted means (W, K) and each subgroup mean's
    respondent-noise variance."""
    num = np.einsum("wq,qsk->wsk", weights, values)
    den = (weights @ present)[:, :, None]
    var = np.einsum("wq,qsk->wsk", weights, noise)
    sub = np.einsum("wq,qs,qk->wsk", weights, present, _question_means(values, present))
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = num.sum(1) / den.sum(1)
        return _adjusted(num / den, overall, sub, den), overall, var / den ** 2


def _swapped(flips: np.ndarray, panel: Panel, pairs: list[tuple[int, int]], scale: np.ndarray | None = None):
    """:func:`_means` of the data with the two columns of each pair exchanged on the flipped questions; with
    ``scale`` (K,), each column divided by it first (and its noise by its square)."""
    values, noise = panel.values, panel.noise
    if scale is not None:
        values, noise = values / scale, noise / scale ** 2
    qm = _question_means(values, panel.present)[:, None, :] * panel.present[:, :, None]  # (Q, S, K)
    out = []
    for arr in (values, noise, qm):
        tot = arr.sum(0)
        part = np.einsum("nq,qsk->nsk", flips, arr)
        s = np.broadcast_to(tot, part.shape).copy()
        for a, b in pairs:
            s[:, :, a] = tot[:, a] - part[:, :, a] + part[:, :, b]
            s[:, :, b] = tot[:, b] - part[:, :, b] + part[:, :, a]
        out.append(s)
    den = panel.present.sum(0)[None, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = out[0].sum(1) / den.sum(1)
        return _adjusted(out[0] / den, overall, out[2], den), overall, out[1] / den ** 2


def delta_stats(metrics: tuple[str, ...], models: tuple[str, str] = ("base", "sft")):
    """``stats(means, overall, noise)`` for the paired disparity analysis: per metric and side the mean, the
    five dispersion statistics and the worst subgroup, and their deltas (second model - first)."""
    def stats(means, overall, noise):
        out = {}
        for k, m in enumerate(metrics):
            for j, side in enumerate(models):
                c = len(models) * k + j
                out[f"{m}_mean_{side}"] = overall[:, c]
                for name, v in dispersion(means[:, :, c], noise[:, :, c], LOWER_IS_BETTER[m]).items():
                    out[f"{m}_{name}_{side}"] = v
            for name in ("mean", *DISPERSION, "worst"):
                out[f"{m}_{name}_delta"] = out[f"{m}_{name}_{models[1]}"] - out[f"{m}_{name}_{models[0]}"]
        return out
    return stats


def analyse(panel: Panel, stats, pairs: list[tuple[int, int]], n_boot: int | None = None, n_perm: int = 10000,
            seed: int = 0, level: float = 0.95, method: str = "bca", keep: dict | None = None) -> pd.DataFrame:
    """Estimate, two-stage interval and (for ``*_delta`` statistics) the paired permutation p of each statistic.

    ``pairs``: the column indices swapped by a permutation (base, SFT of each metric). Bootstrap draw ``b`` takes
    question weights from :func:`.bootstrap.resample_counts` and the panel's ``b``-th respondent redraw; a question
    drawn twice keeps one redraw for both copies (their respondent noise is then shared, which widens the interval
    slightly rather than narrowing it). ``keep``: a dict filled with each statistic's centred two-stage draws and
    jackknife values, ``{name: (draws, jackknife)}``, for intervals at other levels (:func:`.bootstrap.holm_intervals`)."""
    nq = len(panel.qids)
    est = stats(*_means(np.ones((1, nq)), panel.values, panel.present, panel.noise))
    truth_star = stats(*_means(np.ones((1, nq)), panel.values, panel.present, np.zeros_like(panel.noise)))
    n_boot = n_boot or len(panel.draws)
    if n_boot > len(panel.draws):
        raise ValueError(f"{n_boot} bootstrap draws asked for, but the panel holds {len(panel.draws)} redraws.")
    w = resample_counts(nq, n_boot, seed)
    draws = panel.draws[:n_boot].astype(float)
    num = np.einsum("bq,bqsk->bsk", w, draws)
    den = (w @ panel.present)[:, :, None]
    var = np.einsum("bq,qsk->bsk", w, panel.noise)
    sub = np.einsum("bq,qs,bqk->bsk", w, panel.present, _question_means(draws, panel.present))
    del draws
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = num.sum(1) / den.sum(1)
        boot = stats(_adjusted(num / den, overall, sub, den), overall, var / den ** 2)
    flat = stats(*_means(w, panel.values, panel.present, panel.noise))  # questions only, no respondent stage
    jack = stats(*_means(jackknife_counts(nq), panel.values, panel.present, panel.noise)) if method == "bca" else None
    rng = np.random.default_rng(seed + 1)
    # Relative statistics are tested scale-free: each column divided by its own mean before the swaps, so that
    # the null is "equal relative dispersion", not "identical models" (Norm. Range and CV do not change by it).
    scale = np.nanmean(np.where(panel.present[:, :, None] > 0, panel.values, np.nan), axis=(0, 1))
    exceed: dict[str, int] = {}
    done = 0
    while done < n_perm:
        c = min(1000, n_perm - done)
        flips = rng.integers(0, 2, (c, nq)).astype(float)
        perm = stats(*_swapped(flips, panel, pairs))
        scaled = stats(*_swapped(flips, panel, pairs, scale))
        for name, t in est.items():
            if name.endswith("_delta"):
                got = scaled[name] if any(f"_{r}_" in name for r in RELATIVE) else perm[name]
                exceed[name] = exceed.get(name, 0) + int(np.sum(np.abs(got) >= abs(float(t[0])) - 1e-12))
        done += c
    rows = []
    for name, e in est.items():
        e0 = float(e[0])
        draws = boot[name] + (e0 - float(truth_star[name][0]))
        degenerate = is_degenerate(draws)
        if keep is not None:
            keep[name] = (draws, None if jack is None else jack[name], flat[name])
        lo, hi = interval(e0, draws, None if jack is None else jack[name], level, method)
        qlo, qhi = interval(e0, flat[name], None if jack is None else jack[name], level, method)
        p_perm = (1 + exceed[name]) / (1 + n_perm) if name in exceed else np.nan
        rows.append({"statistic": name, "estimate": e0, "lo": lo, "hi": hi, "questions_only_lo": qlo,
                     "questions_only_hi": qhi, "bootstrap_centre": float(np.nanmean(boot[name])),
                     "p_monte_carlo_se": float(np.sqrt(p_perm * (1 - p_perm) / n_perm)) if name in exceed else np.nan,
                     "se": float(np.nanstd(draws, ddof=1)), "degenerate": bool(degenerate),
                     "p_permutation": p_perm, "method": method})
    return pd.DataFrame(rows)


# ---- the base -> SFT disparity table, its verdicts and its sentences ----------------------------------------

def _change_verdict(p_interval: float, p_test: float, estimate: float, degenerate: bool, up: str, down: str,
                    alpha: float) -> str:
    """A change (``up`` / ``down`` by the estimate's sign) when both the interval shown (its Holm-adjusted
    bootstrap p, under ``alpha`` exactly when it excludes 0) and the paired permutation test reject; else no clear
    change."""
    if degenerate:
        return "uninformative"
    if not (np.isfinite(p_interval) and np.isfinite(p_test)):
        return "no test"
    if p_interval < alpha and p_test < alpha:
        return up if estimate > 0 else down
    return "no clear change"


def _disagreement(r) -> str:
    """Where the interval and the permutation test disagree, which one rejected (for the sentence)."""
    a, b = r.p_interval_holm < r.alpha, r.p_holm < r.alpha
    if a == b or r.degenerate:
        return ""
    return ("the interval excludes 0 but the permutation test does not reject" if a else
            "the permutation test rejects but the interval includes 0")


def disparity_changes(frame: pd.DataFrame | None, truth: PairTruth | None,
                      metrics: tuple[str, ...] = ("accuracy", "nmae"),
                      n_boot: int = 1000, n_perm: int = 10000, seed: int = 0, method: str = "bca",
                      level: float = 0.95, alpha: float = 0.05, reported: dict | None = None,
                      panel: Panel | None = None) -> pd.DataFrame:
    """The fairness table: per metric its mean and every dispersion statistic, base, SFT and the delta with its
    two-stage interval, the paired permutation p, the Holm-adjusted p over the dispersion family and the verdict.

    ``frame``: :func:`.fairness.paired` output; ``truth``: :func:`.respondents.pair_truth` of its rows;
    ``reported``: the paper's base -> SFT means (:data:`.paper.FAIRNESS`); ``panel``: a :func:`build_panel` of
    the same frame, built once and shared (``frame`` and ``truth`` are then not used).
    """
    if panel is None:
        if frame is None or truth is None:
            raise ValueError("disparity_changes needs the paired frame and its truth, or a panel built from them.")
        panel = build_panel(frame, truth, ("base", "sft"), metrics, n_boot, seed)
    want = [f"{m}_{side}" for m in metrics for side in ("base", "sft")]
    if panel.columns != want:
        raise ValueError(f"The panel holds {panel.columns}; expected {want} for the metrics {metrics}.")
    pairs = [(2 * k, 2 * k + 1) for k in range(len(metrics))]
    kept: dict = {}
    res = analyse(panel, delta_stats(metrics), pairs, n_boot=n_boot, n_perm=n_perm, seed=seed, level=level,
                  method=method, keep=kept).set_index("statistic")
    own = _means(np.ones((1, len(panel.qids))), panel.values, panel.present, panel.noise)[0][0]  # (S, K)
    names = (frame.drop_duplicates("subgroup_id").set_index("subgroup_id").subgroup.reindex(panel.sids).fillna("")
             .to_numpy() if frame is not None and "subgroup" in frame else np.array([str(s) for s in panel.sids]))

    def extremes(col: str) -> tuple[str, str]:
        v = own[:, panel.column(col)]
        return names[int(np.nanargmin(v))], names[int(np.nanargmax(v))]

    rows = []
    for m in metrics:
        (bl, bh), (sl, sh) = extremes(f"{m}_base"), extremes(f"{m}_sft")
        for name in ("mean", *DISPERSION, "worst"):
            d, b, s = (res.loc[f"{m}_{name}_{x}"] for x in ("delta", "base", "sft"))
            row = {"metric": m, "statistic": f"{m} {name.replace('_', ' ')}",
                   "label": f"{METRIC_LABELS[m]} {LABELS[name]}", "kind": KIND[name],
                   "base": b.estimate, "base_lo": b.lo, "base_hi": b.hi, "SFT": s.estimate, "SFT_lo": s.lo,
                   "SFT_hi": s.hi, "delta": d.estimate, "delta_lo_95": d.lo, "delta_hi_95": d.hi,
                   "interval": method_name(method), "p_permutation": d.p_permutation,
                   "permutations": n_perm, "degenerate": d.degenerate, "base_lowest": bl, "base_highest": bh,
                   "SFT_lowest": sl, "SFT_highest": sh}
            key = f"{'acc' if m == 'accuracy' else 'nmae'}_{name}"
            row["delta_lo_questions_only"], row["delta_hi_questions_only"] = d.questions_only_lo, d.questions_only_hi
            row["bootstrap_centre"], row["p_monte_carlo_se"] = d.bootstrap_centre, d.p_monte_carlo_se
            if reported and key in reported:
                row["paper base -> SFT (reported mean)"] = "{:.3f} -> {:.3f}".format(*reported[key])
                row["paper_delta"] = reported[key][1] - reported[key][0]
            row["_stat"] = f"{m}_{name}_delta"
            rows.append(row)
    out = pd.DataFrame(rows)
    family = out.kind.isin(["relative", "absolute"])
    out["family"] = np.where(family, "dispersion", "")
    # The interval shown decides with the test: over the dispersion family, each delta's interval is at the level
    # Holm's step-down tests it at (it excludes 0 exactly when its Holm-adjusted bootstrap p is under alpha); a
    # level statistic (mean, worst subgroup) is its own family of one (95%).
    for col in ("delta_level", "delta_lo", "delta_hi", "p_interval", "p_interval_holm", "p_holm", "endpoint_mc_se"):
        out[col] = np.nan
    out["borderline"] = False
    for members in (np.flatnonzero(family.to_numpy()), *([i] for i in np.flatnonzero(~family.to_numpy()))):
        names = out._stat.iloc[members]
        hi = holm_intervals(out.delta.iloc[members], [kept[n][0] for n in names], [kept[n][1] for n in names],
                            alpha, method)
        idx = out.index[members]
        out.loc[idx, "delta_level"] = hi.level.to_numpy()
        out.loc[idx, "delta_lo"], out.loc[idx, "delta_hi"] = hi.lo.to_numpy(), hi.hi.to_numpy()
        out.loc[idx, "p_interval"], out.loc[idx, "p_interval_holm"] = hi.p_bootstrap.to_numpy(), hi.p_bootstrap_holm.to_numpy()
        out.loc[idx, "endpoint_mc_se"], out.loc[idx, "borderline"] = hi.endpoint_mc_se.to_numpy(), hi.borderline.to_numpy()
        out.loc[idx, "p_holm"] = holm(out.p_permutation.iloc[members].to_numpy())
        for i, n, lev in zip(idx, names, hi.level):
            _, jk, flat = kept[n]
            out.loc[i, ["delta_lo_questions_only", "delta_hi_questions_only"]] = (
                interval(float(out.delta[i]), flat, jk, lev, method) if np.isfinite(lev) else (np.nan, np.nan))
    out = out.drop(columns="_stat")
    out["alpha"] = alpha
    words = {True: ("widen", "narrow"), False: ("rises", "falls")}
    out["verdict"] = [_change_verdict(r.p_interval_holm, r.p_holm, r.delta, r.degenerate, *words[bool(r.family)], alpha)
                      for r in out.itertuples()]
    out["disagreement"] = [_disagreement(r) for r in out.itertuples()]
    n_fam = int(family.sum())
    both = ("a change needs both the interval shown and the paired permutation test (relative statistics permuted "
            "scale-free; its null, exchangeable scores within a question, is stronger than no change in dispersion) "
            "to reject at {a}; direction from the estimate's sign")
    out["rule"] = np.where(
        family, both.format(a=alpha) + f"; over the family of {n_fam} dispersion tests (both metrics) each with "
                "Holm's step-down: the interval at the level Holm tests it at, the permutation p Holm-adjusted",
        both.format(a=alpha) + "; a level statistic, outside the dispersion family: the 95% interval and the raw p")
    return out


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def level_label(x: float) -> str:
    """An interval's level as a table prints it: 95%, 99.5%, 99.44%."""
    v = 100 * float(x)
    for d in (0, 1, 2):
        if abs(round(v, d) - v) < 1e-9:
            return f"{round(v, d):.{d}f}%"
    return f"{v:.2f}%"


def _delta_txt(r) -> str:
    """The delta with the interval that decides, its level and what it is, and the questions-only interval."""
    what = ("Holm decision interval (the level Holm's step-down tests it at), " if r.family else "")
    edge = (f"; borderline: its endpoint nearer 0 lies within 2 Monte Carlo SE ({fmt(r.endpoint_mc_se, 4)}) of 0"
            if getattr(r, "borderline", False) else "")
    return (f"delta {fmt_ci(r.delta, r.delta_lo, r.delta_hi)} ({level_label(r.delta_level)} {what}"
            f"{r.interval.split(' (')[0]}; questions only [{fmt(r.delta_lo_questions_only)}, "
            f"{fmt(r.delta_hi_questions_only)}]{edge})")


def _tests_txt(r) -> str:
    """The permutation test and the interval's own p, both adjusted over the family where there is one."""
    if r.family:
        return (f"paired permutation {_p(r.p_permutation)}, Holm-adjusted {_p(r.p_holm)}; the interval's bootstrap "
                f"Holm-adjusted {_p(r.p_interval_holm)}")
    return f"paired permutation {_p(r.p_permutation)}"


def _moved(t: pd.DataFrame, kind: str) -> list[str]:
    v = t[t.kind == kind].verdict
    return sorted(set(v[v.isin(["widen", "narrow"])]))


def _listing(t: pd.DataFrame, bounds: bool = False) -> str:
    return "; ".join(f"{LABELS[name]} {fmt(r.base)} -> {fmt(r.SFT)}"
                     + (f", {_delta_txt(r).split(' (')[0]} ({level_label(r.delta_level)})" if bounds else "")
                     + f", Holm-adjusted {_p(r.p_holm)}"
                     for name, r in zip(t.statistic.str.split(" ", n=1).str[1].str.replace(" ", "_"),
                                        t.itertuples()))


def _which(t: pd.DataFrame) -> str:
    """The statistics of ``t`` that widen or narrow, by name."""
    moved = t[t.verdict.isin(["widen", "narrow"])]
    return " and ".join(LABELS[s.split(" ", 1)[1].replace(" ", "_")] for s in moved.statistic)


def kind_sentence(table: pd.DataFrame, metric: str) -> tuple[str, str]:
    """Which kind of dispersion moved for ``metric``: (verdict, sentence), e.g. ("relative only", "Relative NMAE
    gaps widen (...) as mean NMAE falls (...); no clear change in absolute NMAE gaps (... with the bounds)").
    A kind that does not move is reported as "no clear change" with its intervals, never as "unchanged"."""
    t = table[table.metric == metric]
    lab = METRIC_LABELS[metric]
    rel, ab = _moved(t, "relative"), _moved(t, "absolute")
    mean = t[t.statistic == f"{metric} mean"].iloc[0]
    mean_txt = (f"mean {lab} {fmt(mean.base)} -> {fmt(mean.SFT)}, delta "
                f"{fmt_ci(mean.delta, mean.delta_lo, mean.delta_hi)} ({level_label(mean.delta_level)})")
    rel_t, abs_t = t[t.kind == "relative"], t[t.kind == "absolute"]
    if rel and not ab:
        mean_way = {"falls": "falls", "rises": "rises"}.get(mean.verdict)
        explains = (rel == ["widen"] and mean_way == "falls") or (rel == ["narrow"] and mean_way == "rises")
        because = f" as mean {lab} {mean_way} ({mean_txt})" if explains else f" ({mean_txt})"
        return "relative only", (f"Relative {lab} gaps {' and '.join(rel)} by {_which(rel_t)} ({_listing(rel_t)})"
                                 f"{because}; no clear "
                                 f"change in absolute {lab} gaps (a non-rejection, not a finding of no change: "
                                 f"{_listing(abs_t, bounds=True)}).")
    if ab and not rel:
        return "absolute only", (f"Absolute {lab} gaps {' and '.join(ab)} by {_which(abs_t)} ({_listing(abs_t)}); "
                                 "no clear change in "
                                 f"relative {lab} gaps ({_listing(rel_t, bounds=True)}); {mean_txt}.")
    if ab and rel:
        return "both", (f"Both kinds of {lab} dispersion move: relative gaps {' and '.join(rel)} "
                        f"({_listing(rel_t)}); absolute gaps {' and '.join(ab)} ({_listing(abs_t)}); {mean_txt}.")
    return "neither", (f"No clear change in relative or absolute {lab} gaps ({_listing(rel_t, bounds=True)}; "
                       f"{_listing(abs_t, bounds=True)}); {mean_txt}.")


def disparity_claims(table: pd.DataFrame, split: str = "ood", protocol: str = "paper",
                     source: str = "results/{profile}/fairness/disparity_table.csv") -> list[Claim]:
    """One claim per base -> SFT statistic of :func:`disparity_changes`, one per metric saying which kind of
    dispersion moved, and the paper's "fairness paradox"."""
    out = []
    for r in table.itertuples():
        name = r.statistic.split(" ", 1)[1].replace(" ", "_")
        verdict = r.verdict
        what = {"widen": "gaps widen", "narrow": "gaps narrow"}.get(r.verdict, r.verdict)
        if r.disagreement:
            what += f" ({r.disagreement}; a change needs both)"
        ends = (f" (the range runs from {r.base_lowest} to {r.base_highest} for base, from {r.SFT_lowest} to "
                f"{r.SFT_highest} for SFT)" if name in ("norm_range", "max_gap") else "")
        fam = f" (family: {int(table.family.eq('dispersion').sum())} dispersion tests)" if r.family else ""
        sentence = (f"{split.upper()} {r.label} ({r.kind}, question-adjusted subgroup means), base -> SFT: "
                    f"{fmt(r.base)} -> {fmt(r.SFT)}, {_delta_txt(r)}, {_tests_txt(r)}{fam}: {what}{ends}.")
        if r.kind == "level":
            sentence = (f"{split.upper()} {r.label}, base -> SFT: {fmt(r.base)} -> {fmt(r.SFT)}, {_delta_txt(r)}, "
                        f"{_tests_txt(r)}: {what}{ends}.")
        if r.verdict == "uninformative":
            sentence = (f"{split.upper()} {r.label}, base -> SFT: uninformative (every resample gives the same "
                        "value).")
        out.append(Claim(id=f"fairness.{split}.{r.metric}.{name}_delta", topic="fairness",
                         statistic=f"{r.label}, SFT - base, over {split.upper()} subgroups", sentence=sentence,
                         verdict=verdict, estimate=float(r.delta), lo=_num(r.delta_lo), hi=_num(r.delta_hi),
                         method=f"{r.interval} at {level_label(r.delta_level)}"
                                + (" (Holm's step-down level over the dispersion family)" if r.family else "")
                                + f"; paired permutation test over questions ({r.permutations} permutations)"
                                + (", Holm over the dispersion family" if r.family else ""),
                         rule=r.rule, p_value=_num(max(r.p_holm if r.family else r.p_permutation,
                                                       r.p_interval_holm if r.family else r.p_interval)),
                         protocol=protocol, source=source,
                         extra={"base": float(r.base), "sft": float(r.SFT), "kind": r.kind,
                                "p_permutation": float(r.p_permutation), "level": float(r.delta_level),
                                "borderline": bool(r.borderline),
                                "p_interval_holm": _num(r.p_interval_holm), "lo_95": _num(r.delta_lo_95),
                                "hi_95": _num(r.delta_hi_95)}))
    for m in table.metric.unique():
        verdict, sentence = kind_sentence(table, m)
        out.append(Claim(id=f"fairness.{split}.{m}.which_kind", topic="fairness",
                         statistic=f"which kind of {METRIC_LABELS[m]} dispersion moved, base -> SFT",
                         sentence=sentence, verdict=verdict, method="the verdicts of the dispersion claims",
                         rule="relative: Norm. Range, CV; absolute: max gap, SD, respondent-noise-corrected SD; a kind moved "
                              "when one of its statistics widens or narrows", protocol=protocol, source=source))
    t = table.set_index("statistic")
    if {"accuracy norm range", "nmae norm range"} <= set(t.index):
        a, n = t.loc["accuracy norm range"], t.loc["nmae norm range"]
        holds = a.verdict == "narrow" and n.verdict == "widen"
        against = a.verdict == "widen" or n.verdict == "narrow"
        verdict = "reproduced" if holds else "not reproduced" if against else "inconclusive"
        says = {"widen": "widens", "narrow": "narrows", "no clear change": "shows no clear change"}

        def part(r, name):
            txt = f"{name} {says.get(r.verdict, r.verdict)} ({fmt(r.base)} -> {fmt(r.SFT)}, Holm-adjusted {_p(r.p_holm)}"
            pd_ = getattr(r, "paper_delta", np.nan)
            if np.isfinite(pd_):
                inside = r.delta_lo <= pd_ <= r.delta_hi
                txt += (f"; the paper's change {pd_:+.3f} {'lies inside' if inside else 'lies outside'} our interval "
                        f"{fmt_ci(r.delta, r.delta_lo, r.delta_hi)} ({level_label(r.delta_level)})")
            return txt + ")"

        out.append(Claim(
            id=f"fairness.{split}.paradox", topic="fairness",
            statistic="the paper's fairness paradox: accuracy Norm. Range narrows and NMAE Norm. Range widens",
            sentence=("The paper's fairness paradox (Norm. Range narrower by accuracy and wider by NMAE; a mean over "
                      "seven 3-8B models, untested) is "
                      + {"reproduced": "reproduced", "not reproduced": "contradicted",
                         "inconclusive": "neither reproduced nor contradicted (inconclusive)"}[verdict]
                      + f" for this model: {part(a, 'accuracy Norm. Range')}; {part(n, 'NMAE Norm. Range')}."),
            verdict=verdict, method="the two Norm. Range claims",
            rule="reproduced when accuracy Norm. Range narrows and NMAE Norm. Range widens by their verdicts; not "
                 "reproduced when either changes the other way; otherwise inconclusive (a non-rejection: where the "
                 "paper's change lies inside our interval, our data cannot exclude it)", protocol=protocol,
            source=source))
    return out


def _num(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None
