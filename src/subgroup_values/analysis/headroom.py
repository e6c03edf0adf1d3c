"""How much is there to emulate? Every predictor and model placed between the noise floor and uniform, on the
``paper`` and the ``disjoint`` protocol (design.md, "Protocols"; :mod:`subgroup_values.analysis.folds`).

A protocol table (``results/<profile>/headroom/headroom.csv`` for ``paper``, ``headroom_disjoint.csv`` for
``disjoint``; :func:`protocol_table`) has one row per method and pair set (``all``, ``consensus``,
``divergent``): accuracy (of the predicted answer against the weighted mode), total variation (``tv``),
normalised ordinal Wasserstein (``w1``), Jensen-Shannon distance (``jsd``), log score and KL (bits) and Brier
(:mod:`subgroup_values.stats.scores`) of the predicted distribution against the target's weighted answer
distribution, and SimBench's normalised score, each with a 95% BCa interval over questions. The noise floor
(:mod:`subgroup_values.analysis.noise_floor`, ``floor_*``) is a row of its own (``method`` = ``noise_floor``; its
normalised score is the one a predictor at the floor would get). Under ``disjoint`` a pair's consensus or
divergent label comes from the other folds' respondents of its cell (:func:`.folds.other_folds_divergence`),
never from the target's own sample, which would select pairs on the target's noise; a pair the other folds
cannot classify is in ``all`` only. The finding is a list of claims
(:func:`headroom_claims`, :func:`worth_claims`) written to ``results/<profile>/claims/headroom.json``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats.bootstrap import mean_bootstrap

SUBSETS = ("all", "consensus", "divergent")


def model_predictions(profile: str, run: str, all_pairs: pd.DataFrame) -> pd.DataFrame:
    """A model run's predictions (``results/<profile>/<run>/predictions.parquet``), scored again with today's
    metrics (TV included) against the pairs' weighted distributions (:func:`subgroup_values.evaluation.runs.rescore`)."""

    from ..core.paths import run_dir
    from ..evaluation.runs import rescore

    path = run_dir(profile, run) / "predictions.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"No predictions at {path}: run notebook 3 for {run} (make all) first.")
    return rescore(pd.read_parquet(path), all_pairs)


# ---- both protocols: distances, proper scores, the normalised score ------------------------------------------

#: Per-pair columns summarised in the protocol tables, and their names there.
SCORE_METRICS = {"correct": "accuracy", "tv": "tv", "wasserstein": "w1", "js": "jsd", "log_score": "log_score",
                 "kl": "kl", "brier": "brier"}
#: Methods that are references, not predictors (never "the best predictor").
REFERENCES = ("noise_floor", "uniform", "true_mode", "population_mode_point")


def point_masses(preds: pd.DataFrame, name: str) -> dict[str, pd.DataFrame]:
    """Meister et al.'s references for a model: point masses on the *model's* most likely option (``LB1``) and
    on its least likely option (``LB2``), scored against the same targets."""
    from ..stats.metrics import score_pairs

    out = {}
    for tag, pick in (("lb1", np.argmax), ("lb2", np.argmin)):
        probs = [np.eye(len(p))[int(pick(p))].tolist() for p in preds["probs"]]
        out[f"{name}_{tag}"] = score_pairs(preds.assign(probs=probs, expected=False,
                                                        choice=[lo + int(np.argmax(p)) for lo, p in
                                                                zip(preds.scale_min, probs)]))
    return out


def _keys(preds: pd.DataFrame) -> set:
    cols = ["qid", "subgroup_id"] + (["fold"] if "fold" in preds else [])
    return set(map(tuple, preds[cols].astype(str).to_numpy()))


def _labelled(divergent: pd.Series, value: bool) -> np.ndarray:
    """The pairs labelled ``value`` (a missing label, under the disjoint protocol, is neither)."""
    return divergent.astype("boolean").eq(value).fillna(False).to_numpy(dtype=bool)


