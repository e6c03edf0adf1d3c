"""The findings of the dataset, the zero-shot and fine-tuned evaluations and generate mode, as claims.

Each function turns numbers the run computed (a manifest, predictions, run records) into :class:`Claim` records
whose sentences README, the notebooks and the paper print; nothing here types a number or a verdict.

- **Comparisons of two predictors** (a model against a baseline, SFT against base) are paired: both predict the
  same pairs, the statistic is the difference of their mean per-pair scores, and its interval is the BCa bootstrap
  over questions of that difference (:func:`paired_difference`). A family of comparisons shares a Bonferroni
  level (``1 - 0.05 / m``): the interval shown is the one that decides. Verdict: the interval above 0, below 0,
  or "no clear difference". A change is said in absolute points and relative to the first value.
- **Rates of generate mode** (replies cut at the token budget, refusals) are binomial shares with the Wilson score
  interval (:func:`wilson`). Pairs of one question are not independent (a model may refuse a question for every
  subgroup), so the interval is a lower bound on the uncertainty; the sentence says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from ..core.claims import Claim, claims_path, fmt, fmt_ci, write_claims
from ..stats.bootstrap import mean_bootstrap, wilson  # noqa: F401  (wilson: the rates' interval, re-exported)

ALPHA = 0.05
#: Half-width (points of a share) the refusal rate's interval must stay under for the rate to count as measured.
REFUSAL_HALF_WIDTH = 0.05
#: Share of generate-mode replies the token budget may cut for the budget to count as letting replies finish.
MAX_SHARE_CUT = 0.05
#: Items on which refusals are most likely; the refusal sample is drawn from their pairs. Defined in
#: :mod:`subgroup_values.survey.questions` (``SENSITIVE_ITEMS``), read from there.


def _bonferroni(m: int) -> float:
    return 1 - ALPHA / max(m, 1)


def _level_words(level: float, m: int) -> str:
    return (f"{level:.0%} BCa interval over questions" if m <= 1 else
            f"{100 * level:.1f}% BCa interval over questions, Bonferroni over {m} comparisons")


def _verdict(lo: float | None, hi: float | None, higher: str = "higher", lower: str = "lower") -> str:
    if lo is None or hi is None:
        return "no interval"
    if lo > 0:
        return higher
    if hi < 0:
        return lower
    return "no clear difference"


def paired_difference(a: pd.Series, b: pd.Series, qid: pd.Series, n_boot: int = 1000, seed: int = 0,
                      level: float = 0.95) -> dict:
    """Mean of ``a - b`` over pairs (the same pairs: paired) with its BCa interval over questions; also each mean."""
    df = pd.DataFrame({"qid": qid.to_numpy(), "a": a.to_numpy(float), "b": b.to_numpy(float)})
    df["d"] = df.a - df.b
    ci = mean_bootstrap(df, ["d"], n_boot=n_boot, seed=seed, level=level)
    def finite(v):  # an interval the bootstrap could not form is None, never NaN
        return float(v) if np.isfinite(v) else None

    return {"a": float(df.a.mean()), "b": float(df.b.mean()), "estimate": float(ci.loc["d", "estimate"]),
            "lo": finite(ci.loc["d", "lo"]), "hi": finite(ci.loc["d", "hi"]), "pairs": len(df),
            "questions": int(df.qid.nunique()), "degenerate": bool(ci.loc["d", "degenerate"])}


# ---- zero-shot: a model beside the baselines that need no model --------------------------------------------------

#: (baseline, subset, metric) compared with a model run, in the order the sentences come.
BASELINE_COMPARISONS = (("uniform", "all", "accuracy"), ("uniform", "divergent", "accuracy"), ("uniform", "all", "tv"),
                        ("population_mode", "all", "accuracy"), ("compositional", "all", "accuracy"),
                        ("compositional", "divergent", "accuracy"))
_METRIC = {"accuracy": ("correct", "accuracy", True), "tv": ("tv", "total variation distance", False),
           "nmae": ("nmae", "NMAE", False)}
_SUBSET = {"all": "all pairs", "divergent": "divergent pairs", "consensus": "consensus pairs"}


def _subset(df: pd.DataFrame, subset: str) -> pd.DataFrame:
    return df if subset == "all" else df[df.divergent] if subset == "divergent" else df[~df.divergent]


def evaluation_claims(run: str, preds: pd.DataFrame, baseline_preds: dict[str, pd.DataFrame], n_boot: int = 1000,
                      seed: int = 0, comparisons=BASELINE_COMPARISONS) -> list[Claim]:
    """The model of one run against each baseline on the same pairs (paired differences over questions, one
    Bonferroni family per run). Comparisons whose metric the run lacks (TV in generate mode) are left out."""
    key = ["qid", "subgroup_id"]
    todo = [c for c in comparisons if c[0] in baseline_preds
            and preds[_METRIC[c[2]][0]].notna().any() and len(_subset(preds, c[1]))]
    level = _bonferroni(len(todo))
    out = []
    for kind, subset, metric in todo:
        col, name, higher_better = _METRIC[metric]
        m = _subset(preds, subset)[key + ["divergent", col]]
        b = baseline_preds[kind].set_index(key)[col]
        both = m.assign(base=b.reindex(pd.MultiIndex.from_frame(m[key])).to_numpy(float))
        d = paired_difference(both[col], both["base"], both.qid, n_boot, seed, level)
        verdict = "uninformative" if d["degenerate"] else _verdict(
            d["lo"], d["hi"], *(("above", "below") if higher_better else ("higher (worse)", "lower (better)")))
        kind_words = kind.replace("_", " ")
        rel = f", {d['estimate'] / d['b']:+.0%} relative" if d["b"] else ""
        out.append(Claim(
            id=f"evaluation.{run}.vs_{kind}.{metric}.{subset}", topic="evaluation",
            statistic=f"{name} of {run} minus {kind_words} on {_SUBSET[subset]}",
            estimate=d["estimate"], lo=d["lo"], hi=d["hi"], method=_level_words(level, len(todo)) + " (paired)",
            rule="the interval above 0: above; below 0: below; including 0: no clear difference",
            verdict=verdict, protocol="paper", source=f"results/<profile>/{run}/predictions.parquet",
            sentence=(f"{run}: {name} on {_SUBSET[subset]} {fmt(d['a'])} against the {kind_words} baseline's "
                      f"{fmt(d['b'])}, a difference of {fmt_ci(d['estimate'], d['lo'], d['hi'])} "
                      f"({_level_words(level, len(todo))}, paired{rel}): "
                      + (f"{verdict} the {kind_words} baseline." if verdict in ("above", "below") else
                         f"{verdict} from the {kind_words} baseline." if verdict == "no clear difference" else
                         f"{verdict} (every resample gives the same difference)." if verdict == "uninformative" else
                         "no interval could be formed." if verdict == "no interval" else
                         f"{verdict} than the {kind_words} baseline.")),
            extra={"model": d["a"], "baseline": d["b"], "pairs": d["pairs"], "questions": d["questions"],
                   "level": level}))
    return out


# ---- fine-tuning: base -> SFT on the same pairs --------------------------------------------------------------------

FINETUNE_COMPARISONS = (("all", "accuracy"), ("consensus", "accuracy"), ("divergent", "accuracy"), ("all", "nmae"))


def _recipe(record: dict | None) -> dict:
    if not record:
        return {}
    script = record.get("config", {}).get("script", {})
    model = record.get("config", {}).get("model", {})
    training = record.get("config", {}).get("training", {})
    return {"train_pairs": record.get("data", {}).get("train_pairs"), "loss": script.get("loss", "modal"),
            "train_limit": script.get("train_limit", 0), "trainer": script.get("trainer", "trl"),
            "lora_r": model.get("lora_r"), "learning_rate": training.get("learning_rate"),
            "epochs": training.get("num_train_epochs")}


def recipe_words(record: dict | None, total_train_pairs: int | None = None) -> str:
    """A fine-tune's recipe from its run record: training pairs (all or a sample), loss, LoRA rank, learning rate."""
    r = _recipe(record)
    if not r:
        return "recipe not recorded"
    n = r["train_pairs"]
    parts = []
    if n is not None:
        share = ("every training pair" if total_train_pairs and n == total_train_pairs
                 else f"a seeded sample of the {total_train_pairs:,} training pairs" if total_train_pairs else "")
        parts.append(f"{n:,} training pairs" + (f" ({share})" if share else ""))
    parts.append(f"{r['loss']} loss")
    if r["lora_r"] is not None:
        parts.append(f"LoRA r={r['lora_r']}")
    if r["learning_rate"] is not None:
        parts.append(f"learning rate {r['learning_rate']:g}")
    if r["epochs"] is not None:
        parts.append(f"{r['epochs']:g} epoch(s)")
    parts.append(f"{r['trainer']} trainer")
    return ", ".join(parts)


