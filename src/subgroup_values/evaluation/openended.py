"""Open-ended persona answers and a pairwise judge: does training on numeric answers change how a model talks?

1. Each system answers the question *without options*, in persona, in a few sentences.
2. A judge compares a system's answer with a reference system's on each criterion, twice, with the two answers'
   positions swapped (A/B then B/A). Win 1, tie 0.5, loss 0; the win rate is the mean over both orders.
3. Criteria (rubrics below). For *Value* the judge is shown the subgroup's real answer distribution from the
   survey, so it can tell which answer is closer to what this group actually thinks.

The judge reads with either ``generate`` (a reply "Verdict: A|B|tie", parsed; failures retried with a stricter
reminder, then counted) or ``logprob`` (the probabilities of A, B and tie right after "Verdict:"; never fails).
Everything goes through the response cache: judging is the expensive part of such studies.

A judge is validated before its verdicts are read (:mod:`subgroup_values.evaluation.judge_validation`: known-better pairs built
from the survey, a bar); a judge whose two orders agree on fewer than half of the items gets no win rate at all
(:data:`MIN_ORDER_AGREEMENT`, issue 28), never a zero-width interval. A log-probability judge is also read
*calibrated* (:func:`calibrated_win_rates`: the slot prior of the validation set subtracted from the verdict
log-odds, both orders averaged) and *length-controlled* (a logistic fit on the length difference, read at zero).
The stance read-back (:mod:`subgroup_values.evaluation.readback`) reads the same free text without a judge.
:func:`open_ended_claims` turns it all into claims (topic ``open_ended``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..backends.base import Backend, GenerateRequest, ScoreRequest, reply_records
from ..backends.cache import NullCache, ResponseCache, cache_key, fill
from ..core.choices import JUDGE_MODES
from ..stats.bootstrap import bootstrap
from ..survey.prompts import attributes_of, describe, fill_placeholders
from ..survey.questions import Question
from ..survey.study import Study, resolve, study_of

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
    """The question's wording as asked (placeholders filled; ``country`` None: Singapore), without the options."""
    return fill_placeholders(q.text, country or resolve(None).country_name)


def open_messages(q: Question, attributes: dict[str, str], country: str | None = None,
                  study: Study | str | None = None) -> list[dict]:
    """The open question put to a persona of ``study`` (None: Singapore's)."""
    study = resolve(study)
    country = country or study.country_name
    persona = describe(attributes, study)
    return [{"role": "system", "content": f"You are {persona} living in {country}. Answer as yourself."},
            {"role": "user", "content": f"{open_question(q, country)}\n\nIn two or three sentences, what do you "
                                        f"think, and why?"}]


def distribution_text(q: Question, weighted_counts: list[float]) -> str:
    c = np.asarray(weighted_counts, float)
    share = c / c.sum() if c.sum() > 0 else c
    return "; ".join(f"{label}: {p:.0%}" for (_, label), p in zip(q.options, share))


def judge_messages(q: Question, attributes: dict[str, str], criterion: str, answer_a: str, answer_b: str,
                   weighted_counts: list[float] | None = None, country: str | None = None,
                   study: Study | str | None = None) -> list[dict]:
    study = resolve(study)
    country = country or study.country_name
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {list(CRITERIA)}, got {criterion!r}.")
    context = ""
    if criterion == "Value" and weighted_counts is not None:
        context = f"\nHow this group really answered in the survey: {distribution_text(q, weighted_counts)}\n"
    user = (f"Person: {describe(attributes, study)} living in {country}.\nQuestion: {open_question(q, country)}\n{context}\n"
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
                     chunk_size: int = 16, progress: bool = False, timings: dict | None = None,
                     timing_name: str = "open answers", study=None) -> list[str | None]:
    """Free-text persona answers for every pair (cached in chunks; None where a request failed).
    ``timings[timing_name]`` gets (seconds computing, answers computed); ``study`` None: the pairs' own."""
    study = study_of(pairs, study)
    msgs = [open_messages(questions[r["qid"]], attributes_of(r, study), study=study) for r in pairs.to_dict("records")]
    keys = [cache_key(backend=backend.identity(), settings={"task": "open_answer", "max_new_tokens": max_new_tokens},
                      messages=m) for m in msgs]
    done = fill(cache, keys, lambda idx: reply_records(backend.generate([GenerateRequest(msgs[i], max_new_tokens) for i in idx])),
                chunk_size=chunk_size, desc=timing_name, progress=progress)
    if timings is not None:
        timings[timing_name] = (done.seconds, done.computed)
    return [r.get("reply") for r in done.records]


