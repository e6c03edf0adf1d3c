"""Requests in, predictions out, summaries: run a backend over (question, subgroup) pairs.

Every pair's prediction is kept: the chosen option, the option probabilities (``logprob`` scoring), the raw
reply and its parse status (``generate`` scoring), and an error where a request failed. Per-pair scores come
from :func:`subgroup_values.stats.metrics.score_pairs`. Pairs are *consensus* when the subgroup's mode equals the whole
sample's, *divergent* otherwise: emulating a subgroup means getting the divergent ones right.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..backends.base import Backend, GenerateRequest, ScoreRequest, reply_records
from ..backends.cache import NullCache, ResponseCache, cache_key, fill
from ..core.choices import SCORINGS
from ..stats.bootstrap import mean_bootstrap
from ..stats.metrics import score_pairs
from ..survey.dataset import pair_frame
from ..survey.prompts import (
    DEFAULT_TEMPLATE,
    TEMPLATES,
    UNREADABLE,
    attributes_of,
    build_messages,
    parse_answer,
    prefix_group,
)
from ..survey.questions import Question, load_questions
from ..survey.study import study_of


def predict(backend: Backend, pairs: pd.DataFrame, scoring: str = "logprob", template: str = DEFAULT_TEMPLATE,
            cache: ResponseCache | NullCache | None = None, chunk_size: int = 128, max_new_tokens: int = 12,
            progress: bool = True, questions: dict[str, Question] | None = None,
            all_pairs: pd.DataFrame | None = None, study=None) -> pd.DataFrame:
    """Predictions of ``backend`` for every pair (cached; resumable: finished chunks are never recomputed).
    ``all_pairs`` (default: the study's committed table) supplies the training cells of the ``marginals`` template.
    ``study``: whose persona words and country the prompts use (None: the one ``pairs`` carries)."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}.")
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}.")
    if scoring == "logprob" and not backend.supports_logprob:
        raise ValueError(f"The {backend.kind} backend cannot score options; use scoring='generate'.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    study = study_of(pairs, study)
    frame = pair_frame(pairs, questions)
    settings = {"scoring": scoring} | ({"max_new_tokens": max_new_tokens, "decoding": "greedy",
                                       "batch_size": getattr(backend, "batch_size", None)}
                                      if scoring == "generate" else {})
    marginals = [None] * len(frame)
    if template == "marginals":
        from ..survey.dataset import load_pairs
        from .baselines import single_marginals

        marginals = single_marginals(frame, all_pairs if all_pairs is not None else load_pairs(study=study))
    messages = [build_messages(questions[r.qid], attributes_of(r._asdict(), study), template, marginals=m,
                               study=study)
                for r, m in zip(frame.itertuples(index=False), marginals)]
    options = [[str(v) for v, _ in questions[q].options] for q in frame.qid]
    groups = [prefix_group(template, q, s) for q, s in zip(frame.qid, frame.subgroup_id)]
    identity = backend.identity()
    keys = [cache_key(backend=identity, settings=settings, messages=m, options=o) for m, o in zip(messages, options)]

    def compute(idx: list[int]) -> list[dict]:
        if scoring == "logprob":
            return [checked_scores({"probs": s.probs, "option_mass": s.option_mass, "status": s.status}
                                   | ({"error": s.error} if s.error else {})
                                   | ({"exact": s.exact} if s.exact is not None else {}), len(options[i]),
                                   backend.kind)
                    for i, s in zip(idx, backend.score([ScoreRequest(messages[i], options[i], groups[i]) for i in idx]))]
        return reply_records(backend.generate([GenerateRequest(messages[i], max_new_tokens) for i in idx]))

    def valid(i: int, rec: dict) -> bool:  # a stored score must still mean something
        return scoring != "logprob" or checked_scores(rec, len(options[i])).get("status") == rec.get("status", "ok")

    done = fill(cache, keys, compute, order=lambda i: groups[i], chunk_size=chunk_size, desc=f"{scoring} pairs",
                progress=progress, valid=valid)
    rows = [_read(rec, [int(o) for o in opts], questions[q], scoring)
            for rec, opts, q in zip(done.records, options, frame.qid)]
    frame["choice"] = pd.array([r[0] for r in rows], dtype="Int64")
    for k, col in enumerate(("probs", "option_mass", "reply", "status", "error"), start=1):
        frame[col] = [r[k] for r in rows]
    if scoring == "generate":  # whether the token budget cut the reply (None: the backend could not tell)
        frame["cut"] = pd.array([rec.get("cut") for rec in done.records], dtype="boolean")
        frame["tokens"] = pd.array([rec.get("tokens") for rec in done.records], dtype="Int64")
    if any("exact" in rec for rec in done.records):  # a backend that approximates says so per prediction
        frame["exact"] = pd.array([rec.get("exact") for rec in done.records], dtype="boolean")
    frame.attrs.update(seconds_computing=done.seconds, pairs_computed=done.computed, pairs_failed=done.failed)
    return score_pairs(frame)


def checked_scores(rec: dict, n_options: int, source: str = "backend") -> dict:
    """A scored record checked for meaning: probabilities finite, in [0, 1], one per option, adding up to 1, and
    an option mass in [0, 1]. A record that fails is a failed prediction with its reason (never a score)."""
    if rec.get("status", "ok") != "ok" or rec.get("probs") is None:
        return rec
    p, mass = rec["probs"], rec.get("option_mass")
    problem = ""
    try:
        arr = np.asarray(p, dtype=float)
        m = float(mass)
    except (TypeError, ValueError):
        problem = f"probabilities {p!r} / option mass {mass!r} are not numbers"
    else:
        if arr.shape != (n_options,):
            problem = f"{arr.size} probabilities for {n_options} options"
        elif not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1 + 1e-6).any():
            problem = f"probabilities {arr.round(4).tolist()} are not all finite and in [0, 1]"
        elif abs(arr.sum() - 1) > 1e-4:
            problem = f"probabilities add up to {arr.sum():.6g}, not 1"
        elif not np.isfinite(m) or m < 0 or m > 1 + 1e-3:
            problem = f"option mass {m!r} is not a probability in [0, 1]"
    if not problem:
        return rec
    return {"probs": None, "option_mass": float("nan"), "status": "failed",
            "error": f"{source}: {problem} (non-finite or out-of-range log-probabilities; recorded as failed)"}