def finetune_claims(base_run: str, base: pd.DataFrame, sft: dict[str, pd.DataFrame], records: dict[str, dict],
                    total_train_pairs: int, n_boot: int = 1000, seed: int = 0) -> list[Claim]:
    """Each SFT run against the base model on the same pairs (paired over questions; one Bonferroni family over
    every SFT run and comparison), and the modal against the distribution loss with what else differs."""
    key = ["qid", "subgroup_id"]
    m = len(FINETUNE_COMPARISONS) * len(sft) + (1 if len(sft) == 2 else 0)
    level = _bonferroni(m)
    out = []
    for run, s in sft.items():
        s = s.set_index(key)
        for subset, metric in FINETUNE_COMPARISONS:
            col, name, higher_better = _METRIC[metric]
            b = _subset(base, subset)[key + [col]]
            after = s[col].reindex(pd.MultiIndex.from_frame(b[key])).to_numpy(float)
            if np.isnan(after).any():
                raise ValueError(f"{run} lacks predictions for pairs of {base_run}: the paired comparison needs "
                                 "both runs on the same pairs (rerun them on the same split and sample).")
            d = paired_difference(pd.Series(after), b[col].reset_index(drop=True), b.qid.reset_index(drop=True),
                                  n_boot, seed, level)
            verdict = "uninformative" if d["degenerate"] else _verdict(d["lo"], d["hi"], "rises", "falls")
            good = (verdict == "rises") == higher_better if verdict in ("rises", "falls") else None
            points = f"{100 * d['estimate']:+.1f} points" if metric == "accuracy" else f"{d['estimate']:+.3f}"
            rel = f"{d['estimate'] / d['b']:+.0%} relative" if d["b"] else ""
            out.append(Claim(
                id=f"finetune.{run}.{metric}.{subset}", topic="finetune",
                statistic=f"{name} on {_SUBSET[subset]}: {run} minus {base_run}", estimate=d["estimate"],
                lo=d["lo"], hi=d["hi"], method=_level_words(level, m) + " (paired)",
                rule="the interval above 0: rises; below 0: falls; including 0: no clear difference",
                verdict=verdict, protocol="paper", source=f"results/<profile>/{run}/predictions.parquet",
                sentence=(f"SFT ({run}, {_recipe(records.get(run)).get('loss', 'modal')} loss) against the base "
                          f"model on {_SUBSET[subset]}: {name} {fmt(d['b'])} -> {fmt(d['a'])}, a change of "
                          f"{fmt_ci(d['estimate'], d['lo'], d['hi'])} ({points}, {rel}; "
                          f"{_level_words(level, m)}, paired): "
                          + (f"{verdict}." if good is None else
                             f"{name} {verdict} ({'better' if good else 'worse'}).")),
                extra={"base": d["b"], "sft": d["a"], "pairs": d["pairs"], "level": level}))
    if len(sft) == 2:
        (ra, a), (rb, b) = sft.items()
        a, b = a.set_index(key), b.set_index(key)
        idx = a.index.intersection(b.index)
        d = paired_difference(a.loc[idx, "correct"], b.loc[idx, "correct"], idx.to_frame().qid, n_boot, seed, level)
        verdict = _verdict(d["lo"], d["hi"], f"{ra} higher", f"{rb} higher")
        wa, wb = recipe_words(records.get(ra), total_train_pairs), recipe_words(records.get(rb), total_train_pairs)
        na, nb = _recipe(records.get(ra)).get("train_pairs"), _recipe(records.get(rb)).get("train_pairs")
        confound = (f"; the two differ in more than the loss ({na:,} against {nb:,} training pairs), so the "
                    "difference is not the loss's alone" if na and nb and na != nb else "")
        out.append(Claim(
            id=f"finetune.{ra}.vs_{rb}.accuracy.all", topic="finetune",
            statistic=f"accuracy on all OOD pairs: {ra} minus {rb}", estimate=d["estimate"], lo=d["lo"], hi=d["hi"],
            method=_level_words(level, m) + " (paired)", verdict=verdict, protocol="paper",
            rule="the interval above 0: the first higher; below 0: the second higher; else no clear difference",
            sentence=(f"{ra} ({wa}) against {rb} ({wb}): accuracy {fmt(d['a'])} against {fmt(d['b'])}, a difference "
                      f"of {fmt_ci(d['estimate'], d['lo'], d['hi'])} ({_level_words(level, m)}, paired): "
                      f"{verdict}{confound}."),
            source="results/<profile>/finetune/*_run.json", extra={"train_pairs": [na, nb]}))
    return out