def protocol_table(systems: dict[str, pd.DataFrame], floor: pd.DataFrame, protocol: str, n_boot: int = 1000,
                   seed: int = 0) -> pd.DataFrame:
    """One row per method and pair set (all, consensus, divergent) under ``protocol``: accuracy, TV, W1, JSD,
    log score, KL, Brier (:mod:`subgroup_values.stats.scores`) and SimBench's normalised score, each with a 95% BCa
    interval over questions. Every system is scored on the same pairs (under ``disjoint``: the target folds'
    pairs, stacked, so the means are cross-fitted averages over folds). ``floor`` has the targets' floors
    (``floor_tv``, ``floor_w1``, ``floor_jsd``; and ``fold`` under ``disjoint``); its row's normalised score is
    the value a predictor at the floor would get."""
    from ..core.claims import PROTOCOLS
    from ..stats.scores import add_scores, normalised_score

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}.")
    if "uniform" not in systems:
        raise ValueError("a protocol table needs the uniform predictor (its normalised score's zero).")
    names = list(systems)
    keys = _keys(systems[names[0]])
    for name in names[1:]:
        if _keys(systems[name]) != keys:
            raise ValueError(f"{name} is scored on other pairs than {names[0]}: a table compares methods on the "
                             "same pairs.")
    on = ["qid", "subgroup_id"] + (["fold"] if "fold" in systems[names[0]] else [])
    ref = systems[names[0]][on + ["divergent"]]
    f = ref.merge(floor, on=on, how="left")
    if f["floor_tv"].isna().any():
        raise ValueError(f"The floor lacks {int(f.floor_tv.isna().sum())} of the {protocol} pairs: rebuild it "
                         "from the survey file.")
    scored = {name: add_scores(p) for name, p in systems.items()}
    rows = []
    for subset in SUBSETS:
        # a pair whose divergence is not known (a fold target without the other folds' cell) is in "all" only
        sel = {"all": slice(None), "consensus": _labelled(ref.divergent, False),
               "divergent": _labelled(ref.divergent, True)}
        idx = sel[subset]
        r0 = ref[idx] if subset != "all" else ref
        if r0.empty:
            continue
        tvs = pd.DataFrame({"qid": r0.qid.to_numpy()})
        for name, p in scored.items():
            d = r0[on].merge(p.drop(columns=["divergent"], errors="ignore"), on=on, how="left")
            cols = pd.DataFrame({"qid": d.qid.to_numpy()} | {m: d[c].to_numpy(float) for c, m in
                                                             SCORE_METRICS.items()})
            ci = mean_bootstrap(cols, list(SCORE_METRICS.values()), n_boot=n_boot, seed=seed)
            row = {"method": name, "protocol": protocol, "pairs": subset, "n_pairs": len(d),
                   "questions": d.qid.nunique()}
            for m in SCORE_METRICS.values():
                row |= {m: ci.loc[m, "estimate"], f"{m}_lo": ci.loc[m, "lo"], f"{m}_hi": ci.loc[m, "hi"]}
            rows.append(row)
            tvs[name] = d["tv"].to_numpy(float)
        fl = r0.merge(floor, on=on, how="left")
        ci = mean_bootstrap(fl.assign(tv=fl.floor_tv, w1=fl.floor_w1, jsd=fl.floor_jsd), ["tv", "w1", "jsd"],
                            n_boot=n_boot, seed=seed)
        row = {"method": "noise_floor", "protocol": protocol, "pairs": subset, "n_pairs": len(fl),
               "questions": fl.qid.nunique()}
        for m in ("tv", "w1", "jsd"):
            row |= {m: ci.loc[m, "estimate"], f"{m}_lo": ci.loc[m, "lo"], f"{m}_hi": ci.loc[m, "hi"]}
        rows.append(row)
        tvs["noise_floor"] = fl["floor_tv"].to_numpy(float)
        norm = normalised_score(tvs, n_boot=n_boot, seed=seed).set_index("method")
        for r in rows:
            if r["pairs"] == subset and r["method"] in norm.index:
                r |= norm.loc[r["method"]].to_dict()
    table = pd.DataFrame(rows)
    table["pairs"] = pd.Categorical(table["pairs"], SUBSETS, ordered=True)
    return table.sort_values(["pairs", "tv"]).reset_index(drop=True)


# ---- the systems of each protocol ----------------------------------------------------------------------------

#: The non-LLM predictors of :mod:`subgroup_values.evaluation.baselines` every protocol table shows.
BASELINE_KINDS = ("uniform", "population_mode", "population_mode_point", "compositional", "log_linear", "true_mode")


def score_on(preds: pd.DataFrame, targets: pd.DataFrame) -> pd.DataFrame:
    """A model's predictions (probabilities per (qid, subgroup_id); they depend on no survey answer) scored
    against other targets (``targets``: a pairs table, e.g. a fold's: its truth, modes and pair columns). Not the
    re-scoring of saved predictions against their own table, which is :func:`subgroup_values.evaluation.runs.rescore`."""
    from ..stats.metrics import score_pairs
    from ..survey.dataset import pair_frame
    from ..survey.questions import load_questions

    keep = [c for c in ("qid", "subgroup_id", "choice", "probs", "option_mass", "reply", "status", "expected")
            if c in preds]
    frame = pair_frame(targets, {q.qid: q for q in load_questions(rule="all")})
    out = score_pairs(frame.merge(preds[keep], on=["qid", "subgroup_id"], how="inner"))
    out.attrs = dict(targets.attrs)  # the targets' study (a merge of frames with different attrs drops them)
    return out


def paper_systems(pairs: pd.DataFrame, all_pairs: pd.DataFrame, resp, runs: dict[str, pd.DataFrame],
                  lambda_int: float | None = None) -> dict[str, pd.DataFrame]:
    """Every predictor under the ``paper`` protocol on ``pairs``: the baselines (inputs: ``all_pairs``, every
    respondent), the log-linear rule with the cell's own respondents left out (the harsh bound), raking and the
    regression on all respondents (``resp``; None without the survey file: left out), the model runs and their
    LB1/LB2 point masses."""
    from ..evaluation import baselines, classical
    from . import folds

    systems = {k: baselines.predictions(pairs, all_pairs, k) for k in BASELINE_KINDS}
    systems["log_linear_leave_cell_out"] = folds.leave_cell_out(pairs, all_pairs)
    if resp is not None:  # respondent-level predictors (need the survey file)
        systems["raking"] = classical.raking(resp, pairs)
        systems["regression"] = classical.regression(resp, pairs, lambda_int)
    for name, preds in runs.items():
        p = preds.merge(pairs[["qid", "subgroup_id"]], on=["qid", "subgroup_id"])
        systems[name] = p
        systems |= point_masses(p, name)
    return systems


