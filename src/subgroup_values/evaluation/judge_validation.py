"""A judge is validated before its verdicts are read: answer pairs whose better one is known by construction.

The validation set is built from the survey, on *training* pairs (so it never overlaps the OOD items a judge
later compares, and the slot prior estimated on it is not estimated on the items judged). For each sampled
(question, subgroup) pair:

- the **better** answer states the subgroup's modal option (its largest weighted share), the **worse** answer
  states the option farthest from it on the ordinal scale (of the two scale ends equally far, the one this
  group chose least);
- three kinds of pair (``KINDS``): ``balanced`` (both statements in the same template, so their lengths differ
  only by the two labels), ``better_longer`` (the better statement carries one more, neutral sentence) and
  ``better_shorter`` (the worse one does); the template (four wordings, two of them paraphrases) is drawn per
  pair from a seeded hash;
- every pair is judged in both orders (better in slot A, then in slot B) on the ``Value`` rubric, where the judge
  is shown the group's real answer shares: with the distribution in front of it, "which answer is closer to
  what this group thinks" has a right answer.

Scores of a judge (:func:`judge_scores`), each with a question-level bootstrap interval: **accuracy** (share of
verdicts that pick the better answer; a tie counts one half), **swap-flip rate** (share of items whose two orders
pick different answers), **slot-A rate** (share of sided verdicts that pick slot A), **prefers longer** (on the
two unbalanced kinds, where the longer answer is the better one half of the time: share of sided verdicts that
pick the longer answer). A log-probability judge is also scored *calibrated*: its verdict log-odds
``log P(A) - log P(B)`` minus its slot prior (the mean log-odds over this set, whose design puts the better answer
in slot A exactly half of the time); the calibrated verdict of an item averages the two orders.

The bar (:data:`BAR`): a judge is informative when its accuracy interval lies above 0.5 and its flip rate is
under 30%; below it, the judge is reported as uninformative and its win rates are not shown as results.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from ..stats.bootstrap import mean_bootstrap
from ..survey.prompts import attributes_of, fill_placeholders
from ..survey.questions import Question

KINDS = ("balanced", "better_longer", "better_shorter")
#: How a statement says an option. The last two are paraphrases (other words, same content).
TEMPLATES = ('My answer is "{label}".',
             'If I had to choose, I would say "{label}".',
             'Honestly, "{label}" is how I see it.',
             'For me personally the answer would be "{label}"; that is what I think.')
#: The extra sentence that makes one statement longer without changing what it says.
ELABORATION = " I have thought about this question for a while, and that is where I come out after weighing it up."
#: The bar a judge must pass before its win rates are shown (accuracy interval above 0.5, flip rate under 30%).
BAR = {"accuracy_lo_above": 0.5, "flip_rate_below": 0.30}
BAR_RULE = "informative when the accuracy interval lies above 0.5 and the swap-flip rate is under 30%"


def _hash(*parts) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def modal_and_far(q: Question, weighted_counts: list[float]) -> tuple[int, int]:
    """Option indices (0-based) of the group's modal option and of the option farthest from it on the scale
    (of two equally far ends, the one the group chose least; then the lower)."""
    c = np.asarray(weighted_counts, float)
    if c.shape != (q.n_options,) or not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise ValueError(f"{q.qid}: expected {q.n_options} non-negative weighted counts with a positive total, got "
                         f"{weighted_counts!r}.")
    m = int(np.argmax(c))
    ends = [0, q.n_options - 1]
    far = max(ends, key=lambda e: (abs(e - m), -c[e], -e))
    return m, far


def statement(q: Question, option: int, template: int, longer: bool = False, country: str | None = None) -> str:
    """A short first-person statement of option ``option`` (0-based index) of ``q``."""
    label = fill_placeholders(q.options[option][1], country)
    if label.strip().isdigit():  # a middle point of a numbered scale: say which scale
        label = (f"{label}\" on the scale from \"{fill_placeholders(q.options[0][1], country)}\" to "
                 f"\"{fill_placeholders(q.options[-1][1], country)}")
    return TEMPLATES[template].format(label=label) + (ELABORATION if longer else "")


def validation_set(pairs: pd.DataFrame, questions: dict[str, Question], n: int, seed: int = 0,
                   study=None) -> pd.DataFrame:
    """One row per validation item (``n`` seeded pairs x the three kinds): the pair, ``kind``, ``template``, the
    better and worse statements and their options (1-based values), and their lengths in characters. The items
    carry the pairs' study (``study`` None: the one ``pairs`` carries)."""
    from ..survey.dataset import sample_pairs
    from ..survey.study import reference, study_of

    study = study_of(pairs, study)

    if n < 1:
        raise ValueError(f"A validation set needs at least one pair; got n={n}.")
    sample = sample_pairs(pairs, n, seed)
    rows = []
    for r in sample.to_dict("records"):
        q = questions[r["qid"]]
        m, far = modal_and_far(q, r["weighted_counts"])
        t = _hash(seed, r["qid"], r["subgroup_id"]) % len(TEMPLATES)
        for kind in KINDS:
            better = statement(q, m, t, longer=kind == "better_longer", country=study.country_name)
            worse = statement(q, far, t, longer=kind == "better_shorter", country=study.country_name)
            rows.append({"qid": r["qid"], "subgroup_id": r["subgroup_id"], "kind": kind, "template": t,
                         "better": better, "worse": worse, "better_option": q.options[m][0],
                         "worse_option": q.options[far][0], "better_chars": len(better), "worse_chars": len(worse),
                         "weighted_counts": r["weighted_counts"],
                         **{k: v for k, v in r.items() if k in attributes_of(r, study)}})
    out = pd.DataFrame(rows)
    out.attrs["study"] = reference(study)
    return out