# ---- generate mode: the token budget and refusals ---------------------------------------------------------------

def generate_claims(run: str, preds: pd.DataFrame, record: dict, sensitive: set[str]) -> list[Claim]:
    """A generate run: the share of replies the token budget cut (Wilson), accuracy with its status counts, and
    the refusal rate on the sensitive items (Wilson, with whether its half-width is under
    :data:`REFUSAL_HALF_WIDTH`)."""
    from ..evaluation.evaluate import cut_curve

    budget = record.get("config", {}).get("max_new_tokens")
    out = []
    if "cut" in preds and preds["cut"].notna().any():
        cut = preds["cut"].dropna().astype(bool)
        lo, hi = wilson(int(cut.sum()), len(cut))
        share = float(cut.mean())
        curve = cut_curve(preds, budget) if budget else None
        smaller = ""
        if curve is not None and len(curve) > 1:
            under = curve[curve.share_cut < MAX_SHARE_CUT]
            smaller = ("; smaller budgets would cut " + ", ".join(
                f"{r.share_cut:.0%} at {r.max_new_tokens}" for r in curve.itertuples() if r.max_new_tokens < budget)
                + (f" (the smallest under {MAX_SHARE_CUT:.0%}: {int(under.max_new_tokens.min())})" if len(under)
                   else ""))
        out.append(Claim(
            id=f"generate.{run}.cut", topic="generate", statistic="share of replies cut at the token budget",
            estimate=share, lo=lo, hi=hi, method="Wilson 95% interval over replies",
            rule=f"under {MAX_SHARE_CUT:.0%}: the budget lets replies finish; else the budget cuts replies",
            verdict="replies finish" if share < MAX_SHARE_CUT else "budget cuts replies",
            source=f"results/<profile>/{run}/predictions.parquet",
            sentence=(f"{run}: with a budget of {budget} new tokens, {int(cut.sum())} of {len(cut)} replies "
                      f"({share:.1%}, Wilson 95% [{lo:.1%}, {hi:.1%}]) are cut before the model ends them{smaller}: "
                      + ("the budget lets replies finish." if share < MAX_SHARE_CUT else
                         "the budget, not the model, decides many replies.")),
            extra={"max_new_tokens": budget, "cut": int(cut.sum()), "replies": len(cut)}))
    else:
        out.append(Claim(
            id=f"generate.{run}.cut", topic="generate", statistic="share of replies cut at the token budget",
            verdict="not recorded", rule="the run's predictions must say whether each reply was cut",
            sentence=(f"{run}: whether the budget of {budget} new tokens cut its replies is not recorded (a run made "
                      "before replies recorded it, a backend that does not say, or no reply came back)."),
            source=f"results/<profile>/{run}"))
    st = preds.status.value_counts()
    ok = int(st.get("ok", 0))
    acc = float(preds.correct.mean())
    out.append(Claim(
        id=f"generate.{run}.accuracy", topic="generate", statistic="generate-mode accuracy", estimate=acc,
        verdict="measured" if ok / len(preds) >= 0.5 else "mostly unparseable",
        rule="at least half the replies parsed: measured; else the accuracy mostly counts unparseable replies",
        sentence=(f"{run}: accuracy {fmt(acc)} on {len(preds)} pairs; reply statuses "
                  + ", ".join(f"{k} {v}" for k, v in st.items()) + "."), protocol="paper",
        source=f"results/<profile>/{run}/metrics.json"))
    sens = preds[preds.qid.isin(sensitive)]
    if len(sens):
        k = int((sens.status == "refusal").sum())
        lo, hi = wilson(k, len(sens))
        # pairs of one question are not independent: the verdict takes the questions as the units
        nq = int(sens.qid.nunique())
        kq = int(sens[sens.status == "refusal"].qid.nunique())
        qlo, qhi = wilson(kq, nq)
        narrow = (qhi - qlo) / 2 < REFUSAL_HALF_WIDTH
        unreadable = int((sens.status != "ok").sum() - k)
        out.append(Claim(
            id=f"generate.{run}.refusal_sensitive", topic="generate",
            statistic="refusal rate on the sensitive items", estimate=k / len(sens), lo=lo, hi=hi,
            method="replies matching the refusal patterns; Wilson 95% interval over pairs (a lower bound on the "
                   "uncertainty: pairs of one question are not independent) and over questions (any refusal)",
            rule=(f"the questions-as-units interval's half-width under {100 * REFUSAL_HALF_WIDTH:.0f} points: "
                  "measured; else too few sensitive questions"),
            verdict="measured" if narrow else "too few sensitive questions",
            sentence=(f"{run}: {k} replies matching the refusal patterns in {len(sens)} pairs of the sensitive items "
                      f"({k / len(sens):.1%}, Wilson 95% [{lo:.1%}, {hi:.1%}] over pairs; {unreadable} other replies "
                      f"unreadable); by question, {kq} of {nq} questions with a refusal (Wilson 95% [{qlo:.0%}, "
                      f"{qhi:.0%}])"
                      + ("." if narrow else f": too few questions for an interval within +-"
                                           f"{100 * REFUSAL_HALF_WIDTH:.0f} points, so the rate is not measured.")),
            source=f"results/<profile>/{run}/predictions.parquet",
            extra={"refusals": k, "pairs": len(sens), "questions": int(sens.qid.nunique()),
                   "unparseable": int((sens.status != "ok").sum() - k)}))
    return out