def _read(rec: dict, values: list[int], q: Question, scoring: str) -> tuple:
    """(choice, probs, option_mass, reply, status, error) of one stored or fresh record."""
    if scoring == "logprob":
        rec = checked_scores(rec, len(values), "cached record")
    status, error = rec.get("status", "ok"), rec.get("error", "")
    if scoring == "logprob":
        p = rec["probs"]
        if p is None and status == "ok":
            status = "no_option_logprob"
        ok = status == "ok"
        return (values[int(np.argmax(p))] if ok else None, p if ok else None, rec["option_mass"], None, status,
                error)
    if status in ("failed", "empty"):
        return None, None, np.nan, rec.get("reply"), status, error
    parsed = parse_answer(rec["reply"], values, labels=dict(q.options))
    return parsed.choice, None, np.nan, rec["reply"], parsed.status, error


# ---- summaries ------------------------------------------------------------------------------------------------

SUMMARY_METRICS = ("accuracy", "nmae", "tv", "wasserstein", "js", "option_mass", "refusal_rate", "unparseable_rate")


def _metric_columns(d: pd.DataFrame) -> pd.DataFrame:
    """One column per summary metric, one row per pair; a run's summary is the column means."""
    return pd.DataFrame({"qid": d["qid"].to_numpy(), "accuracy": d["correct"].to_numpy(float),
                         "nmae": d["nmae"].to_numpy(float), "tv": d["tv"].to_numpy(float),
                         "wasserstein": d["wasserstein"].to_numpy(float), "js": d["js"].to_numpy(float),
                         "option_mass": d["option_mass"].to_numpy(float) if "option_mass" in d else np.nan,
                         "refusal_rate": (d["status"] == "refusal").to_numpy(float),
                         "unparseable_rate": d["status"].isin(list(UNREADABLE)).to_numpy(float)})