def judge_validation(backend, items: pd.DataFrame, questions: dict[str, Question], mode: str = "logprob",
                     cache=None, chunk_size: int = 32, timings: dict | None = None, study=None) -> pd.DataFrame:
    """Judge every validation item in both orders on the Value rubric (through the response cache; ``study`` None:
    the items' own, :func:`validation_set`'s). One row per
    judgement: the item, ``order`` ('better_first' / 'better_second'), the verdict and, in logprob mode, the
    probabilities of A, B and tie."""
    from ..survey.study import study_of
    from .openended import judge_messages, run_judge

    study = study_of(items, study)
    jobs = []
    for i, r in enumerate(items.to_dict("records")):
        q, attrs = questions[r["qid"]], attributes_of(r, study)
        for order, (a, b) in (("better_first", (r["better"], r["worse"])), ("better_second", (r["worse"], r["better"]))):
            jobs.append({"item": i, "order": order,
                         "messages": judge_messages(q, attrs, "Value", a, b, r["weighted_counts"], study=study)})
    groups = [f"validation:{items.qid.iloc[j['item']]}:{items.subgroup_id.iloc[j['item']]}" for j in jobs]
    verdicts, probs, _ = run_judge(backend, [j["messages"] for j in jobs], mode, cache, chunk_size=chunk_size,
                                   timings=timings, timing_name="judge validation", groups=groups)
    out = []
    for j, v, p in zip(jobs, verdicts, probs):
        r = items.iloc[j["item"]]
        out.append({"item": j["item"], "qid": r.qid, "subgroup_id": r.subgroup_id, "kind": r.kind,
                    "order": j["order"], "verdict": v, **_prob_columns(p)})
    return pd.DataFrame(out)


def _prob_columns(p) -> dict:
    if p is None:
        return {"p_A": np.nan, "p_B": np.nan, "p_tie": np.nan}
    return {"p_A": float(p[0]), "p_B": float(p[1]), "p_tie": float(p[2])}


def log_odds(d: pd.DataFrame) -> np.ndarray:
    """Verdict log-odds of slot A over slot B, log P(A) - log P(B), per judgement (NaN without probabilities)."""
    with np.errstate(divide="ignore"):
        return np.log(d["p_A"].to_numpy(float)) - np.log(d["p_B"].to_numpy(float))


def slot_prior(validation: pd.DataFrame) -> float:
    """The judge's slot prior: its mean verdict log-odds over the validation set (better in slot A exactly half of
    the time by design, so content cancels and what is left is the preference for a slot)."""
    lo = log_odds(validation)
    lo = lo[np.isfinite(lo)]
    if lo.size == 0:
        raise ValueError("The slot prior needs log-probability verdicts (judge mode 'logprob'); none were found.")
    return float(lo.mean())


def _per_judgement(v: pd.DataFrame) -> pd.DataFrame:
    """The columns whose means are the judge's scores (NaN where a column does not apply to a row)."""
    better_slot = np.where(v.order == "better_first", "A", "B")
    sided = v.verdict.isin(["A", "B"]).to_numpy()
    correct = np.where(v.verdict.isna(), np.nan, np.where(v.verdict == "tie", 0.5, (v.verdict == better_slot)))
    slot_a = np.where(sided, (v.verdict == "A").astype(float), np.nan)
    kind = v.kind.to_numpy()
    longer_slot = np.where(kind == "better_longer", better_slot, np.where(better_slot == "A", "B", "A"))
    chose_longer = np.where(sided & (kind != "balanced"), (v.verdict.to_numpy() == longer_slot).astype(float), np.nan)
    # flip: per item, on its better_first row: the two orders pick different answers (or one is a tie)
    w = v.pivot_table(index="item", columns="order", values="verdict", aggfunc="first")
    picked = {o: w[o].map(lambda x, o=o: None if x is None or x != x else
                          "tie" if x == "tie" else ("better" if (x == "A") == (o == "better_first") else "worse"))
              for o in ("better_first", "better_second") if o in w}
    flips = {}
    if len(picked) == 2:
        for item in w.index:
            a, b = picked["better_first"][item], picked["better_second"][item]
            flips[item] = np.nan if a is None or b is None else float(a != b)
    flip = np.where(v.order == "better_first", v["item"].map(flips).to_numpy(float), np.nan)
    return pd.DataFrame({"qid": v.qid.to_numpy(), "correct": correct.astype(float), "flip": flip,
                         "slot_A": slot_a, "prefers_longer": chose_longer})