def budget_claim(table: pd.DataFrame, record: dict) -> Claim:
    """The token-budget measurement (``scripts/measure_token_budget.py``): the share of replies cut at each budget,
    the smallest budget under :data:`MAX_SHARE_CUT`, or, where none is, whether the sweep's pairs can tell (the
    largest budget's Wilson interval above the target) or cannot."""
    t = table.sort_values("max_new_tokens")
    under = t[t.share_cut < MAX_SHARE_CUT]
    last = t.iloc[-1]
    flat = t[t.share_cut == last.share_cut].max_new_tokens.min()
    lo, hi = wilson(round(last.share_cut * last.replies), int(last.replies))
    run = record.get("run", "the run")
    resolved = lo >= MAX_SHARE_CUT  # the largest budget's interval lies above the target: it is not reached there
    verdict = ("a budget lets replies finish" if len(under) else
               "no budget measured lets replies finish" if resolved else "not resolved by the sweep")
    n = int(last.replies)
    tail = (f"; the smallest budget under {MAX_SHARE_CUT:.0%} is {int(under.max_new_tokens.min())}." if len(under) else
            f"; the share is the same ({last.share_cut:.1%}) from {int(flat)} to {int(last.max_new_tokens)} on these "
            f"pairs (Wilson 95% [{lo:.1%}, {hi:.1%}] at {int(last.max_new_tokens)}), and the unparseable share is "
            f"{last.share_unparseable:.0%} at {int(last.max_new_tokens)}: "
            + (f"no budget up to {int(last.max_new_tokens)} cuts under {MAX_SHARE_CUT:.0%}." if resolved else
               f"{n} pairs cannot tell whether a budget up to {int(last.max_new_tokens)} cuts under "
               f"{MAX_SHARE_CUT:.0%} (the interval holds it), so the sweep does not resolve it."))
    return Claim(
        id=f"generate.{run}.budget_sweep", topic="generate", statistic="share of replies cut at each token budget",
        estimate=float(last.share_cut), lo=lo, hi=hi, method="one greedy decoding at the largest budget, read at each "
        "smaller one; Wilson 95% interval at the largest", verdict=verdict,
        rule=(f"the smallest budget with under {MAX_SHARE_CUT:.0%} cut, if any; else, if the largest budget's Wilson "
              f"interval lies above {MAX_SHARE_CUT:.0%}, none lets replies finish; else not resolved"),
        sentence=(f"Token budget of generate mode ({run}, the first {n} pairs of its sample, base "
                  "model): the share of replies cut is " + ", ".join(
                      f"{r.share_cut:.0%} at {r.max_new_tokens}" for r in t.itertuples()) + tail),
        source="results/<profile>/token_budget/base_ood_generate.csv", extra={"revision": record.get("git_revision")})