def summarise(preds: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Metrics on all pairs, consensus pairs and divergent pairs, with 95% BCa intervals over questions."""
    rows = []
    for subset, d in [("all", preds), ("consensus", preds[~preds.divergent]), ("divergent", preds[preds.divergent])]:
        if d.empty:
            continue
        ci = mean_bootstrap(_metric_columns(d), list(SUMMARY_METRICS), n_boot=n_boot, seed=seed)
        for metric, r in ci.iterrows():
            rows.append({"subset": subset, "metric": metric, "estimate": r.estimate, "lo": r.lo, "hi": r.hi,
                         "degenerate": bool(r.degenerate), "pairs": len(d), "questions": d.qid.nunique()})
    return pd.DataFrame(rows)


def cut_summary(preds: pd.DataFrame, max_new_tokens: int) -> dict:
    """How many generated replies the token budget cut before the model ended them (``cut`` column of
    :func:`predict`): the share among the replies whose ending is known, and how many are unknown."""
    if "cut" not in preds:
        return {}
    cut = preds["cut"].astype("boolean")
    known = int(cut.notna().sum())
    n_cut = int(cut.fillna(False).sum())
    out = {"max_new_tokens": int(max_new_tokens), "replies": int(len(preds)), "known": known, "cut": n_cut,
           "share_cut": n_cut / known if known else None}
    curve = cut_curve(preds, max_new_tokens)
    if curve is not None:
        out["share_cut_at"] = {int(b): float(s) for b, s in zip(curve.max_new_tokens, curve.share_cut)}
    return out


def cut_curve(preds: pd.DataFrame, max_new_tokens: int,
              budgets: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)) -> pd.DataFrame | None:
    """The share of replies a smaller budget would have cut, from one generate run: greedy decoding with budget
    ``b`` is the first ``b`` tokens of the run's, so a reply is cut at ``b <= max_new_tokens`` when the run cut it
    or it used at least ``b`` tokens. Needs the ``cut`` and ``tokens`` columns of :func:`predict` (hf backend)."""
    if "tokens" not in preds or "cut" not in preds:
        return None
    known = preds["cut"].notna() & preds["tokens"].notna()
    if not known.any():
        return None
    cut = preds.loc[known, "cut"].astype(bool).to_numpy()
    tokens = preds.loc[known, "tokens"].astype(int).to_numpy()
    rows = [{"max_new_tokens": b, "replies": int(known.sum()), "share_cut": float((cut | (tokens >= b)).mean())}
            for b in sorted({*budgets, int(max_new_tokens)}) if b <= max_new_tokens]
    return pd.DataFrame(rows)


def budget_sweep(backend: Backend, pairs: pd.DataFrame, budgets: list[int], template: str = DEFAULT_TEMPLATE,
                 questions: dict[str, Question] | None = None, study=None) -> pd.DataFrame:
    """Generate mode at every token budget in ``budgets`` from one greedy decoding at the largest: greedy decoding
    with a budget ``b`` gives the first ``b`` tokens of the longer decoding, so each budget's replies are the
    decoded prefixes. Per budget: the share of replies cut at the budget (the model had not ended its reply), the
    share unparseable (refusals apart), and the accuracy of the parsed answers on these pairs.

    Needs a backend that returns token ids (``generate_ids``: the local ``hf`` backend)."""
    if not hasattr(backend, "generate_ids"):
        raise ValueError(f"The {backend.kind} backend does not return token ids; the budget sweep needs the hf "
                         "backend (or measure each budget with its own generate-mode run).")
    budgets = sorted({int(b) for b in budgets})
    if not budgets or budgets[0] < 1:
        raise ValueError(f"Token budgets must be integers >= 1, got {budgets}.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    frame = pair_frame(pairs, questions)
    study = study_of(pairs, study)
    messages = [build_messages(questions[r.qid], attributes_of(r._asdict(), study), template, study=study)
                for r in frame.itertuples(index=False)]
    decoded = backend.generate_ids([GenerateRequest(m, budgets[-1]) for m in messages])
    tok = backend.tokenizer
    rows = []
    for b in budgets:
        replies = [tok.decode(ids[:b], skip_special_tokens=True).strip() for ids, _ in decoded]
        cut = np.array([(not ended) or len(ids) >= b for ids, ended in decoded])
        parsed = [parse_answer(r, [int(v) for v, _ in questions[q].options], labels=dict(questions[q].options))
                  for r, q in zip(replies, frame.qid)]
        scored = score_pairs(frame.assign(choice=pd.array([p.choice for p in parsed], dtype="Int64"), probs=None,
                                          option_mass=np.nan, reply=replies, status=[p.status for p in parsed],
                                          error=""))
        rows.append({"max_new_tokens": b, "replies": len(replies), "share_cut": float(cut.mean()),
                     "share_unparseable": float(scored.status.isin(list(UNREADABLE)).mean()),
                     "share_refusal": float((scored.status == "refusal").mean()),
                     "accuracy": float(scored.correct.mean())})
    return pd.DataFrame(rows)


def persona_sensitivity(preds: pd.DataFrame) -> pd.DataFrame:
    """Per question: how often the answer changes across subgroups (1 - share of the most common answer),
    for the model and for the true modes."""
    rows = []
    for qid, g in preds.groupby("qid"):
        model = g["choice"].dropna().astype(int)
        truth = g["modal_answers"].map(lambda m: m[0])
        rows.append({"qid": qid, "subgroups": len(g),
                     "model_change": 1 - model.value_counts().iloc[0] / len(g) if len(model) else np.nan,
                     "true_change": 1 - truth.value_counts().iloc[0] / len(g),
                     "model_distinct": model.nunique(), "true_distinct": truth.nunique()})
    return pd.DataFrame(rows)


def option_mass_summary(preds: pd.DataFrame) -> dict:
    """How much of the model's next-token probability after "Answer:" falls on the options (logprob runs):
    mean, quantiles and the share of pairs under 50%. A low mass means the renormalised distribution rests on
    a small part of what the model would say: read accuracy as "which option is least unlikely"."""
    m = preds["option_mass"].dropna().astype(float) if "option_mass" in preds else pd.Series(dtype=float)
    if m.empty:
        return {}
    return {"mean": float(m.mean()), "min": float(m.min()), "p10": float(m.quantile(0.1)),
            "median": float(m.median()), "p90": float(m.quantile(0.9)), "share_below_half": float((m < 0.5).mean())}
