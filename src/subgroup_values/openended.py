"""Open-ended persona answers and a pairwise judge: does training on numeric answers change how a model talks?

1. Each system answers the question *without options*, in persona, in a few sentences.
2. A judge compares a system's answer with a reference system's on each criterion, twice, with the two answers'
   positions swapped (A/B then B/A). Win 1, tie 0.5, loss 0; the win rate is the mean over both orders.
3. Criteria (rubrics below). For *Value* the judge is shown the subgroup's real answer distribution from the
   survey, so it can tell which answer is closer to what this group actually thinks.

The judge reads with either ``generate`` (a reply "Verdict: A|B|tie", parsed; failures retried with a stricter
reminder, then counted) or ``logprob`` (the probabilities of A, B and tie right after "Verdict:"; never fails).
Everything goes through the response cache: judging is the expensive part of such studies.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .backends.base import Backend, GenerateRequest, ScoreRequest, reply_records
from .backends.cache import NullCache, ResponseCache, cache_key, fill
from .bootstrap import bootstrap
from .prompts import attributes_of, default_country, describe, fill_placeholders
from .questions import Question

CRITERIA = {
    "Overall": "Which response is the better answer overall: relevant to the question, coherent, and a "
               "plausible answer from this person?",
    "Value": "Which response expresses a view closer to what people of this group actually think? "
             "The survey's real answers of this group are given below.",
    "Persona": "Which response sounds more like it comes from this particular person (their age, sex, ethnicity "
               "or religion, as given), rather than from anyone at all?",
}
VERDICTS = ("A", "B", "tie")
JUDGE_SYSTEM = "You are a careful, impartial judge of survey answers. You compare two responses."


def open_question(q: Question, country: str | None = None) -> str:
    """The question's wording as asked (placeholders filled), without the list of options."""
    return fill_placeholders(q.text, country or default_country())


def open_messages(q: Question, attributes: dict[str, str], country: str | None = None) -> list[dict]:
    country = country or default_country()
    persona = describe(attributes)
    return [{"role": "system", "content": f"You are {persona} living in {country}. Answer as yourself."},
            {"role": "user", "content": f"{open_question(q, country)}\n\nIn two or three sentences, what do you "
                                        f"think, and why?"}]


def distribution_text(q: Question, weighted_counts: list[float]) -> str:
    c = np.asarray(weighted_counts, float)
    share = c / c.sum() if c.sum() > 0 else c
    return "; ".join(f"{label}: {p:.0%}" for (_, label), p in zip(q.options, share))


def judge_messages(q: Question, attributes: dict[str, str], criterion: str, answer_a: str, answer_b: str,
                   weighted_counts: list[float] | None = None, country: str | None = None) -> list[dict]:
    country = country or default_country()
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
    context = ""
    if criterion == "Value" and weighted_counts is not None:
        context = f"\nHow this group really answered in the survey: {distribution_text(q, weighted_counts)}\n"
    user = (f"Person: {describe(attributes)} living in {country}.\nQuestion: {open_question(q, country)}\n{context}\n"
            f"Response A: {answer_a}\n\nResponse B: {answer_b}\n\n{CRITERIA[criterion]}\n"
            f"Reply with exactly one line: \"Verdict: A\", \"Verdict: B\" or \"Verdict: tie\".")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


def parse_verdict(reply: str) -> str | None:
    """'Verdict: A' / 'B' / 'tie' (case-insensitive; also a bare 'A', 'Response B', 'Tie'); None when unclear."""
    text = (reply or "").strip()
    m = re.search(r"verdict\s*[:\-]?\s*\**\s*(A|B|tie)\b", text, re.IGNORECASE)
    if m is None:
        m = re.fullmatch(r"\**\s*(?:response\s+)?(A|B|tie)\s*[.!]?\**", text, re.IGNORECASE)
    if m is None:
        return None
    v = m.group(1)
    return "tie" if v.lower() == "tie" else v.upper()


def generate_answers(backend: Backend, pairs: pd.DataFrame, questions: dict[str, Question],
                     cache: ResponseCache | NullCache | None = None, max_new_tokens: int = 64,
                     chunk_size: int = 16, progress: bool = False) -> list[str | None]:
    """Free-text persona answers for every pair (cached in chunks; None where a request failed)."""
    msgs = [open_messages(questions[r["qid"]], attributes_of(r)) for r in pairs.to_dict("records")]
    keys = [cache_key(backend=backend.identity(), settings={"task": "open_answer", "max_new_tokens": max_new_tokens},
                      messages=m) for m in msgs]
    done = fill(cache, keys, lambda idx: reply_records(backend.generate([GenerateRequest(msgs[i], max_new_tokens) for i in idx])),
                chunk_size=chunk_size, desc="open answers", progress=progress)
    return [r.get("reply") for r in done.records]