def run_judge(backend: Backend, messages: list[list[dict]], mode: str = "logprob",
              cache: ResponseCache | NullCache | None = None, retries: int = 2, max_new_tokens: int = 8,
              chunk_size: int = 32, timings: dict | None = None, timing_name: str = "judgements",
              groups: list[str] | None = None) -> tuple[list[str | None], list[list[float] | None], list[int]]:
    """The judge's verdict on each prompt (through the response cache): (verdicts, probabilities of A/B/tie in
    logprob mode else None, attempts). ``logprob`` reads P(A), P(B), P(tie) right after "Verdict:" with the
    backend's option scoring (the evaluation's scorer); ``generate`` parses a reply, retrying unreadable ones with
    a stricter reminder. ``timings[timing_name]`` gets (seconds computing, requests computed). ``groups`` names
    prompts that share a long prefix (a pair's orders and criteria): the backend computes the shared part once."""
    if mode not in JUDGE_MODES:
        raise ValueError(f"judge mode must be logprob or generate, got {mode!r}.")
    if mode == "logprob" and not backend.supports_logprob:
        raise ValueError(f"The {backend.kind} backend cannot score verdicts; use judge mode 'generate'.")
    identity = backend.identity()
    verdicts: list[str | None] = [None] * len(messages)
    probs: list[list[float] | None] = [None] * len(messages)
    attempts = [0] * len(messages)
    seconds, computed = 0.0, 0
    if mode == "logprob":
        keys = [cache_key(backend=identity, settings={"task": "judge", "mode": "logprob"}, messages=m)
                for m in messages]

        def score(idx: list[int]) -> list[dict]:
            scored = backend.score([ScoreRequest(messages[k], list(VERDICTS), prefix="Verdict:",
                                                 group=groups[k] if groups else None) for k in idx])
            return [{"probs": x.probs, "status": x.status} | ({"error": x.error} if x.error else {}) for x in scored]

        done = fill(cache, keys, score, order=(lambda k: groups[k]) if groups else None, chunk_size=chunk_size,
                    desc=timing_name, progress=False)
        seconds, computed = done.seconds, done.computed
        for k, rec in enumerate(done.records):
            if rec.get("probs") is not None:
                probs[k] = [float(x) for x in rec["probs"]]
                verdicts[k] = VERDICTS[int(np.argmax(rec["probs"]))]
            attempts[k] = 1
    else:
        pending = list(range(len(messages)))
        for attempt in range(retries + 1):
            if not pending:
                break
            reminder = "" if attempt == 0 else "\n\nAnswer with exactly one of: Verdict: A / Verdict: B / Verdict: tie."
            msgs = [[*messages[k][:-1], {"role": "user", "content": messages[k][-1]["content"] + reminder}]
                    for k in pending]
            keys = [cache_key(backend=identity, settings={"task": "judge", "mode": "generate",
                                                          "max_new_tokens": max_new_tokens}, messages=m) for m in msgs]
            done = fill(cache, keys, lambda idx, msgs=msgs: reply_records(
                backend.generate([GenerateRequest(msgs[i], max_new_tokens) for i in idx])), chunk_size=chunk_size,
                desc=timing_name, progress=False)
            seconds, computed = seconds + done.seconds, computed + done.computed
            for k, rec in zip(pending, done.records):
                attempts[k] = attempt + 1
                verdicts[k] = parse_verdict(rec.get("reply"))
            pending = [k for k in pending if verdicts[k] is None]
    if timings is not None:
        timings[timing_name] = (seconds, computed)
    return verdicts, probs, attempts