def refusal_change_claim(base_run: str, base: pd.DataFrame, sft_run: str, sft: pd.DataFrame,
                         sensitive: set[str]) -> Claim | None:
    """Refusals on the sensitive items, base against SFT on the same pairs: exact McNemar test (binomial on the
    pairs where one refuses and the other does not)."""
    key = ["qid", "subgroup_id"]
    b = base[base.qid.isin(sensitive)].set_index(key).status == "refusal"
    s = sft[sft.qid.isin(sensitive)].set_index(key).status == "refusal"
    idx = b.index.intersection(s.index)
    if not len(idx):
        return None
    b, s = b.loc[idx], s.loc[idx]
    only_b, only_s = int((b & ~s).sum()), int((~b & s).sum())
    p = binomtest(only_b, only_b + only_s).pvalue if only_b + only_s else 1.0
    verdict = "no clear difference" if p >= ALPHA else ("fewer refusals after SFT" if only_b > only_s
                                                         else "more refusals after SFT")
    return Claim(
        id=f"generate.{sft_run}.vs_{base_run}.refusal_sensitive", topic="generate",
        statistic="refusals on the sensitive items, base against SFT (same pairs)",
        estimate=float(s.mean() - b.mean()), p_value=float(p), method="exact McNemar test over pairs",
        rule=f"p < {ALPHA}: the direction of the discordant pairs; else no clear difference", verdict=verdict,
        sentence=(f"Refusals on the sensitive items, {base_run} -> {sft_run} on the same {len(idx)} pairs: "
                  f"{b.mean():.1%} -> {s.mean():.1%} ({only_b} pairs refused only by the base model, {only_s} only "
                  f"after SFT; exact McNemar p = {p:.3g}): {verdict}."),
        source=f"results/<profile>/{sft_run}/predictions.parquet")


