"""Stance read-back: map a free-text answer back onto the survey's scale, with no judge.

A fixed reader (the base model by default; any backend) is shown the question with its options and a free-text
answer ("Someone said: ... Which option did they choose?") and its options are scored exactly as the evaluation
scores them (the backend's ``score``: the same scorer, the same ``Answer:`` prefix, the same codes). The reader's
option distribution for a system's open answer is that answer's *read-back distribution*; over (question,
subgroup) pairs it is compared with the subgroup's survey distribution by the evaluation's distances (TV,
normalised W1) and by the log score (the mean log-probability the read-back gives the group's respondents'
answers), beside the noise floor (TV, W1: :mod:`subgroup_values.analysis.noise_floor`; log score: minus the entropy of
the group's distribution, the best any distribution can do on average).

The reader is validated first on the templated statements of the judge validation set
(:func:`subgroup_values.evaluation.judge_validation.reader_statements`): how often its read-back names the stated option.
That accuracy is printed beside every read-back result: a reader that cannot read "My answer is 'Agree'" back
as Agree cannot read a model's answer either.

A change between two systems (base vs a fine-tune) is paired over pairs: the mean per-pair difference with a BCa
bootstrap interval over questions and a sign-flip permutation test over questions, Holm-adjusted over the family
of distances and fine-tunes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..backends.base import Backend, ScoreRequest
from ..backends.cache import NullCache, ResponseCache, cache_key, fill
from ..stats.bootstrap import mean_bootstrap
from ..stats.metrics import total_variation, wasserstein
from ..survey.prompts import question_block, system_survey
from ..survey.questions import Question

DISTANCES = ("tv", "w1", "log_score")
#: Per distance: True when smaller is closer to the group (TV, W1); the log score is better when larger.
SMALLER_IS_CLOSER = {"tv": True, "w1": True, "log_score": False}


def readback_messages(q: Question, answer: str, country: str | None = None) -> list[dict]:
    """The reader's prompt: the question and its options, what someone said, and the evaluation's answer format."""
    said = " ".join((answer or "").split())
    user = (f"{question_block(q, country)}\n\nSomeone was asked this question and said: \"{said}\"\n"
            f"Which option did they choose?")
    return [{"role": "system", "content": system_survey(country)}, {"role": "user", "content": user}]


def read_back(reader: Backend, qids: list[str], texts: list[str | None], questions: dict[str, Question],
              cache: ResponseCache | NullCache | None = None, chunk_size: int = 64, timings: dict | None = None,
              timing_name: str = "read-back", country: str | None = None) -> list[list[float] | None]:
    """The reader's option distribution for each (question, text), scored as the evaluation scores options
    (through the response cache; ``country`` fills the questionnaire's placeholders, None: Singapore); None where the text is missing or empty (nothing to read) or the reader could
    not score the options."""
    if not reader.supports_logprob:
        raise ValueError(f"The reader must score options (a {reader.kind} backend cannot); use the hf backend or "
                         "openai_compat.")
    if len(qids) != len(texts):
        raise ValueError(f"read_back needs one question per text; got {len(qids)} questions and {len(texts)} texts.")
    msgs = [readback_messages(questions[q], t or "", country) for q, t in zip(qids, texts)]
    options = [[str(v) for v, _ in questions[q].options] for q in qids]
    keys = [cache_key(backend=reader.identity(), settings={"task": "readback"}, messages=m, options=o)
            for m, o in zip(msgs, options)]

    def compute(idx: list[int]) -> list[dict]:
        scored = reader.score([ScoreRequest(msgs[i], options[i], group=f"question:{qids[i]}") for i in idx])
        return [{"probs": s.probs, "option_mass": s.option_mass, "status": s.status} | (
            {"error": s.error} if s.error else {}) for s in scored]

    done = fill(cache, keys, compute, order=lambda i: qids[i], chunk_size=chunk_size, desc=timing_name,
                progress=False)
    if timings is not None:
        timings[timing_name] = (done.seconds, done.computed)
    return [None if not (t or "").strip() or rec.get("probs") is None else [float(x) for x in rec["probs"]]
            for t, rec in zip(texts, done.records)]


def reader_accuracy(statements: pd.DataFrame, probs: list[list[float] | None], questions: dict[str, Question],
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """How often the reader's read-back names the stated option (argmax), with a BCa interval over questions,
    and the chance rate (mean 1 / number of options)."""
    got, chance = [], []
    for r, p in zip(statements.itertuples(index=False), probs):
        values = [v for v, _ in questions[r.qid].options]
        got.append(np.nan if p is None else float(values[int(np.argmax(p))] == r.stated))
        chance.append(1 / len(values))
    d = pd.DataFrame({"qid": statements.qid.to_numpy(), "correct": got, "chance": chance})
    ci = mean_bootstrap(d, ["correct"], n_boot=n_boot, seed=seed).loc["correct"]
    return {"accuracy": float(ci.estimate), "lo": float(ci.lo), "hi": float(ci.hi), "statements": len(d),
            "questions": int(d.qid.nunique()), "chance": float(np.mean(chance)), "unread": int(np.isnan(got).sum())}


def log_score(p, counts) -> float:
    """Mean natural-log probability that ``p`` gives the group's answers (weighted shares ``counts``)."""
    p = np.clip(np.asarray(p, float), 1e-12, None)
    c = np.asarray(counts, float)
    return float((c / c.sum() * np.log(p / p.sum())).sum())


def compare(pairs: pd.DataFrame, probs: list[list[float] | None], floor: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per pair: TV, W1 and log score of the read-back distribution against the group's survey distribution,
    and the floors (``floor_tv``, ``floor_w1`` from the noise-floor table, bootstrap estimates; ``floor_log_score``
    = minus the entropy of the group's distribution)."""
    rows = []
    for r, p in zip(pairs.to_dict("records"), probs):
        c = np.asarray(r["weighted_counts"], float)
        share = c / c.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            best = float(np.where(share > 0, share * np.log(share), 0.0).sum())
        ok = p is not None
        rows.append({"qid": r["qid"], "subgroup_id": r["subgroup_id"],
                     "tv": total_variation(p, c) if ok else np.nan, "w1": wasserstein(p, c) if ok else np.nan,
                     "log_score": log_score(p, c) if ok else np.nan, "floor_log_score": best})
    out = pd.DataFrame(rows)
    if floor is not None:
        f = floor[["qid", "subgroup_id", "boot_tv", "boot_w1"]].rename(columns={"boot_tv": "floor_tv",
                                                                               "boot_w1": "floor_w1"})
        out = out.merge(f, on=["qid", "subgroup_id"], how="left", validate="one_to_one")
        missing = int(out.floor_tv.isna().sum())
        if missing:
            raise ValueError(f"The noise-floor table has no row for {missing} of {len(out)} pairs (e.g. "
                             f"{out[out.floor_tv.isna()].iloc[0][['qid', 'subgroup_id']].tolist()}): it was built "
                             "for another pairs table; rebuild it (notebook 08 with the survey file).")
    return out


def summary(per_pair: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per system: the mean of each distance and of its floor with 95% BCa intervals over questions."""
    rows = []
    for system, d in per_pair.items():
        cols = [c for c in (*DISTANCES, "floor_tv", "floor_w1", "floor_log_score") if c in d]
        ci = mean_bootstrap(d, cols, n_boot=n_boot, seed=seed)
        for col, r in ci.iterrows():
            rows.append({"system": system, "statistic": col, "estimate": r.estimate, "lo": r.lo, "hi": r.hi,
                         "pairs": int(d[col].notna().sum()), "questions": int(d.qid.nunique())})
    return pd.DataFrame(rows)


def sign_flip_p(diff_by_question: np.ndarray, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip permutation test of a mean difference over questions."""
    d = np.asarray(diff_by_question, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(n_perm, d.size))
    null = np.abs((signs * d).mean(1))
    return float((1 + np.sum(null >= abs(d.mean()) - 1e-15)) / (n_perm + 1))


def holm(p: list[float]) -> list[float]:
    """Holm-adjusted p-values (same order as given)."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    adj = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def paired_change(base: pd.DataFrame, tuned: dict[str, pd.DataFrame], n_boot: int = 1000, seed: int = 0,
                  n_perm: int = 10000) -> pd.DataFrame:
    """Per fine-tune and distance: mean paired difference (fine-tune minus base, over the same pairs), its 95%
    BCa interval over questions, a sign-flip permutation p-value over questions and its Holm adjustment over the
    whole family, and which way it moved (``closer``, ``farther``, ``no clear difference`` at Holm p < 0.05 with
    an interval that excludes 0)."""
    rows = []
    for name, t in tuned.items():
        m = base.merge(t, on=["qid", "subgroup_id"], suffixes=("_base", "_tuned"), validate="one_to_one")
        if len(m) != len(base):
            raise ValueError(f"{name}: paired change needs the same pairs as the base ({len(base)}), got {len(m)}.")
        diffs = pd.DataFrame({"qid": m.qid} | {k: m[f"{k}_tuned"] - m[f"{k}_base"] for k in DISTANCES})
        ci = mean_bootstrap(diffs, list(DISTANCES), n_boot=n_boot, seed=seed)
        per_q = diffs.groupby("qid")[list(DISTANCES)].mean()
        for k in DISTANCES:
            rows.append({"system": name, "statistic": k, "base": float(m[f"{k}_base"].mean()),
                         "tuned": float(m[f"{k}_tuned"].mean()), "difference": ci.loc[k, "estimate"],
                         "lo": ci.loc[k, "lo"], "hi": ci.loc[k, "hi"], "p_value": sign_flip_p(per_q[k], n_perm, seed),
                         "pairs": int(diffs[k].notna().sum()), "questions": int(diffs.qid.nunique())})
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_holm"] = holm(out.p_value.tolist())

    def verdict(r) -> str:
        if not (r.p_holm < 0.05 and (r.lo > 0 or r.hi < 0)):
            return "no clear difference"
        return "closer" if (r.difference < 0) == SMALLER_IS_CLOSER[r.statistic] else "farther"

    out["verdict"] = [verdict(r) for r in out.itertuples()]
    return out


def pairs_needed(half_width: float, n: int, target: float = 0.05) -> int:
    """Pairs needed for a 95% interval of half-width ``target``, from a half-width ``half_width`` measured at ``n``
    pairs (half-widths shrink as 1/sqrt(n))."""
    if not (np.isfinite(half_width) and half_width >= 0 and n > 0):
        raise ValueError(f"pairs_needed needs a finite half-width >= 0 and n > 0; got {half_width!r}, {n!r}.")
    return int(np.ceil(n * (half_width / target) ** 2))