def judge(backend: Backend, pairs: pd.DataFrame, questions: dict[str, Question], system_answers: list[str],
          reference_answers: list[str], criteria: list[str] | tuple[str, ...] = tuple(CRITERIA),
          mode: str = "logprob", cache: ResponseCache | NullCache | None = None, retries: int = 2,
          max_new_tokens: int = 8, chunk_size: int = 32, timings: dict | None = None, study=None) -> pd.DataFrame:
    """Judge every pair on every criterion in both orders (``study`` None: the pairs' own). One row per judgement:
    ``order`` ('system_first' / 'system_second'), the verdict about the slots (A/B/tie or None), ``score``
    for the system (1 win, 0.5 tie, 0 loss, NaN when the judge's reply could not be read), in logprob mode the
    probabilities ``p_A``, ``p_B``, ``p_tie``, and the two answers' lengths in characters."""
    jobs = []
    study = study_of(pairs, study)
    for i, r in enumerate(pairs.to_dict("records")):
        q, attrs = questions[r["qid"]], attributes_of(r, study)
        for criterion in criteria:
            for order, (a, b) in (("system_first", (system_answers[i], reference_answers[i])),
                                  ("system_second", (reference_answers[i], system_answers[i]))):
                jobs.append({"i": i, "qid": r["qid"], "subgroup_id": r["subgroup_id"], "criterion": criterion,
                             "order": order, "messages": judge_messages(q, attrs, criterion, a, b,
                                                                        r.get("weighted_counts"), study=study)})
    verdicts, probs, attempts = run_judge(backend, [j["messages"] for j in jobs], mode, cache, retries,
                                          max_new_tokens, chunk_size, timings,
                                          groups=[f"judge:{j['qid']}:{j['subgroup_id']}" for j in jobs])
    rows = []
    for j, v, p, n in zip(jobs, verdicts, probs, attempts):
        system_slot = "A" if j["order"] == "system_first" else "B"
        s = np.nan if v is None else 0.5 if v == "tie" else float(v == system_slot)
        rows.append({"qid": j["qid"], "subgroup_id": j["subgroup_id"], "criterion": j["criterion"],
                     "order": j["order"], "verdict": v, "score": s, "attempts": n,
                     "p_A": np.nan if p is None else p[0], "p_B": np.nan if p is None else p[1],
                     "p_tie": np.nan if p is None else p[2],
                     "system_chars": len(system_answers[j["i"]] or ""),
                     "reference_chars": len(reference_answers[j["i"]] or "")})
    return pd.DataFrame(rows)


#: Issue 28's rule: a judge whose two orders agree on fewer than half of the items fixes its win rate by
#: construction; the win rate is then reported as uninformative, with no interval.
MIN_ORDER_AGREEMENT = 0.5