# ---- a second model beside the embedded one ------------------------------------------------------------------------

#: (run, metric) compared between two models on the same pairs.
MODEL_COMPARISONS = (("base_ood", "accuracy"), ("base_ood", "tv"), ("sft_ood", "accuracy"), ("sft_ood", "tv"))


def model_claims(ref_dir: str | Path, other_dir: str | Path, ref_label: str, other_label: str, n_boot: int = 1000,
                 seed: int = 0) -> list[Claim]:
    """A second model's runs (``other_dir``: e.g. results/gemma) beside the embedded model's (``ref_dir``) on the
    same pairs: per run its own accuracy, TV and option mass (with their intervals, from its record), and the
    paired difference (other minus reference, over questions; one Bonferroni family) on the other run's pairs,
    which may be a seeded sample of the reference's. A run missing on either side is left out."""
    ref_dir, other_dir = Path(ref_dir), Path(other_dir)
    key = ["qid", "subgroup_id"]
    todo = [(r, m) for r, m in MODEL_COMPARISONS
            if _preds(ref_dir, r) is not None and _preds(other_dir, r) is not None]
    level = _bonferroni(len(todo))
    out = []
    for run in dict.fromkeys(r for r, _ in todo):
        rec = _record(other_dir, run)
        by = {(x["subset"], x["metric"]): x for x in rec.get("by_subset", [])}
        parts = [f"{name} {fmt_ci(by[('all', m)]['estimate'], by[('all', m)]['lo'], by[('all', m)]['hi'])}"
                 for m, name in (("accuracy", "accuracy"), ("tv", "TV"), ("option_mass", "option mass"))
                 if ("all", m) in by]
        cfg = rec.get("config", {})
        out.append(Claim(
            id=f"models.{Path(other_dir).name}.{run}", topic="models", statistic=f"{other_label}, {run}",
            estimate=by.get(("all", "accuracy"), {}).get("estimate"), lo=by.get(("all", "accuracy"), {}).get("lo"),
            hi=by.get(("all", "accuracy"), {}).get("hi"), method="95% BCa interval over questions (the run's record)",
            protocol="paper", source=f"{other_dir.as_posix()}/{run}/metrics.json",
            sentence=(f"{other_label}, {run} ({cfg.get('template', '?')} template, {rec.get('pairs', 0):,} "
                      f"{cfg.get('split', '?').upper()} pairs" + (" (a seeded sample)" if cfg.get("limit") else "")
                      + "): " + "; ".join(parts) + ".")))
    for run, metric in todo:
        col, name, higher_better = _METRIC[metric]
        o, r = _preds(other_dir, run), _preds(ref_dir, run).set_index(key)
        ref = r[col].reindex(pd.MultiIndex.from_frame(o[key])).to_numpy(float)
        if np.isnan(ref).any():
            raise ValueError(f"{ref_dir}/{run} lacks {int(np.isnan(ref).sum())} of the pairs of {other_dir}/{run}: the "
                             "comparison needs the reference on every pair of the other model's run.")
        d = paired_difference(o[col].reset_index(drop=True), pd.Series(ref), o.qid.reset_index(drop=True), n_boot,
                              seed, level)
        verdict = "uninformative" if d["degenerate"] else _verdict(
            d["lo"], d["hi"], *(("higher", "lower") if higher_better else ("higher (worse)", "lower (better)")))
        rel = f", {d['estimate'] / d['b']:+.0%} relative" if d["b"] else ""
        trained = ""
        if run.startswith("sft"):
            name_ = "sft" if run == "sft_ood" else run.removesuffix("_ood")
            recs = [json.loads(f.read_text()) if (f := dd / "finetune" / f"{name_}_run.json").is_file() else None
                    for dd in (other_dir, ref_dir)]
            trained = (f" (fine-tunes: {other_label} {recipe_words(recs[0])}; {ref_label} {recipe_words(recs[1])}: "
                       "they differ in more than the model)")
        out.append(Claim(
            id=f"models.{Path(other_dir).name}.{run}.vs_{Path(ref_dir).name}.{metric}", topic="models",
            statistic=f"{name}, {other_label} minus {ref_label}, {run}", estimate=d["estimate"], lo=d["lo"],
            hi=d["hi"], method=_level_words(level, len(todo)) + " (paired)", verdict=verdict, protocol="paper",
            rule="the interval above 0: higher; below 0: lower; including 0: no clear difference",
            source=f"{other_dir.as_posix()}/{run}/predictions.parquet",
            sentence=(f"{run}: {other_label} against {ref_label} on the same {d['pairs']:,} pairs ({d['questions']} "
                      f"questions): {name} {fmt(d['a'])} against {fmt(d['b'])}, a difference of "
                      f"{fmt_ci(d['estimate'], d['lo'], d['hi'])} ({_level_words(level, len(todo))}, paired{rel}): "
                      f"{verdict}{trained}."),
            extra={"pairs": d["pairs"], "questions": d["questions"], "level": level}))
    return out