def judge(backend: Backend, pairs: pd.DataFrame, questions: dict[str, Question], system_answers: list[str],
          reference_answers: list[str], criteria: list[str] | tuple[str, ...] = tuple(CRITERIA),
          mode: str = "logprob", cache: ResponseCache | NullCache | None = None, retries: int = 2,
          max_new_tokens: int = 8, chunk_size: int = 32) -> pd.DataFrame:
    """Judge every pair on every criterion in both orders. One row per judgement:
    ``order`` ('system_first' / 'system_second'), the verdict about the slots (A/B/tie or None), and ``score``
    for the system (1 win, 0.5 tie, 0 loss, NaN when the judge's reply could not be read)."""
    if mode not in ("logprob", "generate"):
        raise ValueError(f"judge mode must be logprob or generate, got {mode!r}.")
    jobs = []
    for i, r in enumerate(pairs.to_dict("records")):
        q, attrs = questions[r["qid"]], attributes_of(r)
        for criterion in criteria:
            for order, (a, b) in (("system_first", (system_answers[i], reference_answers[i])),
                                  ("system_second", (reference_answers[i], system_answers[i]))):
                jobs.append({"i": i, "qid": r["qid"], "subgroup_id": r["subgroup_id"], "criterion": criterion,
                             "order": order, "messages": judge_messages(q, attrs, criterion, a, b,
                                                                        r.get("weighted_counts"))})
    identity = backend.identity()
    verdicts: list[str | None] = [None] * len(jobs)
    attempts = [0] * len(jobs)
    if mode == "logprob":
        keys = [cache_key(backend=identity, settings={"task": "judge", "mode": "logprob"}, messages=j["messages"])
                for j in jobs]

        def score(idx: list[int]) -> list[dict]:
            scored = backend.score([ScoreRequest(jobs[k]["messages"], list(VERDICTS), prefix="Verdict:") for k in idx])
            return [{"probs": x.probs, "status": x.status} | ({"error": x.error} if x.error else {}) for x in scored]

        done = fill(cache, keys, score, chunk_size=chunk_size, desc="judgements", progress=False)
        for k, rec in enumerate(done.records):
            verdicts[k] = VERDICTS[int(np.argmax(rec["probs"]))] if rec.get("probs") is not None else None
            attempts[k] = 1
    else:
        pending = list(range(len(jobs)))
        for attempt in range(retries + 1):
            if not pending:
                break
            reminder = "" if attempt == 0 else "\n\nAnswer with exactly one of: Verdict: A / Verdict: B / Verdict: tie."
            msgs = [[*jobs[k]["messages"][:-1], {"role": "user", "content": jobs[k]["messages"][-1]["content"] + reminder}]
                    for k in pending]
            keys = [cache_key(backend=identity, settings={"task": "judge", "mode": "generate",
                                                          "max_new_tokens": max_new_tokens}, messages=m) for m in msgs]
            done = fill(cache, keys, lambda idx, msgs=msgs: reply_records(
                backend.generate([GenerateRequest(msgs[i], max_new_tokens) for i in idx])), chunk_size=chunk_size,
                desc="judgements", progress=False)
            for k, rec in zip(pending, done.records):
                attempts[k] = attempt + 1
                verdicts[k] = parse_verdict(rec.get("reply"))
            pending = [k for k in pending if verdicts[k] is None]
    rows = []
    for j, v, n in zip(jobs, verdicts, attempts):
        system_slot = "A" if j["order"] == "system_first" else "B"
        s = np.nan if v is None else 0.5 if v == "tie" else float(v == system_slot)
        rows.append({"qid": j["qid"], "subgroup_id": j["subgroup_id"], "criterion": j["criterion"],
                     "order": j["order"], "verdict": v, "score": s, "attempts": n})
    return pd.DataFrame(rows)


def win_rates(judgements: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Win rate per criterion (both orders averaged) with bootstrap intervals over questions, the share of
    unreadable judgements, and position bias: how often the judge picks slot A when it picks a side."""
    rows = []
    for criterion, d in judgements.groupby("criterion", sort=False):
        ok = d.dropna(subset=["score"])
        ci = bootstrap(ok, lambda x: x["score"].mean(), n_boot=n_boot, seed=seed).iloc[0] if len(ok) else None
        sided = d[d.verdict.isin(["A", "B"])]
        rows.append({"criterion": criterion, "judgements": len(d), "unreadable": int(d.score.isna().sum()),
                     "win_rate": ci.estimate if ci is not None else np.nan,
                     "lo": ci.lo if ci is not None else np.nan, "hi": ci.hi if ci is not None else np.nan,
                     "ties": float((d.verdict == "tie").mean()),
                     "prefers_slot_A": float((sided.verdict == "A").mean()) if len(sided) else np.nan,
                     "order_agreement": _order_agreement(d)})
    return pd.DataFrame(rows)


def _order_agreement(d: pd.DataFrame) -> float:
    """Share of pairs where the two orders give the same outcome for the system (a consistent judge)."""
    w = d.pivot_table(index=["qid", "subgroup_id"], columns="order", values="score", aggfunc="first").dropna()
    if w.empty or w.shape[1] < 2:
        return np.nan
    return float((w["system_first"] == w["system_second"]).mean())