def win_rates(judgements: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Raw win rate per criterion (both orders averaged) with bootstrap intervals over questions, the share of
    unreadable judgements, and position bias: how often the judge picks slot A when it picks a side.

    ``status`` is ``ok``, or ``judge uninformative (order agreement x%)`` when the two orders agree on fewer than
    half of the pairs, or ``uninformative (every resample gives the same value)``; an uninformative row has no
    win rate and no interval (``win_rate``, ``lo``, ``hi`` are NaN; ``raw_mean`` keeps the mean for the record)."""
    rows = []
    for criterion, d in judgements.groupby("criterion", sort=False):
        ok = d.dropna(subset=["score"])
        ci = bootstrap(ok, lambda x: x["score"].mean(), n_boot=n_boot, seed=seed).iloc[0] if len(ok) else None
        sided = d[d.verdict.isin(["A", "B"])]
        agreement = _order_agreement(d)
        status = "ok"
        if ci is None:
            status = "uninformative (no readable verdict)"
        elif np.isfinite(agreement) and agreement < MIN_ORDER_AGREEMENT:
            status = f"judge uninformative (order agreement {agreement:.0%})"
        elif ci.lo == ci.hi:
            status = "uninformative (every resample gives the same value)"
        good = status == "ok"
        rows.append({"criterion": criterion, "judgements": len(d), "unreadable": int(d.score.isna().sum()),
                     "win_rate": ci.estimate if good else np.nan, "lo": ci.lo if good else np.nan,
                     "hi": ci.hi if good else np.nan, "raw_mean": ci.estimate if ci is not None else np.nan,
                     "status": status, "ties": float((d.verdict == "tie").mean()),
                     "prefers_slot_A": float((sided.verdict == "A").mean()) if len(sided) else np.nan,
                     "order_agreement": agreement})
    return pd.DataFrame(rows)


def win_rate_text(row) -> str:
    """``0.512 [0.430, 0.590]``, or the row's status when the win rate is uninformative (never a zero-width
    interval)."""
    if getattr(row, "status", "ok") != "ok" or not np.isfinite(row.win_rate):
        return str(row.status)
    return f"{row.win_rate:.3f} [{row.lo:.3f}, {row.hi:.3f}]"


def _order_agreement(d: pd.DataFrame) -> float:
    """Share of pairs where the two orders give the same outcome for the system (a consistent judge)."""
    w = d.pivot_table(index=["qid", "subgroup_id"], columns="order", values="score", aggfunc="first").dropna()
    if w.empty or w.shape[1] < 2:
        return np.nan
    return float((w["system_first"] == w["system_second"]).mean())


# ---- the calibrated log-probability judge ---------------------------------------------------------------------

def item_evidence(judgements: pd.DataFrame, prior: float) -> pd.DataFrame:
    """Per (criterion, pair): the calibrated evidence for the system, the mean over both orders of the verdict
    log-odds toward the system's slot after subtracting the judge's slot prior ``prior`` (estimated on the
    validation set); and the length difference (system minus reference, characters). For a purely additive slot
    bias the two orders' prior terms cancel in the mean; the per-order verdicts (and so the flip rate) are what
    the prior corrects."""
    from .judge_validation import log_odds

    lo = log_odds(judgements) - prior
    toward = np.where(judgements.order == "system_first", lo, -lo)
    d = judgements.assign(toward=toward, dlen=judgements.system_chars - judgements.reference_chars)
    g = d.groupby(["criterion", "qid", "subgroup_id"], sort=False)
    out = g.agg(evidence=("toward", "mean"), n=("toward", lambda s: int(np.isfinite(s).sum())),
                dlen=("dlen", "first")).reset_index()
    return out[out.n == 2].drop(columns="n")


def _fit_length_logit(y: np.ndarray, z: np.ndarray, ridge: float = 1.0, iters: int = 50) -> np.ndarray:
    """Logistic regression of the (0, 0.5, 1) outcomes ``y`` on an intercept and the length covariate ``z``
    (Newton steps; a ridge penalty on the length coefficient keeps it finite under separation)."""
    x = np.column_stack([np.ones_like(z), z])
    beta = np.zeros(2)
    pen = np.diag([1e-6, ridge])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ beta)))
        grad = x.T @ (y - p) - pen @ beta
        hess = x.T @ (x * (p * (1 - p))[:, None]) + pen
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.abs(step).max() < 1e-9:
            break
    return beta


def calibrated_win_rates(judgements: pd.DataFrame, prior: float, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per criterion: the calibrated win rate (share of pairs whose calibrated evidence favours the system; 0.5
    at exactly zero) and the length-controlled win rate (as AlpacaEval's: a logistic regression of the calibrated
    outcome on an intercept and tanh(length difference / its SD), read at a length difference of zero), each with
    a 95% BCa bootstrap interval over questions, and the fitted length coefficient."""
    ev = item_evidence(judgements, prior)
    rows = []
    for criterion, d in ev.groupby("criterion", sort=False):
        d = d.assign(win=np.where(d.evidence == 0, 0.5, (d.evidence > 0).astype(float)))
        sd = float(d.dlen.std()) or 1.0

        def stats(x: pd.DataFrame, sd: float = sd) -> pd.Series:
            beta = _fit_length_logit(x.win.to_numpy(float), np.tanh(x.dlen.to_numpy(float) / sd))
            return pd.Series({"calibrated": x.win.mean(), "length_controlled": 1 / (1 + np.exp(-beta[0])),
                              "length_coef": beta[1]})

        ci = bootstrap(d, stats, n_boot=n_boot, seed=seed)
        row = {"criterion": criterion, "pairs": len(d), "questions": d.qid.nunique()}
        for name in ("calibrated", "length_controlled", "length_coef"):
            r = ci.loc[name]
            row |= {name: r.estimate, f"{name}_lo": r.lo, f"{name}_hi": r.hi}
        rows.append(row)
    return pd.DataFrame(rows)


# ---- findings ---------------------------------------------------------------------------------------------------

def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "x"


def _ci_of(estimate, lo, hi, digits: int = 3) -> str:
    """An estimate with its interval; a zero-width interval (every resample the same) is said, not printed."""
    from ..core.claims import fmt, fmt_ci

    if not np.isfinite(float(estimate)):
        return "n/a (no readable values)"
    if not (np.isfinite(float(lo)) and np.isfinite(float(hi))) or float(lo) == float(hi):
        return f"{fmt(float(estimate), digits)} (every resample the same: no interval)"
    return fmt_ci(float(estimate), float(lo), float(hi), digits)