# ---- all of the above, from a profile's results ------------------------------------------------------------------

def run_claims(run: str, preds: pd.DataFrame, all_pairs: pd.DataFrame, questions: dict, record: dict,
               sensitive: set[str] | None = None, n_boot: int = 1000, seed: int = 0) -> list[Claim]:
    """What one evaluation run shows (notebook 3's closing cell, and :func:`write_findings`): the model against
    each baseline on the same pairs, and for a generate-mode run the token budget, the statuses and the refusals on
    the ``sensitive`` items (none given: no refusal claim)."""
    from ..evaluation import baselines

    run_pairs = all_pairs.set_index(["qid", "subgroup_id"]).loc[
        pd.MultiIndex.from_frame(preds[["qid", "subgroup_id"]])].reset_index()
    bl = {k: baselines.predictions(run_pairs, all_pairs, k, questions) for k in {c[0] for c in BASELINE_COMPARISONS}}
    out = evaluation_claims(run, preds, bl, n_boot, seed)
    if record.get("config", {}).get("scoring") == "generate":
        out += generate_claims(run, preds, record, sensitive or set())
    return out


def _preds(res_dir: Path, run: str) -> pd.DataFrame | None:
    p = res_dir / run / "predictions.parquet"
    return pd.read_parquet(p) if p.is_file() else None