def disjoint_systems(fd, table: pd.DataFrame, runs: dict[str, pd.DataFrame], n_boot: int = 200,
                     n_splits: int = 50, seed: int = 0, progress: bool = False):
    """Every predictor under the ``disjoint`` protocol, per target fold of ``fd`` (:class:`folds.FoldData`;
    ``table``: its :func:`folds.fold_pairs`): targets from the fold, every input from the other folds.
    ``runs`` are models whose predictions use no survey answer (zero-shot with the persona template). Returns
    (systems stacked over folds with a ``fold`` column, the target folds' floor, the chosen penalties)."""
    from ..evaluation import baselines, classical
    from ..survey.subgroups import find_subgroups
    from . import folds
    from .noise_floor import noise_floor

    parts: dict[str, list] = {}
    floors, penalties = [], {}
    for f in range(fd.k):
        t, i = folds.targets(table, f), folds.inputs(table, f)
        if runs:  # the targets the models were run on
            first = next(iter(runs.values()))
            t = t.merge(first[["qid", "subgroup_id"]], on=["qid", "subgroup_id"])
        resp = classical.Respondents(fd.inputs_of(f), fd.questions, fd.study)
        lam, _ = classical.choose_penalty(resp, seed=seed)
        penalties[f] = lam
        got = {k: baselines.predictions(t, i, k) for k in BASELINE_KINDS}
        got["raking"] = classical.raking(resp, t)
        got["regression"] = classical.regression(resp, t, lam)
        for name, preds in runs.items():
            got[name] = score_on(preds, t)
            got |= point_masses(got[name], name)
        for name, p in got.items():
            parts.setdefault(name, []).append(p.assign(fold=f))
        tsurvey = fd.targets_of(f)
        subs = find_subgroups(tsurvey, list(fd.study.ood_strata), min_size=fd.study.min_group_size, study=fd.study)
        qs = [q for q in fd.questions if q.qid in set(t.qid)]
        floors.append(noise_floor(tsurvey, qs, subs, t, n_boot, n_splits, seed + f, progress, study=fd.study).assign(fold=f))
    systems = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    div = folds.other_folds_divergence(table)
    return {k: independent_divergence(v, div) for k, v in systems.items()}, pd.concat(floors, ignore_index=True), penalties


def independent_divergence(preds: pd.DataFrame, div: pd.DataFrame) -> pd.DataFrame:
    """``preds`` (fold targets, with ``fold``) with its ``divergent`` column replaced by the classification from
    the other folds' respondents (:func:`.folds.other_folds_divergence`; missing where no other fold holds the
    cell), the rows in their order."""
    on = ["fold", "qid", "subgroup_id"]
    out = preds.drop(columns=["divergent"], errors="ignore").merge(div[on + ["divergent"]], on=on, how="left")
    if len(out) != len(preds):
        raise ValueError("other_folds_divergence has duplicate target pairs.")
    return out


# ---- the finding as claims -----------------------------------------------------------------------------------

def best_predictor(table: pd.DataFrame, models: list[str], subset: str = "all") -> str:
    """The non-LLM predictor with the lowest TV (references and model point masses excluded)."""
    return candidates(table, models, subset)[0]


def candidates(table: pd.DataFrame, models: list[str], subset: str = "all") -> list[str]:
    """The non-LLM predictors (no references, no point masses, no leave-cell-out bound), by TV."""
    t = table[table.pairs == subset]
    cand = t[~t.method.isin(list(REFERENCES) + list(models)) & ~t.method.str.endswith(("_lb1", "_lb2"))
             & (t.method != "log_linear_leave_cell_out")]
    return cand.sort_values("tv").method.tolist()


def tied_best(table: pd.DataFrame, models: list[str], subset: str = "all") -> list[str]:
    """The best predictor and every other whose mean TV lies inside the best one's interval (tied)."""
    t = table[table.pairs == subset].set_index("method")
    order = candidates(table, models, subset)
    best = order[0]
    return [m for m in order if t.loc[m, "tv"] <= t.loc[best, "tv_hi"]]