def _num(x, digits: int = 3) -> str:
    from ..core.claims import fmt

    return fmt(float(x), digits) if x is not None and np.isfinite(float(x)) else "n/a"


def _ci(r, digits: int = 3) -> str:
    return _ci_of(r.estimate, r.lo, r.hi, digits)


def _f(x) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def open_ended_claims(judge_name: str, scores: pd.DataFrame, raw_rates: pd.DataFrame | None,
                      calibrated: pd.DataFrame | None, reader_name: str, reader: dict, readback: pd.DataFrame,
                      changes: pd.DataFrame, scale: dict | None = None, source: str = "",
                      criteria: list[str] | tuple[str, ...] = tuple(CRITERIA)) -> list:
    """The open-ended findings as claims, in the order a reader needs them: the judge's validation (raw, then
    calibrated), then per criterion the win rate or "uninformative" with the reason, then the read-back
    comparison per system (with the reader's validation accuracy) and its paired change, then the scale needed.

    ``scores``: :func:`judge_validation.judge_scores`; ``raw_rates``: :func:`win_rates`; ``calibrated``:
    :func:`calibrated_win_rates` (None for a generate-mode judge); ``raw_rates`` None: the items were not judged
    (a judge that failed its validation: the ``criteria`` get an "uninformative" claim each); ``reader``: :func:`readback.reader_accuracy`;
    ``readback``: :func:`readback.summary`; ``changes``: :func:`readback.paired_change`; ``scale``: pairs needed
    and seconds per pair (:func:`scale_estimate`)."""
    from ..core.claims import Claim, fmt
    from .judge_validation import BAR_RULE, passes

    claims = []
    j = _slug(judge_name)
    verdict_of = {}
    for variant in ("raw", "calibrated"):
        s = scores[scores.variant == variant].set_index("score")
        if s.empty:
            continue
        ok, why = passes(scores, variant)
        verdict_of[variant] = (ok, why)
        acc = s.loc["accuracy"]
        prior = scores.attrs.get("slot_prior")
        how = ("verdicts as read (arg max of A / B / tie)" if variant == "raw" else
               f"log-odds minus the slot prior ({fmt(prior, 2)} nats, from this set), both orders averaged")
        sentence = (f"Judge {judge_name}, {variant} ({how}), on {scores.attrs.get('items', acc.n)} known-better "
                    f"pairs ({acc.questions} questions, both orders): accuracy {_ci(acc)}, swap-flip rate "
                    f"{_ci(s.loc['swap-flip rate'])}, slot-A rate {_ci(s.loc['slot-A rate'])}, prefers the longer "
                    f"answer {_ci(s.loc['prefers longer'])}: "
                    + ("informative." if ok else f"uninformative ({why})."))
        claims.append(Claim(
            id=f"open_ended.judge.{j}.{variant}", topic="open_ended", statistic="judge validation accuracy",
            estimate=_f(acc.estimate), lo=_f(acc.lo), hi=_f(acc.hi), method="95% BCa bootstrap over questions",
            rule=BAR_RULE, verdict="informative" if ok else "uninformative", sentence=sentence, source=source,
            extra={r.score: {"estimate": _f(r.estimate), "lo": _f(r.lo), "hi": _f(r.hi), "n": int(r.n)}
                   for r in s.reset_index().itertuples()} | {"slot_prior": _f(prior),
                                                             "unreadable": scores.attrs.get("unreadable")}))
    usable = [v for v in ("calibrated", "raw") if verdict_of.get(v, (False, ""))[0]
              and (v == "raw" or calibrated is not None)]
    use = usable[0] if usable else ("calibrated" if "calibrated" in verdict_of else "raw")
    ok, why = verdict_of.get(use, (False, "no validation scores"))
    if raw_rates is None:
        for crit in criteria:
            claims.append(Claim(id=f"open_ended.win_rate.{_slug(crit)}", topic="open_ended",
                                statistic=f"{crit} win rate, system vs reference", verdict="uninformative",
                                rule=BAR_RULE, method="judge validation first",
                                sentence=f"{crit}: no win rate; the items were not judged because judge {judge_name} "
                                         f"failed its validation ({use}: {why}).",
                                protocol="paper", source=source, extra={"reason": why, "judged": False}))
        raw_rates = pd.DataFrame(columns=["criterion"])
    for r in raw_rates.itertuples():
        crit = r.criterion
        raw_txt = win_rate_text(r)
        if not ok:
            sentence = (f"{crit}: no win rate is shown; the {use} judge {judge_name} is uninformative ({why}); "
                        f"the raw win rate reads {raw_txt} (order agreement {r.order_agreement:.0%}, slot A in "
                        f"{r.prefers_slot_A:.0%} of sided verdicts).")
            claims.append(Claim(id=f"open_ended.win_rate.{_slug(crit)}", topic="open_ended",
                                statistic=f"{crit} win rate, system vs reference", verdict="uninformative",
                                rule=BAR_RULE, method="judge validation first", sentence=sentence, protocol="paper",
                                source=source, extra={"reason": why, "raw_status": r.status,
                                                      "order_agreement": _f(r.order_agreement)}))
            continue
        if use == "calibrated":
            c = calibrated.set_index("criterion").loc[crit]
            est, lo, hi = c.calibrated, c.calibrated_lo, c.calibrated_hi
            verdict = "better" if lo > 0.5 else "worse" if hi < 0.5 else "no clear difference"
            sentence = (f"{crit}: calibrated win rate {_ci_of(est, lo, hi)} (length-controlled "
                        f"{_ci_of(c.length_controlled, c.length_controlled_lo, c.length_controlled_hi)}; raw "
                        f"{raw_txt}) over {int(c.pairs)} pairs: {verdict}.")
        else:
            est, lo, hi = r.win_rate, r.lo, r.hi
            if r.status != "ok":
                claims.append(Claim(id=f"open_ended.win_rate.{_slug(crit)}", topic="open_ended",
                                    statistic=f"{crit} win rate, system vs reference", verdict="uninformative",
                                    rule="order agreement of at least 50%", sentence=f"{crit}: {raw_txt}.",
                                    protocol="paper", source=source))
                continue
            verdict = "better" if lo > 0.5 else "worse" if hi < 0.5 else "no clear difference"
            sentence = f"{crit}: raw win rate {raw_txt} over {r.judgements // 2} pairs: {verdict}."
        claims.append(Claim(id=f"open_ended.win_rate.{_slug(crit)}", topic="open_ended",
                            statistic=f"{crit} win rate, system vs reference", estimate=_f(est), lo=_f(lo),
                            hi=_f(hi), method="95% BCa bootstrap over questions",
                            rule="better when the interval lies above 0.5, worse when below", verdict=verdict,
                            sentence=sentence, protocol="paper", source=source))
    racc = (f"reader {reader_name} reads back the stated option of {reader['statements']} templated statements "
            f"with accuracy {_ci_of(reader['accuracy'], reader['lo'], reader['hi'])} (chance {fmt(reader['chance'])})")
    claims.append(Claim(id="open_ended.reader.validation", topic="open_ended", statistic="reader validation accuracy",
                        estimate=_f(reader["accuracy"]), lo=_f(reader["lo"]), hi=_f(reader["hi"]),
                        method="95% BCa bootstrap over questions", rule="shown beside every read-back result",
                        verdict="above chance" if reader["lo"] > reader["chance"] else "not above chance",
                        sentence=f"The {racc}.", source=source, extra=dict(reader)))
    reader_ok = bool(np.isfinite(reader["lo"]) and reader["lo"] > reader["chance"])
    for system, d in readback.groupby("system", sort=False):
        s = d.set_index("statistic")
        tv = s.loc["tv"]
        sentence = (f"Read-back of {system}'s open answers vs the groups' survey distributions ({int(tv.pairs)} "
                    f"pairs): TV {_ci(tv)} (floor {fmt(s.loc['floor_tv'].estimate) if 'floor_tv' in s.index else 'n/a'}), "
                    f"W1 {_ci(s.loc['w1'])} (floor {fmt(s.loc['floor_w1'].estimate) if 'floor_w1' in s.index else 'n/a'}), "
                    f"log score {_ci(s.loc['log_score'])} (best possible {fmt(s.loc['floor_log_score'].estimate)}); "
                    f"{racc}" + ("." if reader_ok else ", not above chance: the read-back is uninformative."))
        claims.append(Claim(id=f"open_ended.readback.{_slug(system)}", topic="open_ended",
                            statistic="read-back TV to the survey distribution", estimate=_f(tv.estimate),
                            lo=_f(tv.lo), hi=_f(tv.hi), method="95% BCa bootstrap over questions",
                            rule="compared with the noise floor; uninformative when the reader's validation accuracy "
                                 "interval does not lie above chance", verdict="" if reader_ok else "uninformative",
                            sentence=sentence, protocol="paper",
                            source=source, extra={k: {"estimate": _f(v.estimate), "lo": _f(v.lo), "hi": _f(v.hi)}
                                                  for k, v in s.iterrows()}))
    names = {"tv": "TV", "w1": "W1", "log_score": "log score"}
    for r in changes.itertuples():
        kind = "absolute"
        sentence = (f"{names[r.statistic]} of the read-back, {r.system} minus base ({kind} change, paired over "
                    f"{r.pairs} pairs): {_num(r.base)} -> {_num(r.tuned)}, difference {_ci_of(r.difference, r.lo, r.hi)}, "
                    f"sign-flip p = {_num(r.p_value)} (Holm {_num(r.p_holm)}): "
                    + (f"{r.verdict}; {racc}." if reader_ok else
                       f"uninformative, because the {racc}, not above chance."))
        claims.append(Claim(id=f"open_ended.readback_change.{_slug(r.system)}.{r.statistic}", topic="open_ended",
                            statistic=f"read-back {names[r.statistic]}, {r.system} minus base",
                            estimate=_f(r.difference), lo=_f(r.lo), hi=_f(r.hi), p_value=_f(r.p_value),
                            method="95% BCa bootstrap over questions; paired sign-flip permutation test over questions",
                            rule="closer / farther when the Holm-adjusted p < 0.05 (family: distances x fine-tunes) "
                                 "and the interval excludes 0; uninformative when the reader's validation accuracy "
                                 "interval does not lie above chance",
                            verdict=r.verdict if reader_ok else "uninformative", sentence=sentence, protocol="paper",
                            source=source, extra={"p_holm": _f(r.p_holm)}))
    if scale:
        parts = [f"{v['pairs_needed']} pairs for +-5 points on the {k} (half-width {fmt(v['half_width'])} at "
                 f"{v['pairs']} pairs)" for k, v in scale["needed"].items()]
        cost, most = scale.get("seconds_per_pair"), scale["max_needed"]
        fixed = sum(scale["fixed_seconds"].values()) / 60
        sentence = ("Scale: " + ("; ".join(parts) or "no interval to size (no readable values)")
                    + (f"; measured cost {fmt(cost, 1)} s per pair on this machine (answers, judgements, read-back), "
                       f"so {fmt(cost * most / 60, 0)} minutes for {most} pairs, plus {fmt(fixed, 1)} minutes of "
                       "validation." if cost else "; cost not measured (everything came from the response cache)."))
        claims.append(Claim(id="open_ended.scale", topic="open_ended", statistic="pairs needed for +-5 points",
                            estimate=float(scale["max_needed"]), method="half-widths scale as 1/sqrt(pairs)",
                            rule="intervals of +-0.05", verdict="", sentence=sentence, source=source,
                            extra=scale))
    return claims