def _record(res_dir: Path, run: str) -> dict:
    p = res_dir / run / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def write_findings(res_dir: str | Path, data_dir: str | Path, **kwargs) -> dict[str, list[Claim]]:
    """:func:`build_findings`, written to ``results/<profile>/claims/<topic>.json`` (one file per topic)."""
    topics = build_findings(res_dir, data_dir, **kwargs)
    for topic, cl in topics.items():
        write_claims(cl, claims_path(res_dir, topic))
    return topics


def build_findings(res_dir: str | Path, data_dir: str | Path, base_run: str = "base_ood",
                   sft_runs: tuple[str, ...] = ("sft_ood", "sft_distribution_ood"),
                   generate_runs: tuple[str, ...] = ("base_ood_generate", "sft_ood_generate"),
                   refusal_runs: tuple[str, ...] = ("base_ood_refusals", "sft_ood_refusals"),
                   sensitive: set[str] | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, list[Claim]]:
    """The claims of the data, evaluation, fine-tuning and generate topics of one profile, from what is on disk
    (a run that is not there is left out), by topic."""
    from ..survey.dataset import load_pairs
    from ..survey.questions import load_questions

    res_dir, data_dir = Path(res_dir), Path(data_dir)
    if sensitive is None:
        from ..survey.questions import SENSITIVE_ITEMS
        sensitive = set(SENSITIVE_ITEMS)
    from ..survey.dataset import data_claims

    manifest = json.loads((data_dir / "manifest.json").read_text())
    rs = data_dir / "question_rule_search.json"
    topics = {"data": data_claims(manifest, json.loads(rs.read_text()) if rs.is_file() else None)}
    all_pairs = load_pairs(data_dir / "pairs.csv" if (data_dir / "pairs.csv").is_file() else None)
    questions = {q.qid: q for q in load_questions(rule="all")}
    evaluation = []
    base = _preds(res_dir, base_run)
    for run in (base_run, *sft_runs):
        p = _preds(res_dir, run)
        if p is not None:
            evaluation += run_claims(run, p, all_pairs, questions, _record(res_dir, run), sensitive, n_boot, seed)
    topics["evaluation"] = evaluation
    sft = {r: p for r in sft_runs if (p := _preds(res_dir, r)) is not None}
    records = {}
    for r in sft:
        name = "sft" if r == "sft_ood" else r.removesuffix("_ood")
        f = res_dir / "finetune" / f"{name}_run.json"
        if f.is_file():
            records[r] = json.loads(f.read_text())
    topics["finetune"] = (finetune_claims(base_run, base, sft, records, manifest["counts"]["pairs"]["train"],
                                          n_boot, seed) if base is not None and sft else [])
    gen = []
    for group in (generate_runs, refusal_runs):
        loaded = {r: p for r in group if (p := _preds(res_dir, r)) is not None}
        for r, p in loaded.items():
            gen += generate_claims(r, p, _record(res_dir, r), sensitive)
        if len(loaded) == 2:
            (rb, pb), (rs_, ps) = loaded.items()
            c = refusal_change_claim(rb, pb, rs_, ps, sensitive)
            if c:
                gen.append(c)
    sweep = res_dir / "token_budget" / "base_ood_generate.csv"
    if sweep.is_file():
        gen.append(budget_claim(pd.read_csv(sweep), json.loads(sweep.with_suffix(".json").read_text())))
    topics["generate"] = gen
    return topics