def _calibrated_per_judgement(v: pd.DataFrame, prior: float) -> pd.DataFrame:
    """The calibrated judge: per order, sign(log-odds - prior) picks a slot; per item, the two orders' log-odds
    for the better answer (minus the prior) averaged decide."""
    lo = log_odds(v) - prior
    toward_better = np.where(v.order == "better_first", lo, -lo)
    per_order_correct = np.where(np.isfinite(toward_better), np.where(toward_better == 0, 0.5, toward_better > 0),
                                 np.nan)
    d = v.assign(toward_better=toward_better, per_order=per_order_correct.astype(float))
    item = d.groupby("item").agg(qid=("qid", "first"), kind=("kind", "first"), e=("toward_better", "mean"),
                                 n=("toward_better", lambda s: int(np.isfinite(s).sum())),
                                 flip=("per_order", lambda s: float(s.nunique() > 1) if s.notna().all() else np.nan))
    item = item[item.n == 2]
    acc = np.where(item.e == 0, 0.5, (item.e > 0).astype(float))
    slot_a = np.where(np.isfinite(lo) & (lo != 0), (lo > 0).astype(float), np.nan)
    longer_toward = np.where(v.kind == "better_longer", toward_better, -toward_better)
    prefers_longer = np.where((v.kind != "balanced") & np.isfinite(lo) & (lo != 0), (longer_toward > 0).astype(float),
                              np.nan)
    rows_item = pd.DataFrame({"qid": item.qid.to_numpy(), "correct": acc, "flip": item.flip.to_numpy(float),
                              "slot_A": np.nan, "prefers_longer": np.nan})
    rows_judgement = pd.DataFrame({"qid": v.qid.to_numpy(), "correct": np.nan, "flip": np.nan, "slot_A": slot_a,
                                   "prefers_longer": prefers_longer})
    return pd.concat([rows_item, rows_judgement], ignore_index=True)


SCORES = ("correct", "flip", "slot_A", "prefers_longer")
SCORE_NAMES = {"correct": "accuracy", "flip": "swap-flip rate", "slot_A": "slot-A rate",
               "prefers_longer": "prefers longer"}


def judge_scores(validation: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The judge's scores on the validation set, raw and (logprob judges) calibrated, with 95% BCa intervals over
    questions; one row per (variant, score) with the share of unreadable verdicts and whether the bar is met."""
    variants = {"raw": _per_judgement(validation)}
    prior = np.nan
    if validation["p_A"].notna().any():
        prior = slot_prior(validation)
        variants["calibrated"] = _calibrated_per_judgement(validation, prior)
    rows = []
    for name, d in variants.items():
        ci = mean_bootstrap(d, list(SCORES), n_boot=n_boot, seed=seed)
        counts = d[list(SCORES)].notna().sum()
        for score, r in ci.iterrows():
            rows.append({"variant": name, "score": SCORE_NAMES[score], "estimate": r.estimate, "lo": r.lo,
                         "hi": r.hi, "n": int(counts[score]), "questions": int(d.qid.nunique())})
    out = pd.DataFrame(rows)
    out.attrs["slot_prior"] = prior
    out.attrs["unreadable"] = float(validation.verdict.isna().mean())
    out.attrs["items"] = int(validation["item"].nunique())
    return out


def passes(scores: pd.DataFrame, variant: str) -> tuple[bool, str]:
    """Whether ``variant``'s scores meet :data:`BAR`, and the reason in words when they do not."""
    s = scores[scores.variant == variant].set_index("score")
    if s.empty:
        return False, f"no {variant} scores (a logprob judge is needed for calibration)"
    from .openended import _ci

    acc, flip = s.loc["accuracy"], s.loc["swap-flip rate"]
    if not np.isfinite(acc.estimate):
        return False, f"no readable verdict ({scores.attrs.get('unreadable', float('nan')):.0%} unreadable)"
    reasons = []
    if not (np.isfinite(acc.lo) and acc.lo > BAR["accuracy_lo_above"]):
        reasons.append(f"accuracy {_ci(acc)} does not lie above 0.5")
    if not (np.isfinite(flip.estimate) and flip.estimate < BAR["flip_rate_below"]):
        reasons.append(f"swap-flip rate {flip.estimate:.0%} is not under 30%")
    return not reasons, "; ".join(reasons)


def reader_statements(items: pd.DataFrame) -> pd.DataFrame:
    """The distinct templated statements of the validation set with the option each states (for the reader's
    validation): one row per (question, text); the reader is not told the subgroup."""
    rows = []
    for r in items.to_dict("records"):
        rows.append({"qid": r["qid"], "subgroup_id": r["subgroup_id"], "text": r["better"],
                     "stated": r["better_option"]})
        rows.append({"qid": r["qid"], "subgroup_id": r["subgroup_id"], "text": r["worse"], "stated": r["worse_option"]})
    return pd.DataFrame(rows).drop_duplicates(["qid", "text"]).reset_index(drop=True)