def scale_estimate(half_widths: dict[str, tuple[float, int]], timings: dict, units_per_pair: dict[str, float],
                   target: float = 0.05) -> dict:
    """Pairs needed for +-``target`` on each statistic ({name: (half-width, pairs)}) and the measured cost per pair:
    for each step in ``units_per_pair`` (a name in ``timings``, which the steps filled with (seconds, computed)),
    seconds per computed request times requests per pair. None when a step computed nothing (all from the cache).
    Steps in ``timings`` but not in ``units_per_pair`` are fixed costs (the validations)."""
    from .readback import pairs_needed

    needed = {k: {"half_width": float(h), "pairs": int(n), "pairs_needed": pairs_needed(h, n, target)}
              for k, (h, n) in half_widths.items() if np.isfinite(h)}
    per_step = {k: timings[k][0] / timings[k][1] * u for k, u in units_per_pair.items()
                if k in timings and timings[k][1] > 0}
    complete = len(per_step) == len(units_per_pair)
    return {"needed": needed, "max_needed": max((v["pairs_needed"] for v in needed.values()), default=0),
            "seconds_per_pair_by_step": per_step, "seconds_per_pair": float(sum(per_step.values())) if complete else None,
            "fixed_seconds": {k: float(s) for k, (s, _) in timings.items() if k not in units_per_pair},
            "computed": {k: int(c) for k, (_, c) in timings.items()}}