def floor_gap(systems: dict[str, pd.DataFrame], floor: pd.DataFrame, methods: list[str], n_boot: int = 1000,
              seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Paired: per pair, each method's TV minus the pair's floor; mean with a BCa interval over questions
    (``level`` chosen by the caller for the family of verdicts), on all and on divergent pairs. The interval
    treats each floor as exact; ``gap_lo_wide`` / ``gap_hi_wide`` widen it on each side by the floor estimator's
    measured bias bound at each pair's size (:func:`.noise_floor.bias_bound` of its ``n_valid``: 8.5% at n = 31,
    5.5% at 50, 3% from 150) times its floor, averaged over the pairs (``floor_bias_bound``: that mean as a
    share of the mean floor)."""
    from .noise_floor import bias_bound

    rows = []
    for m in methods:
        p = systems[m]
        on = ["qid", "subgroup_id"] + (["fold"] if "fold" in p else [])
        d = p[on + ["tv", "divergent"]].merge(floor[on + ["floor_tv", "n_valid"]], on=on)
        d = d.assign(gap=d.tv - d.floor_tv, bias=bias_bound(d.n_valid) * d.floor_tv)
        for subset, g in (("all", d), ("divergent", d[_labelled(d.divergent, True)])):
            ci = mean_bootstrap(g, ["gap"], n_boot=n_boot, seed=seed, level=level)
            widen = float(g.bias.mean())
            if g.empty:  # no pair in the subset: no test, never a verdict
                rows.append({"method": m, "pairs": subset, "gap": np.nan, "gap_lo": np.nan, "gap_hi": np.nan,
                             "gap_lo_wide": np.nan, "gap_hi_wide": np.nan, "floor_mean": np.nan,
                             "floor_bias_bound": np.nan, "level": level, "n_pairs": 0, "questions": 0,
                             "degenerate": True})
                continue
            rows.append({"method": m, "pairs": subset, "gap": ci.loc["gap", "estimate"],
                         "gap_lo": ci.loc["gap", "lo"], "gap_hi": ci.loc["gap", "hi"],
                         "gap_lo_wide": ci.loc["gap", "lo"] - widen, "gap_hi_wide": ci.loc["gap", "hi"] + widen,
                         "floor_mean": float(g.floor_tv.mean()), "floor_bias_bound": widen / float(g.floor_tv.mean()),
                         "level": level, "n_pairs": len(g), "questions": int(g.qid.nunique()),
                         "degenerate": bool(ci.loc["gap", "degenerate"]) or g.qid.nunique() < 2})
    return pd.DataFrame(rows)


def gap_verdict(r) -> str:
    """The floor-gap verdict of a :func:`floor_gap` row: headroom / at the floor / below the floor from the widened
    interval; uninformative when the interval cannot say (no pair, one question, every resample the same)."""
    if bool(getattr(r, "degenerate", False)) or not (np.isfinite(r.gap_lo_wide) and np.isfinite(r.gap_hi_wide)):
        return "uninformative"
    return "headroom" if r.gap_lo_wide > 0 else "below the floor" if r.gap_hi_wide < 0 else "at the floor"


def coverage(pairs: pd.DataFrame, disjoint: dict[str, pd.DataFrame], k: int) -> dict:
    """What each protocol's targets cover: pairs and subgroups (the disjoint targets need 30+ respondents and
    answers in their fold, so they are the larger cells, at half their size for k = 2)."""
    first = next(iter(disjoint.values()))
    return {"paper": {"pairs": len(pairs), "subgroups": int(pairs.subgroup_id.nunique())},
            "disjoint": {"pairs": len(first), "distinct_pairs": int(first[["qid", "subgroup_id"]].drop_duplicates()
                                                                     .shape[0]),
                         "subgroups": int(first.subgroup_id.nunique()), "folds": k, "input_share": (k - 1) / k}}


def headroom_claims(tables: dict[str, pd.DataFrame], gaps: dict[str, pd.DataFrame], models: dict[str, list[str]],
                    country: str, source: str, zero_shot: list[str] = (), cover: dict | None = None) -> list:
    """The headroom finding. ``paper``: the targets' floor, uniform and every method's TV, with no verdict and
    no placement against the floor for any predictor whose inputs contain the targets' respondents (only the
    zero-shot models, which saw no survey answer, are placed); the best paper predictor's gap to the floor is
    stated as evidence of that leak only. ``disjoint``: the verdict family: for each non-LLM predictor in
    ``gaps["disjoint"]`` the paired gap to the floor, its interval widened by the floor's bias bound, and the
    verdict ``headroom`` (above 0), ``at the floor`` (holds 0) or ``below the floor`` (under 0; for TV a
    predictor other than the truth can come below the floor, so this is not impossible, only unexpected);
    the tied best predictors are named; coverage (``cover``) and the input share are stated."""
    from ..core.claims import Claim, fmt, fmt_ci

    out = []
    for protocol, t in tables.items():
        a = t[t.pairs == "all"].set_index("method")
        lo, hi = a.loc["noise_floor", "tv"], a.loc["uniform", "tv"]
        cov = (cover or {}).get(protocol, {})
        if protocol == "disjoint" and cov:
            scope = (f"{cov['pairs']:,} target pairs over {cov['folds']} folds ({cov['distinct_pairs']:,} distinct, "
                     f"{cov['subgroups']} subgroups: the cells with 30+ respondents and answers in a fold, each "
                     f"target half its cell; every input from the other {fmt(100 * cov['input_share'], 0)}% of "
                     f"the respondents. Not the paper protocol's targets: its numbers are not comparable)")
        elif cov:
            scope = f"{cov['pairs']:,} target pairs, {cov['subgroups']} subgroups"
        else:
            scope = f"{int(a.loc['uniform', 'n_pairs']):,} target pairs"
        out.append(Claim(
            id=f"headroom.{protocol}.floor", topic="headroom", statistic="mean noise floor (TV) of the targets",
            estimate=float(lo), lo=float(a.loc["noise_floor", "tv_lo"]), hi=float(a.loc["noise_floor", "tv_hi"]),
            method="split-half TV converted by the plug-in ratio, mean over pairs; BCa over questions",
            protocol=protocol, source=source,
            sentence=(f"{country}, {protocol} protocol ({scope}): the noise floor of the targets is TV "
                      f"{fmt_ci(lo, a.loc['noise_floor', 'tv_lo'], a.loc['noise_floor', 'tv_hi'])} and uniform "
                      f"{fmt(hi)}; a predictor at the floor would score {fmt(a.loc['noise_floor', 'normalised'], 1)} "
                      f"on SimBench's normalised scale.")))
        g = gaps[protocol].set_index(["method", "pairs"])
        if protocol == "paper":
            best = best_predictor(t, models.get(protocol, []))
            r = g.loc[(best, "all")]
            out.append(Claim(
                id="headroom.paper.leak", topic="headroom", statistic=f"TV minus floor, {best} (paper protocol)",
                estimate=float(r.gap), lo=float(r.gap_lo), hi=float(r.gap_hi), protocol="paper", source=source,
                method=f"paired per pair; mean with a {r.level:.0%} BCa interval over questions",
                sentence=(f"Under the paper protocol every non-LLM predictor is built from cells that contain the "
                          f"targets' own respondents, so it is not compared with the floor: {best} (TV "
                          f"{fmt_ci(a.loc[best, 'tv'], a.loc[best, 'tv_lo'], a.loc[best, 'tv_hi'])}) lies "
                          f"{fmt_ci(-r.gap, -r.gap_hi, -r.gap_lo, 4)} below the targets' floor, the mark of inputs "
                          f"that share the targets' sampling noise, not a measure of headroom.")))
        else:
            tested = [m for m, s in g.index if s == "all"]
            tied = [m for m in tied_best(t, models.get(protocol, [])) if m in tested]
            for m in tested:
                r = g.loc[(m, "all")]
                verdict = gap_verdict(r)
                where = f"{fmt((a.loc[m, 'tv'] - lo) / (hi - lo) * 100, 0)}% of the way from the floor to uniform"
                lead = ("One of the tied best predictors" if len(tied) > 1 else "The best predictor") \
                    if m in tied else "Predictor"
                out.append(Claim(
                    id=f"headroom.disjoint.gap.{m}", topic="headroom", statistic=f"TV minus floor, {m}",
                    estimate=float(r.gap), lo=float(r.gap_lo_wide), hi=float(r.gap_hi_wide), verdict=verdict,
                    method=(f"paired per pair; mean with a {r.level:.1%} BCa interval over questions (Bonferroni "
                            f"over the {len(tested)} non-LLM predictors), widened by the floor's bias bound at each "
                            f"pair's size ({fmt(100 * r.floor_bias_bound, 1)}% of the mean floor, "
                            f"{fmt(r.floor_bias_bound * r.floor_mean, 4)}) on each side"),
                    rule="headroom if the widened interval lies above 0; at the floor if it holds 0; below the "
                         "floor if under 0",
                    protocol="disjoint", source=source, extra={"tied_best": m in tied},
                    sentence=(f"{lead}, {m}: TV {fmt_ci(a.loc[m, 'tv'], a.loc[m, 'tv_lo'], a.loc[m, 'tv_hi'])} "
                              f"({where}; log score {fmt(a.loc[m, 'log_score'])} bits, normalised score "
                              f"{fmt(a.loc[m, 'normalised'], 1)}); its gap to the targets' floor, for a predictor "
                              f"built from half the respondents aimed at targets of half a cell, is "
                              f"{fmt(r.gap, 4)} [{fmt(r.gap_lo_wide, 4)}, {fmt(r.gap_hi_wide, 4)}]: {verdict}.")))
        for m in models.get(protocol, []):
            if m not in a.index:
                continue
            placed = m in zero_shot
            where = (f"{fmt((a.loc[m, 'tv'] - lo) / (hi - lo) * 100, 0)}% of the way from the floor to uniform; "
                     if placed else "trained on or shown cells that hold the targets' respondents, so not "
                                    "placed against the floor; ")
            out.append(Claim(
                id=f"headroom.{protocol}.{m}", topic="headroom", statistic=f"TV of {m}",
                estimate=float(a.loc[m, "tv"]), lo=float(a.loc[m, "tv_lo"]), hi=float(a.loc[m, "tv_hi"]),
                method="mean over pairs; BCa over questions", protocol=protocol, source=source,
                sentence=(f"{m} ({protocol}): TV {fmt_ci(a.loc[m, 'tv'], a.loc[m, 'tv_lo'], a.loc[m, 'tv_hi'])} "
                          f"({where}normalised score {fmt(a.loc[m, 'normalised'], 1)}).")))
    return out


def worth_claims(wt: pd.DataFrame, prior_k: pd.DataFrame, country: str, source: str) -> list:
    """Claims (``disjoint``) of each predictor's pooled worth in respondents, Trott's (2024) "number needed to
    beat" (a number only where it lies on the observed curve, m <= 40; beyond it, "more than 40"; the extrapolation
    stays in the table, labelled), always beside uniform's on the same pairs and beside the worth against samples
    smoothed toward uniform; and of what k real respondents of the target fold add to each prior, beside uniform as
    a prior (:mod:`subgroup_values.analysis.worth`)."""
    from ..core.claims import Claim, fmt
    from .worth import MAX_M  # a worth above it is an extrapolation beyond the observed curve

    def worth_words(r) -> str:
        if r.kind != "curve":
            return f"more than {r.max_m}"
        return f"{fmt(r.worth, 1)} [{fmt(r.worth_lo, 1)}, {fmt(r.worth_hi, 1)}]"

    def smoothed_words(r) -> str:
        if "worth_smoothed" not in r._fields or not np.isfinite(r.worth_smoothed):
            return "more than " + str(r.max_m) if "worth_smoothed" in r._fields else "not computed"
        if r.worth_smoothed == 0:
            return "less than one (it is farther than uniform nudged by one real answer)"
        return f"{fmt(r.worth_smoothed, 1)} [{fmt(r.worth_smoothed_lo, 1)}, {fmt(r.worth_smoothed_hi, 1)}]"

    out = []
    rows = wt[wt.group == "all"]
    uniform = next(rows[rows.method == "uniform"].itertuples(index=False), None)
    for r in rows.itertuples(index=False):
        m = r.max_m
        on_curve = r.kind == "curve"
        beside = (f"; a uniform guess is worth {worth_words(uniform)} on the same pairs (paired TV difference from "
                  f"uniform {fmt(r.tv_minus_uniform, 3)} [{fmt(r.tv_minus_uniform_lo, 3)}, "
                  f"{fmt(r.tv_minus_uniform_hi, 3)}])"
                  if uniform is not None and r.method != "uniform" and "tv_minus_uniform" in r._fields else "")
        scope = (f"95% intervals over questions, not adjusted over the {len(rows)} predictors, conditional on these "
                 f"{int(r.subgroups)} subgroups" if "subgroups" in r._fields else "95% intervals over questions")
        out.append(Claim(
            id=f"headroom.disjoint.worth.{r.method}", topic="headroom", statistic=f"worth in respondents, {r.method}",
            estimate=float(r.worth) if on_curve else None, lo=float(r.worth_lo) if on_curve else None,
            hi=float(r.worth_hi) if on_curve else None, verdict="on the curve" if on_curve else f"more than {m}",
            protocol="disjoint", source=source,
            method=f"Trott's (2024) number needed to beat: pooled curve E TV(raw sample of m own respondents, "
                   f"target), m = 1..{m}, inverted at the mean TV; {r.interval}; beside uniform's on the same pairs "
                   "and the same inversion against add-one smoothed samples",
            extra={"uniform_worth": None if uniform is None or uniform.kind != "curve" else float(uniform.worth),
                   "worth_smoothed": float(r.worth_smoothed) if "worth_smoothed" in r._fields
                   and np.isfinite(r.worth_smoothed) else None},
            sentence=(f"{country}, disjoint: {r.method} is worth {worth_words(r)} of the subgroup's own respondents as "
                      f"a raw sample (Trott's \"number needed to beat\"){beside}; against samples smoothed toward "
                      f"uniform (one pseudo-answer per option) it is worth {smoothed_words(r)} ({r.pairs:,} target "
                      f"pairs with {m}+ own respondents in the other folds; mean TV {fmt(r.mean_tv)} against "
                      f"{fmt(r.curve_at_1)} for one raw own respondent and {fmt(r.curve_at_max)} for {m}; {scope}).")))
    uni = prior_k[prior_k.method == "uniform"]
    for r in prior_k.itertuples(index=False):
        k = int(r.k)
        adds = (f"{k} respondents improve on the prior" if r.change_hi < 0 else
                f"{k} respondents worsen the prior" if r.change_lo > 0 else f"no clear change from {k} respondents")
        vs_uniform = (f"; uniform as a prior by the same rule reaches {fmt(float(uni.tv_prior_plus_k.iloc[0]))} "
                      f"with the same {k} (paired difference {fmt(r.versus_uniform_prior, 4)} "
                      f"[{fmt(r.versus_uniform_prior_lo, 4)}, {fmt(r.versus_uniform_prior_hi, 4)}]: "
                      + ("better than uniform as a prior" if r.versus_uniform_prior_hi < 0 else
                         "worse than uniform as a prior" if r.versus_uniform_prior_lo > 0 else
                         "no clear difference from uniform as a prior") + ")"
                      if len(uni) and r.method != "uniform" else "")
        strength = (f"strength {fmt(r.strength, 1)}, its worth measured on the other folds" +
                    (", extrapolated beyond the curve" if r.strength > MAX_M else ""))
        out.append(Claim(
            id=f"headroom.disjoint.prior_plus_{k}.{r.method}", topic="headroom",
            statistic=f"TV change from adding {k} respondents to the {r.method} prior",
            estimate=float(r.change), lo=float(r.change_lo), hi=float(r.change_hi),
            verdict=adds, protocol="disjoint", source=source,
            method=(f"Dirichlet prior (strength {fmt(r.strength, 1)}: its worth on the other folds' targets) + {k} "
                    f"respondents drawn from the target fold's cell and removed from its target (never inputs of "
                    f"the prior); prior, prior + {k} and the {k} alone scored on the same reduced target; paired per "
                    f"pair; {r.interval} at {100 * r.level:.1f}% (Bonferroni over the {round(0.05 / (1 - r.level))} "
                    f"priors; {100 * r.level_uniform:.1f}% for the comparisons with uniform as a prior)"),
            extra={"tv_prior": float(r.tv_prior), "tv_prior_plus_k": float(r.tv_prior_plus_k),
                   "tv_k_alone": float(r.tv_k_alone), "versus_alone": float(r.versus_alone),
                   "versus_alone_lo": float(r.versus_alone_lo), "versus_alone_hi": float(r.versus_alone_hi)}
            | ({"versus_uniform_prior": float(r.versus_uniform_prior),
                "versus_uniform_prior_lo": float(r.versus_uniform_prior_lo),
                "versus_uniform_prior_hi": float(r.versus_uniform_prior_hi)} if r.method != "uniform" else {}),
            sentence=(f"{country}, disjoint: {r.method} as a Dirichlet prior ({strength}) has TV "
                      f"{fmt(r.tv_prior)}; with {k} respondents of the subgroup "
                      f"drawn from the target fold (and removed from its target) {fmt(r.tv_prior_plus_k)} (change "
                      f"{fmt(r.change, 4)} [{fmt(r.change_lo, 4)}, {fmt(r.change_hi, 4)}]: {adds}); the {k} "
                      f"respondents alone {fmt(r.tv_k_alone)}, so the prior changes their TV by "
                      f"{fmt(r.versus_alone, 4)} [{fmt(r.versus_alone_lo, 4)}, {fmt(r.versus_alone_hi, 4)}]"
                      f"{vs_uniform} ({r.pairs:,} target pairs with {k + int(r.min_target)}+ respondents in the "
                      f"fold; every TV here is against the {int(r.min_target)}+ respondents left after the draw, not "
                      f"comparable with the disjoint table's; intervals over questions, conditional on these "
                      f"{int(r.subgroups)} subgroups).")))
    return out


# ---- fine-tunes under the disjoint protocol: trained on one target fold's inputs, evaluated on its targets -----

def _fold_spec(spec: str) -> list[tuple[str, str, str]]:
    """``name=profile/run`` entries of a fold-run spec, as (name, profile, run)."""
    out = []
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        name, sep, path = item.partition("=")
        if not sep or path.count("/") != 1 or not name:
            raise ValueError(f"disjoint run {item!r}: expected name=profile/run (e.g. sft_disjoint=disjoint/sft_ood).")
        out.append((name, *path.split("/")))
    return out


def fold_runs(spec: str, results: str = "results") -> tuple[dict[str, tuple[pd.DataFrame, int]], list[str]]:
    """Model runs trained and evaluated on one target fold's dataset (:func:`subgroup_values.analysis.folds.
    write_fold_dataset`; the ``disjoint`` profile). ``spec``: ``name=profile/run`` entries separated by commas
    (e.g. ``sft_disjoint=disjoint/sft_ood``). Each run's record must say it was evaluated under the disjoint
    protocol and on which fold. Returns ({name: (predictions, fold)}, notes on the runs that are not there)."""
    import json
    from pathlib import Path

    loaded, notes = {}, []
    for name, prof, run in _fold_spec(spec):
        folder = Path(results) / prof / run
        if not (folder / "predictions.parquet").is_file():
            notes.append(f"{name}: no predictions at {folder}/ (make all PROFILE={prof}); left out")
            continue
        record = json.loads((folder / "metrics.json").read_text())
        data = record.get("data") or {}
        if data.get("protocol") != "disjoint" or data.get("fold") is None:
            raise ValueError(f"{folder}: its record does not say it was evaluated on a fold's dataset (data.protocol "
                             f"= {data.get('protocol')!r}, fold = {data.get('fold')!r}); a run on the paper "
                             "protocol's pairs cannot be placed under the disjoint protocol. Evaluate it with "
                             "pairs_file pointing at a fold's dataset (configs/disjoint.yaml).")
        preds = pd.read_parquet(folder / "predictions.parquet")
        loaded[name] = (preds, int(data["fold"]))
    return loaded, notes


def fold_training(spec: str, results: str = "results") -> dict[str, dict]:
    """Per fold run of ``spec`` (as :func:`fold_runs`): the training pairs and the loss of the fine-tune behind it,
    from its record (``results/<profile>/finetune/<run without _ood>_run.json``); runs without one are left out."""
    import json
    from pathlib import Path

    out = {}
    for name, prof, run in _fold_spec(spec):
        rec = Path(results) / prof / "finetune" / f"{run.removesuffix('_ood')}_run.json"
        if rec.is_file():
            r = json.loads(rec.read_text())
            out[name] = {"pairs": int(r["data"]["train_pairs"]), "loss": r["config"]["script"].get("loss", "modal"),
                         "steps": (r.get("training") or {}).get("global_step"),
                         "revision": (r.get("git_revision") or "")[:7]}
    return out


def fold_systems(disjoint: dict[str, pd.DataFrame], fold_floor: pd.DataFrame, table: pd.DataFrame,
                 runs: dict[str, tuple[pd.DataFrame, int]], fold: int) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """Every disjoint predictor restricted to target fold ``fold``, with the fold-trained ``runs`` of that fold
    (:func:`fold_runs`) scored against the fold's targets, and their LB1/LB2 point masses; and the fold's floor.
    A fold run must cover exactly the fold's target pairs the other predictors are scored on."""
    from . import folds

    systems = {n: s[s.fold == fold].reset_index(drop=True) for n, s in disjoint.items()}
    keys = systems["uniform"][["qid", "subgroup_id"]]
    t = folds.targets(table, fold).merge(keys, on=["qid", "subgroup_id"])
    for name, (preds, f) in runs.items():
        if f != fold:
            continue
        p = score_on(preds, t)
        if len(p) != len(keys):
            raise ValueError(f"{name} was evaluated on {len(p):,} of fold {fold}'s {len(keys):,} target pairs: a fold "
                             "run must be evaluated on every target pair of its fold (no limit), so that it is "
                             "compared with the other predictors on the same pairs.")
        div = folds.other_folds_divergence(table)
        systems[name] = independent_divergence(p.assign(fold=fold), div)
        systems |= {k: independent_divergence(v.assign(fold=fold), div) for k, v in point_masses(p, name).items()}
    return systems, fold_floor[fold_floor.fold == fold].reset_index(drop=True)


def _training_differs(a: str, b: str, training: dict | None) -> str:
    """For two fold-trained runs: how their training differs, so a difference is not read as the loss alone."""
    ta, tb = (training or {}).get(a), (training or {}).get(b)
    if not (ta and tb):
        return ""
    diff = [f"{ta['loss']} vs {tb['loss']} loss"] if ta["loss"] != tb["loss"] else []
    if ta["pairs"] != tb["pairs"]:
        diff.append(f"{ta['pairs']:,} vs {tb['pairs']:,} training pairs")
    if ta.get("steps") and tb.get("steps") and ta["steps"] != tb["steps"]:
        diff.append(f"{ta['steps']} vs {tb['steps']} optimiser steps")
    if ta.get("revision") and tb.get("revision") and ta["revision"] != tb["revision"]:
        diff.append(f"code revisions {ta['revision']} vs {tb['revision']}")
    return (" (the two fine-tunes differ in " + ", ".join(diff[:-1]) + " and " + diff[-1]
            + ": the difference is not the loss's alone; one seed each)"
            if len(diff) > 1 else f" (the two fine-tunes differ in {diff[0]} only; one seed each)" if diff else "")


def paired_tv(systems: dict[str, pd.DataFrame], a: str, b: str, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Paired over pairs: mean TV of ``a`` minus that of ``b`` on the same pairs, with a BCa interval over
    questions at ``level`` (chosen by the caller for the family), and the relative change (b's mean as base)."""
    on = ["qid", "subgroup_id"] + (["fold"] if "fold" in systems[a] else [])
    d = systems[a][on + ["tv"]].merge(systems[b][on + ["tv"]], on=on, suffixes=("_a", "_b"))
    ci = mean_bootstrap(d.assign(diff=d.tv_a - d.tv_b), ["diff"], n_boot=n_boot, seed=seed, level=level)
    return {"a": a, "b": b, "diff": float(ci.loc["diff", "estimate"]), "lo": float(ci.loc["diff", "lo"]),
            "hi": float(ci.loc["diff", "hi"]), "relative": float(ci.loc["diff", "estimate"] / d.tv_b.mean()),
            "level": level, "n_pairs": len(d), "questions": int(d.qid.nunique())}


def fold_run_claims(table: pd.DataFrame, gaps: pd.DataFrame, comparisons: pd.DataFrame, worth: pd.DataFrame | None,
                    runs: list[str], fold: int, country: str, source: str, training: dict | None = None,
                    subgroups: tuple[int, int] | None = None) -> list:
    """The fine-tunes under the disjoint protocol, on target fold ``fold``: each run's TV, its gap to the fold's
    floor (Bonferroni over the runs, widened by the floor's bias bound, verdict as :func:`headroom_claims`), its
    paired TV difference to the best non-LLM predictor and to the zero-shot model on the same pairs (Bonferroni
    over the family of comparisons), and its worth in respondents on the fold's curve beside the zero-shot model's
    and uniform's on the same pairs. ``training``: per run, the training pairs, loss and optimiser steps (from the
    fine-tune's record); ``subgroups``: (the fold's target subgroups, the OOD subgroups of the paper protocol)."""
    from ..core.claims import Claim, fmt, fmt_ci

    out = []
    scope = (f"one fold, not cross-fitted, one training seed; {subgroups[0]} of the {subgroups[1]} OOD subgroups have "
             "30+ respondents in the fold" if subgroups else "one fold, not cross-fitted, one training seed")
    a = table[table.pairs == "all"].set_index("method")
    lo, hi = a.loc["noise_floor", "tv"], a.loc["uniform", "tv"]
    n = int(a.loc["uniform", "n_pairs"])
    g = gaps.set_index(["method", "pairs"])
    for m in runs:
        if m not in a.index:
            continue
        r = g.loc[(m, "all")]
        verdict = gap_verdict(r)
        tr = (training or {}).get(m) or {}
        how = (f"trained on {tr['pairs']:,} training pairs of the other fold's respondents ({tr['loss']} loss)"
               if tr else "trained on the other fold's respondents only")
        out.append(Claim(
            id=f"headroom.disjoint.fold{fold}.gap.{m}", topic="headroom", statistic=f"TV minus floor, {m} (fold {fold})",
            estimate=float(r.gap), lo=float(r.gap_lo_wide), hi=float(r.gap_hi_wide), verdict=verdict,
            method=(f"paired per pair; mean with a {r.level:.1%} BCa interval over questions (Bonferroni over the "
                    f"{len(runs)} fine-tunes), widened by the floor's bias bound on each side"),
            rule="headroom if the widened interval lies above 0; at the floor if it holds 0; below the floor if under 0",
            protocol="disjoint", source=source, extra={"fold": fold} | ({"training": tr} if tr else {}),
            sentence=(f"{country}, disjoint, target fold {fold} only ({n:,} pairs; {scope}, for time; its recipe was "
                      f"set under the paper protocol): {m}, {how}, "
                      f"has TV {fmt_ci(a.loc[m, 'tv'], a.loc[m, 'tv_lo'], a.loc[m, 'tv_hi'])} "
                      f"({fmt((a.loc[m, 'tv'] - lo) / (hi - lo) * 100, 0)}% of the way from the fold's floor "
                      f"{fmt(lo)} to uniform {fmt(hi)}; log score {fmt(a.loc[m, 'log_score'])} bits); its gap to the "
                      f"floor is {fmt(r.gap, 4)} [{fmt(r.gap_lo_wide, 4)}, {fmt(r.gap_hi_wide, 4)}]: {verdict}.")))
    for c in comparisons.itertuples(index=False):
        verdict = ("lower TV" if c.hi < 0 else "higher TV" if c.lo > 0 else "no clear difference")
        out.append(Claim(
            id=f"headroom.disjoint.fold{fold}.{c.a}.vs.{c.b}", topic="headroom",
            statistic=f"TV of {c.a} minus TV of {c.b} (fold {fold})", estimate=c.diff, lo=c.lo, hi=c.hi,
            verdict=verdict, protocol="disjoint", source=source, extra={"fold": fold, "relative": c.relative},
            method=(f"paired per pair; mean with a {c.level:.2%} BCa interval over questions (Bonferroni over the "
                    f"{len(comparisons)} comparisons)"),
            rule="lower / higher TV if the interval excludes 0; else no clear difference",
            sentence=(f"{country}, disjoint, target fold {fold} only ({scope}; intervals over its questions, "
                      f"conditional on its subgroups): {c.a} against {c.b} on the "
                      f"same {c.n_pairs:,} pairs: TV "
                      f"difference {fmt(c.diff, 4)} [{fmt(c.lo, 4)}, {fmt(c.hi, 4)}] (absolute; "
                      f"{fmt(100 * c.relative, 1)}% relative to {c.b}): {verdict}" + _training_differs(c.a, c.b, training)
                      + ".")))
    if worth is not None:
        allw = worth[worth.group == "all"].set_index("method")

        def beside(name: str) -> str:
            if name not in allw.index or allw.loc[name, "kind"] != "curve":
                return ""
            w = allw.loc[name]
            return f"{name} {fmt(w.worth, 1)} [{fmt(w.worth_lo, 1)}, {fmt(w.worth_hi, 1)}]"

        others = "; ".join(x for x in (beside("base_ood"), beside("uniform")) if x)
        for r in worth[(worth.group == "all") & worth.method.isin(runs)].itertuples(index=False):
            on_curve = r.kind == "curve"
            value = (f"{fmt(r.worth, 1)} [{fmt(r.worth_lo, 1)}, {fmt(r.worth_hi, 1)}]" if on_curve
                     else f"more than {r.max_m}")
            out.append(Claim(
                id=f"headroom.disjoint.fold{fold}.worth.{r.method}", topic="headroom",
                statistic=f"worth in respondents, {r.method} (fold {fold})",
                estimate=float(r.worth) if on_curve else None, lo=float(r.worth_lo) if on_curve else None,
                hi=float(r.worth_hi) if on_curve else None,
                verdict="on the curve" if on_curve else f"more than {r.max_m}", protocol="disjoint", source=source,
                method=f"pooled curve of fold {fold}'s targets, m = 1..{r.max_m}, inverted at the mean TV; {r.interval}",
                extra={"fold": fold},
                sentence=(f"{country}, disjoint, target fold {fold} only ({scope}): {r.method} is "
                          f"worth {value} of the subgroup's own respondents (on the {r.pairs:,} target pairs with "
                          f"{r.max_m}+ own respondents in the other fold, where its mean TV is {fmt(r.mean_tv)} "
                          f"against {fmt(r.curve_at_1)} for one own respondent; 95% intervals, not adjusted over the "
                          "fine-tunes" + (f"; on the same pairs: {others}, no paired test" if others else "") + ").")))
    return out
