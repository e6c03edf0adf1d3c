"""Per-attribute contrasts the way the paper states them: "young personas are emulated better than elderly ones".

A contrast compares two sets of attribute values of one dimension (``21-24`` vs ``65+``). On each question it is
the mean score over the subgroups that hold one side's values minus the mean over the other side's subgroups
(each side's subgroups present on that question); the contrast is the mean of these per-question differences
over the questions where both sides are present. So it is paired over questions: a question that every persona
finds hard moves both sides alike and drops out of the difference.

- interval: the two-stage bootstrap of :mod:`.disparities` (questions, then each pair's respondents), BCa with
  the jackknife over questions;
- test: a sign-flip permutation test of the per-question differences (two-sided);
- verdict, decided by the test and the interval shown together, each with Holm's step-down over the split's
  contrast tests (the permutation p-values Holm-adjusted; the interval at the level Holm tests it at, so that it
  excludes 0 exactly when it rejects: :func:`.bootstrap.holm_intervals`): "the paper's direction" or "against the
  paper's direction" (by the estimate's sign, for this model) when both reject, else "no clear difference" (where
  one rejects and the other does not, the sentence says so); the unadjusted 95% interval is kept as
  ``lo_95`` / ``hi_95``;
- a contrast whose sides hold different partner values (the Chinese side has religion subgroups the Malay side
  lacks) says so in its note (``composition_differs``);
- a side that is one subgroup (Roman Catholic on the OOD split is "Chinese, Roman Catholic") is flagged as
  confounded: the contrast also compares that subgroup's other attributes;
- a contrast that cannot be computed on a split (no OOD subgroup has a sex) is a row that says why;
- each contrast is also computed on matched partners only (``matching``): pairs of subgroups of the same stratum
  whose other attributes are equal ("25-34, Chinese" vs "25-34, Malay"), the per-question difference averaged over
  the partner pairs; this removes the composition difference at the cost of fewer subgroups.

The paper names its directions in words (:data:`.paper.BIAS_DIRECTIONS`); :data:`CONTRASTS` maps them onto our
attribute values: "young" is the youngest band (21-24), "elderly" the oldest (65+), "Christian" Protestant and
Roman Catholic together (and each alone).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import paper
from ..core.claims import Claim, fmt_ci
from ..stats.bootstrap import holm_intervals, interval, is_degenerate, resample_counts
from ..stats.disparities import LOWER_IS_BETTER, METRIC_LABELS, Panel, holm, level_label, method_name

#: (contrast, dimension, favoured values, disfavoured values, the paper's words favoured / disfavoured).
CONTRASTS = (
    ("young vs elderly", "age", ("21-24",), ("65+",), "young", "elderly"),
    ("male vs female", "sex", ("Male",), ("Female",), "male", "female"),
    ("Chinese vs Malay", "ethnicity", ("Chinese",), ("Malay",), "Chinese", "Malay"),
    ("Chinese vs Indian", "ethnicity", ("Chinese",), ("Indian",), "Chinese", "Indian"),
    ("Christian vs Muslim", "religion", ("Protestant", "Roman Catholic"), ("Muslim",), "Christian", "Muslim"),
    ("Protestant vs Muslim", "religion", ("Protestant",), ("Muslim",), "Christian", "Muslim"),
    ("Roman Catholic vs Muslim", "religion", ("Roman Catholic",), ("Muslim",), "Christian", "Muslim"),
)


def _check_against_paper() -> None:
    words = {(d, f, u) for d, f, u in paper.BIAS_DIRECTIONS}
    missing = words - {(d, f, u) for _, d, _, _, f, u in CONTRASTS}
    if missing:
        raise RuntimeError(f"contrasts.CONTRASTS does not test the paper's directions {sorted(missing)}.")


_check_against_paper()


def _members(subgroups: pd.DataFrame, sids: list, dim: str, values: tuple[str, ...]) -> np.ndarray:
    """Positions in ``sids`` of the subgroups whose ``dim`` is one of ``values``."""
    attr = subgroups.drop_duplicates("subgroup_id").set_index("subgroup_id")
    if dim not in attr:
        return np.array([], dtype=int)
    hold = attr[dim].reindex(sids).isin(values).to_numpy()
    return np.flatnonzero(hold)


def _differences(x: np.ndarray, present: np.ndarray, a: np.ndarray, b: np.ndarray,
                 matched: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-question difference of side means (..., Q) and where both sides are present (Q,). ``matched``: ``a``
    and ``b`` are partners (``a[i]`` and ``b[i]`` share every other attribute) and the difference is the mean over
    the partner pairs present on the question."""
    if matched:
        both = present[:, a] * present[:, b]
        n = both.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = ((x[..., a] - x[..., b]) * both).sum(-1) / n
        return np.where(n > 0, d, 0.0), n > 0
    na, nb = present[:, a].sum(1), present[:, b].sum(1)
    valid = (na > 0) & (nb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = (x[..., a] * present[:, a]).sum(-1) / na - (x[..., b] * present[:, b]).sum(-1) / nb
    return np.where(valid, d, 0.0), valid


def _partners(frame: pd.DataFrame, sids: list, dim: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (one subgroup from each side) of the same stratum whose other attributes are all equal."""
    attr = frame.drop_duplicates("subgroup_id").set_index("subgroup_id").reindex(sids)
    others = [d for d in ("sex", "age", "ethnicity", "religion") if d in attr and d != dim]

    def key(i):
        return (attr.stratum.iloc[i], *(attr[d].iloc[i] if isinstance(attr[d].iloc[i], str) else "" for d in others))

    pairs = [(i, j) for i in a for j in b if key(i) == key(j)]
    return np.array([i for i, _ in pairs], dtype=int), np.array([j for _, j in pairs], dtype=int)


def contrast(panel: Panel, column: str, a: np.ndarray, b: np.ndarray, n_boot: int = 1000, n_perm: int = 10000,
             seed: int = 0, level: float = 0.95, method: str = "bca", matched: bool = False) -> dict:
    """Estimate, two-stage interval and sign-flip permutation p of one contrast on one panel column."""
    k = panel.column(column)
    d, valid = _differences(panel.values[:, :, k], panel.present, a, b, matched)
    n = int(valid.sum())
    if n < 2:
        return {"questions": n}
    est = float(d[valid].mean())
    w = resample_counts(len(panel.qids), n_boot, seed) * valid[None]
    db, _ = _differences(panel.draws[:n_boot, :, :, k].astype(float), panel.present, a, b, matched)
    with np.errstate(invalid="ignore", divide="ignore"):  # a resample with no question of both sides: NaN, left out
        boot = (w * db).sum(1) / w.sum(1)
    jack = (d[valid].sum() - d[valid]) / (n - 1)
    lo, hi = interval(est, boot, jack, level, method)
    rng = np.random.default_rng(seed + 1)
    dv = d[valid]
    exceed = 0
    for start in range(0, n_perm, 2000):
        c = min(2000, n_perm - start)
        signs = rng.integers(0, 2, (c, n)) * 2 - 1
        exceed += int(np.sum(np.abs(signs @ dv / n) >= abs(est) - 1e-12))
    return {"questions": n, "difference": est, "lo": lo, "hi": hi, "p_permutation": (1 + exceed) / (1 + n_perm),
            "degenerate": is_degenerate(boot), "_draws": (boot, jack)}


def _side(subgroups: pd.DataFrame, sids: list, idx: np.ndarray) -> str:
    names = subgroups.drop_duplicates("subgroup_id").set_index("subgroup_id").subgroup.reindex(sids)
    return "; ".join(names.iloc[idx].tolist())


def paper_bias(panels: dict[str, tuple[Panel, pd.DataFrame]], metrics: tuple[str, ...] = ("accuracy", "nmae"),
               models: tuple[str, ...] = ("base", "sft"), n_boot: int = 1000, n_perm: int = 10000, seed: int = 0,
               method: str = "bca", level: float = 0.95, alpha: float = 0.05) -> pd.DataFrame:
    """Every contrast of :data:`CONTRASTS` on every split, model and metric, beside the paper's direction.

    ``panels`` maps a split name (``ood``, ``train``) to its :func:`.disparities.build_panel` and the paired frame
    it was built from (for the subgroups' attributes and strata). Holm's adjustment runs over the testable rows
    of each split.
    """
    rows, kept = [], {}
    for split, (panel, frame) in panels.items():
        strata = ", ".join(sorted(frame.stratum.unique()))
        for name, dim, fav, dis, wfav, wdis in CONTRASTS:
            a = _members(frame, panel.sids, dim, fav)
            b = _members(frame, panel.sids, dim, dis)
            pa, pb = _partners(frame, panel.sids, dim, a, b)
            for model, m, matching in ((x, y, z) for x in models for y in metrics
                                       for z in ("all subgroups", "matched partners")):
                row = {"split": split, "pairs": len(frame), "contrast": name, "matching": matching,
                       "dimension": dim, "model": model, "metric": m,
                       "favoured": " + ".join(fav), "disfavoured": " + ".join(dis),
                       "paper": f"{wfav} better than {wdis} ({paper.BIAS_MODELS})",
                       "paper_sign": -1 if LOWER_IS_BETTER[m] else 1,
                       "subgroups_favoured": len(a), "subgroups_disfavoured": len(b),
                       "favoured_subgroups": _side(frame, panel.sids, a),
                       "disfavoured_subgroups": _side(frame, panel.sids, b), "note": ""}
                empty = [f"{dim} = {' or '.join(v)}" for v, idx in ((fav, a), (dis, b)) if len(idx) == 0]
                if empty:
                    row["note"] = (f"not testable on the {split} split: no {split} subgroup has "
                                   f"{' or '.join(empty)} (its strata: {strata})")
                    rows.append(row)
                    continue
                if matching == "matched partners":
                    row["partner_pairs"] = len(pa)
                    if len(pa) == 0:
                        row["note"] = (f"not testable on the {split} split with matched partners: no subgroup on "
                                       "one side shares its stratum and other attributes with one on the other")
                        rows.append(row)
                        continue
                    res = contrast(panel, f"{m}_{model}", pa, pb, n_boot=n_boot, n_perm=n_perm, seed=seed,
                                   level=level, method=method, matched=True)
                    if "difference" not in res:
                        row["note"] = f"not testable on the {split} split: the partners share fewer than 2 questions"
                        rows.append(row)
                        continue
                    kept[len(rows)] = res.pop("_draws")
                    row.update(res)
                    row["note"] = "matched: " + "; ".join(
                        f"{x} vs {y}" for x, y in zip(_side(frame, panel.sids, pa).split("; "),
                                                      _side(frame, panel.sids, pb).split("; ")))
                    rows.append(row)
                    continue
                res = contrast(panel, f"{m}_{model}", a, b, n_boot=n_boot, n_perm=n_perm, seed=seed,
                               level=level, method=method)
                if "difference" not in res:
                    row["note"] = (f"not testable on the {split} split: the two sides share fewer than 2 "
                                   "questions")
                    rows.append(row)
                    continue
                kept[len(rows)] = res.pop("_draws")
                row.update(res)
                one = [f"{' + '.join(v)} is one subgroup ({_side(frame, panel.sids, idx)})"
                       for v, idx in ((fav, a), (dis, b)) if len(idx) == 1]
                notes = []
                if one:
                    notes.append("confounded: " + "; ".join(one) + ", so the contrast also compares its other "
                                 "attributes")
                mix = _composition(frame, panel.sids, dim, a, b)
                row["composition_differs"] = bool(mix)
                if mix:
                    notes.append(mix)
                row["note"] = "; ".join(notes)
                rows.append(row)
    out = pd.DataFrame(rows)
    for col in ("questions", "difference", "lo", "hi", "p_permutation", "degenerate"):
        if col not in out:
            out[col] = np.nan
    out = out.rename(columns={"lo": "lo_95", "hi": "hi_95"})
    for col in ("level", "lo", "hi", "p_interval", "p_interval_holm", "p_holm", "endpoint_mc_se"):
        out[col] = np.nan
    out["borderline"] = False
    # Not members of a family: a matched contrast whose partner pairs are another contrast's (Christian vs Muslim
    # matched is Protestant vs Muslim matched where no Roman Catholic subgroup has a partner: the same test, kept
    # once, under the narrower contrast), and a contrast on too few questions for its sign-flip test to reach alpha
    # (the smallest two-sided p on n questions is 2^(1-n)).
    out["duplicate_of"] = ""
    if "partner_pairs" in out:
        m = out[(out.matching == "matched partners") & out.p_permutation.notna()]
        sides = m.favoured.str.count(r"\+") + m.disfavoured.str.count(r"\+")
        for _, g in m.assign(_sides=sides).groupby(["split", "model", "metric", "note"]):
            if len(g) > 1:
                keep = g.sort_values("_sides", kind="stable").index[0]
                out.loc[g.index.drop(keep), "duplicate_of"] = out.loc[keep, "contrast"]
    out["cannot_reject"] = out.p_permutation.notna() & (2.0 ** (1 - out.questions.fillna(0)) >= alpha)
    out["in_family"] = out.p_permutation.notna() & (out.duplicate_of == "") & ~out.cannot_reject
    # Over each split's family, Holm for both: the permutation p-values, and each interval at the level Holm's
    # step-down tests it at (it excludes 0 exactly when its Holm-adjusted bootstrap p is under alpha).
    for split in out.split.unique():
        t = out.index[(out.split == split) & out.in_family]
        if len(t):
            out.loc[t, "p_holm"] = holm(out.loc[t, "p_permutation"].to_numpy())
            hi = holm_intervals(out.loc[t, "difference"], [kept[i][0] for i in t], [kept[i][1] for i in t], alpha,
                                method)
            out.loc[t, "level"], out.loc[t, "lo"], out.loc[t, "hi"] = hi.level.to_numpy(), hi.lo.to_numpy(), hi.hi.to_numpy()
            out.loc[t, "p_interval"], out.loc[t, "p_interval_holm"] = hi.p_bootstrap.to_numpy(), hi.p_bootstrap_holm.to_numpy()
            out.loc[t, "endpoint_mc_se"], out.loc[t, "borderline"] = hi.endpoint_mc_se.to_numpy(), hi.borderline.to_numpy()
        # outside the family: the unadjusted 95% interval, shown for the size, with no verdict
        rest = out.index[(out.split == split) & out.p_permutation.notna() & ~out.in_family]
        out.loc[rest, "lo"], out.loc[rest, "hi"], out.loc[rest, "level"] = out.loc[rest, "lo_95"], out.loc[rest, "hi_95"], 0.95
    out["interval"] = method_name(method)
    out["confounded"] = out.note.str.contains("confounded")
    out["testable"] = out.difference.notna()
    out["verdict"] = [_verdict(r, alpha) for r in out.itertuples()]
    out["alpha"] = alpha
    out["disagreement"] = [_disagreement(r) for r in out.itertuples()]
    out["rule"] = (f"a difference needs both the sign-flip permutation test and the interval shown to reject at "
                   f"{alpha}, each with Holm's step-down over the split's {{n}} contrast tests (the interval at the "
                   "level Holm tests it at, the permutation p Holm-adjusted); the direction is the estimate's sign "
                   "(the paper's: higher accuracy / lower NMAE for the favoured persona)")
    n_tests = out.groupby("split").in_family.transform(lambda f: int(f.sum()))
    out["rule"] = [r.format(n=n) for r, n in zip(out.rule, n_tests)]
    out["p_monte_carlo_se"] = np.sqrt(out.p_permutation * (1 - out.p_permutation) / n_perm)
    out["composition_differs"] = out.get("composition_differs", pd.Series(False, index=out.index)).fillna(False)
    return out


def _verdict(r, alpha: float) -> str:
    """The interval shown and the test decide together (both Holm-adjusted under alpha); the direction is the
    estimate's sign against the paper's."""
    if not r.testable:
        return "not testable"
    if r.degenerate:
        return "uninformative"
    if r.duplicate_of:
        return f"the same test as {r.duplicate_of}"
    if r.cannot_reject:
        return f"cannot reject on {int(r.questions)} questions"
    if r.p_holm < alpha and r.p_interval_holm < alpha:
        return "the paper's direction" if r.paper_sign * r.difference > 0 else "against the paper's direction"
    return "no clear difference"


def _disagreement(r) -> str:
    """Where the interval and the permutation test disagree, which one rejected (for the sentence)."""
    if not r.testable or r.degenerate or not r.in_family:
        return ""
    a, b = r.p_interval_holm < r.alpha, r.p_holm < r.alpha
    if a == b:
        return ""
    return ("the interval excludes 0 but the permutation test does not reject" if a else
            "the permutation test rejects but the interval includes 0")


def _composition(frame: pd.DataFrame, sids: list, dim: str, a: np.ndarray, b: np.ndarray) -> str:
    """A note when the two sides' subgroups hold different partner values (the other attributes of each side's
    subgroups): the contrast then also compares those partners."""
    attr = frame.drop_duplicates("subgroup_id").set_index("subgroup_id").reindex(sids)
    others = [d for d in ("sex", "age", "ethnicity", "religion") if d in attr and d != dim]

    def partners(idx):
        return {f"{d}={v}" for i in idx for d in others if isinstance(v := attr[d].iloc[i], str)}

    pa, pb = partners(a), partners(b)
    if pa == pb:
        return ""
    only_a, only_b = sorted(pa - pb), sorted(pb - pa)
    return ("composition differs: partner values only on the first side " + (", ".join(only_a) or "none")
            + "; only on the second " + (", ".join(only_b) or "none"))


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _f(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def bias_claims(table: pd.DataFrame, protocol: str = "paper",
                source: str = "results/{profile}/fairness/paper_bias.csv") -> list[Claim]:
    """One claim per row of :func:`paper_bias` on the OOD split, and per row of a contrast that only the training
    split can test (labelled so)."""
    ood_testable = set(table[(table.split == "ood") & table.testable].contrast)
    keep = table[(table.split == "ood") | ~table.contrast.isin(ood_testable)]
    out = []
    for r in keep.itertuples():
        who = "base" if r.model == "base" else "SFT"
        split = "OOD" if r.split == "ood" else f"{r.split} split, {r.pairs} sampled pairs" + (
            ", on which SFT was trained" if r.model == "sft" else "")
        lab = METRIC_LABELS[r.metric]
        cid = (f"fairness.{r.split}.bias.{r.contrast.replace(' ', '_').lower()}.{r.model}.{r.metric}"
               + (".matched" if r.matching == "matched partners" else ""))
        if not r.testable:
            how = ", matched partners" if r.matching == "matched partners" else ""
            out.append(Claim(id=cid, topic="fairness", statistic=f"{lab}: {r.contrast}, {who} model, {split}{how}",
                             sentence=f"{r.contrast} ({who}, {lab}, {split}{how}): {r.note}.", verdict="not testable",
                             method="", rule=r.rule, protocol=protocol, source=source))
            continue
        note = f" ({r.note})" if r.note else ""
        if r.disagreement:
            note = f" ({r.disagreement}; a difference needs both)" + note
        how = ", matched partners" if r.matching == "matched partners" else ""
        if r.in_family:
            edge = (f"; borderline: its endpoint nearer 0 lies within 2 Monte Carlo SE ({r.endpoint_mc_se:.4f}) of 0"
                    if r.borderline else "")
            shown = (f"{fmt_ci(r.difference, r.lo, r.hi)} ({level_label(r.level)} Holm decision interval (the level "
                     f"Holm's step-down tests it at), BCa two-stage bootstrap; Holm-adjusted bootstrap "
                     f"{_p(r.p_interval_holm)}{edge}) over {int(r.questions)} questions, sign-flip {_p(r.p_permutation)}, "
                     f"Holm-adjusted {_p(r.p_holm)}")
        else:
            why = (f"its matched partners are {r.duplicate_of}'s, so it is not tested again" if r.duplicate_of else
                   f"{int(r.questions)} questions cannot reach p < {r.alpha} by sign flips")
            shown = (f"{fmt_ci(r.difference, r.lo, r.hi)} (unadjusted 95% BCa two-stage bootstrap, for the size only; "
                     f"outside the Holm family: {why}) over {int(r.questions)} questions")
        sentence = (f"{r.contrast} ({who}, {lab}, {split}{how}): {r.favoured} minus {r.disfavoured} {shown}: "
                    f"{r.verdict} (paper, for seven 3-8B models without a test: {r.paper}){note}.")
        out.append(Claim(id=cid, topic="fairness", statistic=f"{lab}: {r.contrast}, {who} model, {split}",
                         sentence=sentence, verdict=r.verdict, estimate=float(r.difference), lo=float(r.lo),
                         hi=float(r.hi), method=f"{r.interval} at {level_label(r.level)} (Holm's step-down level over the "
                                                "split's contrasts); sign-flip permutation test over questions, Holm "
                                                "over the split's contrasts",
                         rule=r.rule, p_value=(float(max(r.p_holm, r.p_interval_holm)) if r.in_family else None),
                         protocol=protocol, source=source,
                         extra={"confounded": bool(r.confounded), "p_permutation": float(r.p_permutation),
                                "level": float(r.level), "p_interval_holm": _f(r.p_interval_holm),
                                "lo_95": float(r.lo_95), "hi_95": float(r.hi_95), "borderline": bool(r.borderline),
                                "duplicate_of": r.duplicate_of or None}))
    return out

