"""Run a backend over (question, subgroup) pairs, score its answers, and compare with non-LLM baselines.

Every pair's prediction is kept (``predictions``): the chosen option, the option probabilities (``logprob``
scoring), the raw reply and its parse status (``generate`` scoring). Scores per pair: ``correct`` (tie-aware),
``nmae``, and, where the prediction is a distribution, normalised Wasserstein and Jensen-Shannon distance to the
subgroup's weighted answer distribution. Pairs are *consensus* when the subgroup's mode equals the whole
sample's, *divergent* otherwise: emulating a subgroup means getting the divergent ones right.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .backends.base import Backend, GenerateRequest, RequestFailed, ScoreRequest
from .backends.cache import NullCache, ResponseCache, cache_key
from .bootstrap import bootstrap
from .metrics import expected_nmae, jensen_shannon, wasserstein
from .prompts import DEFAULT_TEMPLATE, TEMPLATES, UNREADABLE, build_messages, parse_answer, prefix_group
from .questions import Question, load_questions
from .subgroups import DIMENSIONS

SCORINGS = ("logprob", "generate")
METRICS = ("accuracy", "nmae", "wasserstein", "js", "option_mass", "refusal_rate", "unparseable_rate")


def attributes_of(row) -> dict[str, str]:
    return {d: row[d] for d in DIMENSIONS if isinstance(row.get(d), str) and row[d]}


def sample_pairs(pairs: pd.DataFrame, n: int | None, seed: int = 0) -> pd.DataFrame:
    """A seeded sample of ``n`` pairs that does not depend on the table's order (hash of seed, question, subgroup):
    the same pairs are drawn in every step that asks for the same n and seed."""
    if n is None or n <= 0 or n >= len(pairs):
        return pairs.reset_index(drop=True)
    h = [hashlib.sha256(f"{seed}:{q}:{s}".encode()).hexdigest() for q, s in zip(pairs.qid, pairs.subgroup_id)]
    return pairs.assign(_h=h).sort_values("_h").head(n).drop(columns="_h").sort_index().reset_index(drop=True)


def _frame(pairs: pd.DataFrame, questions: dict[str, Question]) -> pd.DataFrame:
    keep = ["qid", "category", "stratum", "subgroup_id", "subgroup", *DIMENSIONS, "split", "n", "modal_answers",
            "population_modal_answers", "weighted_counts"]
    out = pairs[keep].copy().reset_index(drop=True)
    out["scale_min"] = [questions[q].scale_min for q in out.qid]
    out["scale_max"] = [questions[q].scale_max for q in out.qid]
    out["divergent"] = [not set(m) & set(p) for m, p in zip(out.modal_answers, out.population_modal_answers)]
    return out


def predict(backend: Backend, pairs: pd.DataFrame, scoring: str = "logprob", template: str = DEFAULT_TEMPLATE,
            cache: ResponseCache | NullCache | None = None, chunk_size: int = 128, max_new_tokens: int = 12,
            progress: bool = True, questions: dict[str, Question] | None = None) -> pd.DataFrame:
    """Predictions of ``backend`` for every pair (cached; resumable: finished chunks are never recomputed)."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}.")
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}.")
    if scoring == "logprob" and not backend.supports_logprob:
        raise ValueError(f"The {backend.kind} backend cannot score options; use scoring='generate'.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    cache = cache if cache is not None else NullCache()
    frame = _frame(pairs, questions)
    identity = backend.identity()
    messages, options, groups, keys = [], [], [], []
    for row in frame.itertuples(index=False):
        q = questions[row.qid]
        msgs = build_messages(q, attributes_of(row._asdict()), template)
        opts = [str(v) for v, _ in q.options]
        messages.append(msgs)
        options.append(opts)
        groups.append(prefix_group(template, row.qid, row.subgroup_id))
        settings = {"scoring": scoring} | ({"max_new_tokens": max_new_tokens, "decoding": "greedy",
                                           "batch_size": getattr(backend, "batch_size", None)}
                                          if scoring == "generate" else {})
        keys.append(cache_key(backend=identity, settings=settings, messages=msgs, options=opts))
    found = cache.get_many(keys)
    todo = [i for i, k in enumerate(keys) if k not in found]
    todo.sort(key=lambda i: groups[i])  # keep prefix groups together so chunks share their prefix
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=f"{scoring} pairs", disable=not progress,
               mininterval=15, smoothing=0.05)
    t0 = time.time()
    failures: dict[str, dict] = {}  # recorded in the predictions, never cached: the next run retries them
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        new, bad = {}, {}
        if scoring == "logprob":
            scored = backend.score([ScoreRequest(messages[i], options[i], groups[i]) for i in chunk])
            for i, s in zip(chunk, scored):
                rec = {"probs": s.probs, "option_mass": s.option_mass, "status": s.status}
                (bad if s.status == "failed" else new)[keys[i]] = rec | ({"error": s.error} if s.error else {})
        else:
            replies = backend.generate([GenerateRequest(messages[i], max_new_tokens) for i in chunk])
            for i, r in zip(chunk, replies):
                if isinstance(r, RequestFailed):
                    bad[keys[i]] = {"reply": None, "status": "failed", "error": r.error}
                elif not (r or "").strip():
                    bad[keys[i]] = {"reply": r or "", "status": "empty", "error": "empty reply (not cached)"}
                else:
                    new[keys[i]] = {"reply": r}
        if bad and not new and start == 0 and len(bad) == len(chunk):
            first = next(iter(bad.values()))
            raise RuntimeError(f"Every request of the first chunk ({len(bad)}) failed; first error: "
                               f"{first.get('error')}. Nothing was cached; fix the cause and rerun.")
        cache.put_many(new)
        found.update(new)
        failures.update(bad)
        bar.update(len(chunk))
    bar.close()
    if failures:
        print(f"{len(failures)} of {len(keys)} requests failed or came back empty; they are recorded as such "
              "(status 'failed' / 'empty', scored as wrong) and retried by the next run.")
    found.update(failures)
    elapsed = time.time() - t0

    choice, probs, mass, reply, status, errors = [], [], [], [], [], []
    for i, k in enumerate(keys):
        rec = found[k]
        values = [int(o) for o in options[i]]
        errors.append(rec.get("error", ""))
        if scoring == "logprob":
            p = rec["probs"]
            st = rec.get("status", "ok")
            choice.append(values[int(np.argmax(p))] if st == "ok" and p is not None else None)
            probs.append(p if st == "ok" else None)
            mass.append(rec["option_mass"])
            reply.append(None)
            status.append(st if p is not None else (st if st != "ok" else "no_option_logprob"))
        elif rec.get("status") in ("failed", "empty"):
            choice.append(None)
            probs.append(None)
            mass.append(np.nan)
            reply.append(rec.get("reply"))
            status.append(rec["status"])
        else:
            parsed = parse_answer(rec["reply"], values, labels=dict(questions[frame.qid[i]].options))
            choice.append(parsed.choice)
            probs.append(None)
            mass.append(np.nan)
            reply.append(rec["reply"])
            status.append(parsed.status)
    frame["choice"] = pd.array(choice, dtype="Int64")
    frame["probs"] = probs
    frame["option_mass"] = mass
    frame["reply"] = reply
    frame["status"] = status
    frame["error"] = errors
    frame.attrs["seconds_computing"] = elapsed
    frame.attrs["pairs_computed"] = len(todo) - len(failures)
    frame.attrs["pairs_failed"] = len(failures)
    return score(frame)


# ---- per-pair scores --------------------------------------------------------------------------------------------

def score(preds: pd.DataFrame) -> pd.DataFrame:
    """Add per-pair ``correct``, ``nmae``, ``wasserstein``, ``js`` (NaN where there is no predicted distribution).

    Rows marked ``expected`` (the uniform baseline) are scored in expectation over their ``probs``.
    """
    correct, nm, wd, jd = [], [], [], []
    expected = preds["expected"] if "expected" in preds else pd.Series(False, index=preds.index)
    for row, exp in zip(preds.itertuples(index=False), expected):
        modes = list(row.modal_answers)
        lo, hi = row.scale_min, row.scale_max
        values = list(range(lo, hi + 1))
        truth = np.asarray(row.weighted_counts, dtype=float)
        p = row.probs
        if exp:
            pa = np.asarray(p, dtype=float)
            correct.append(float(sum(pa[m - lo] for m in modes)))
            nm.append(expected_nmae(pa, values, modes))
        elif pd.isna(row.choice):
            correct.append(0.0)
            nm.append(1.0)
        else:
            c = int(row.choice)
            correct.append(float(c in modes))
            nm.append(min(abs(c - m) for m in modes) / (hi - lo))
        if p is not None and not (isinstance(p, float) and np.isnan(p)) and truth.sum() > 0:
            wd.append(wasserstein(p, truth))
            jd.append(jensen_shannon(p, truth))
        else:
            wd.append(np.nan)
            jd.append(np.nan)
    return preds.assign(correct=correct, nmae=nm, wasserstein=wd, js=jd)


# ---- summaries ------------------------------------------------------------------------------------------------

def _means(d: pd.DataFrame) -> pd.Series:
    return pd.Series({"accuracy": d["correct"].mean(), "nmae": d["nmae"].mean(),
                      "wasserstein": d["wasserstein"].mean(), "js": d["js"].mean(),
                      "option_mass": d["option_mass"].mean() if "option_mass" in d else np.nan,
                      "refusal_rate": (d["status"] == "refusal").mean(),
                      "unparseable_rate": d["status"].isin(list(UNREADABLE)).mean()})


def summarise(preds: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Metrics on all pairs, consensus pairs and divergent pairs, with 95% bootstrap intervals over questions."""
    rows = []
    for subset, d in [("all", preds), ("consensus", preds[~preds.divergent]), ("divergent", preds[preds.divergent])]:
        if d.empty:
            continue
        ci = bootstrap(d, _means, n_boot=n_boot, seed=seed)
        for metric, r in ci.iterrows():
            rows.append({"subset": subset, "metric": metric, "estimate": r.estimate, "lo": r.lo, "hi": r.hi,
                         "pairs": len(d), "questions": d.qid.nunique()})
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


# ---- baselines ------------------------------------------------------------------------------------------------

BASELINES = ("population_mode", "compositional", "uniform")


def population_distributions(all_pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Whole-sample weighted answer distribution per question (the two sex subgroups partition the sample)."""
    sex = all_pairs[all_pairs.stratum == "sex"]
    return {q: np.sum([np.asarray(c, float) for c in g.weighted_counts], axis=0) for q, g in sex.groupby("qid")}


def baseline_predictions(pairs: pd.DataFrame, all_pairs: pd.DataFrame, kind: str,
                         questions: dict[str, Question] | None = None) -> pd.DataFrame:
    """Predictions that need no LLM, in the same shape as :func:`predict`'s.

    - ``population_mode``: every subgroup answers with the whole sample's mode (distribution: the sample's);
    - ``compositional``: an intersection answers with the mode of the mean of its single-attribute subgroups'
      distributions (training-split marginals only); a single-attribute subgroup with its own distribution;
    - ``uniform``: chance, scored in expectation (accuracy = share of modal options, expected NMAE).
    """
    if kind not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    frame = _frame(pairs, questions)
    pop = population_distributions(all_pairs)
    singles = all_pairs[all_pairs.stratum.isin(list(DIMENSIONS))]
    single_dist = {(r.qid, r.subgroup_id): np.asarray(r.weighted_counts, float) for r in singles.itertuples()}
    probs, choice = [], []
    for row in frame.itertuples(index=False):
        lo = row.scale_min
        if kind == "population_mode":
            d = pop[row.qid]
        elif kind == "uniform":
            d = np.ones(row.scale_max - lo + 1)
        else:
            parts = row.subgroup_id.split("|")
            ds = [single_dist.get((row.qid, p)) for p in parts]
            if any(x is None for x in ds):
                d = pop[row.qid]  # a marginal was dropped (too few answers): fall back to the population
            else:
                d = np.mean([x / x.sum() for x in ds], axis=0)
        d = d / d.sum()
        probs.append(d.tolist())
        choice.append(None if kind == "uniform" else lo + int(np.argmax(d)))
    frame["choice"] = pd.array(choice, dtype="Int64")
    frame["probs"] = probs
    frame["option_mass"] = 1.0
    frame["reply"] = None
    frame["status"] = "ok"
    frame["expected"] = kind == "uniform"
    return score(frame)


# ---- runs on disk -----------------------------------------------------------------------------------------------

def save_run(preds: pd.DataFrame, summary: pd.DataFrame, run_dir: str | Path, record: dict) -> dict[str, Path]:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": run_dir / "predictions.parquet", "metrics": run_dir / "metrics.json"}
    keep = preds.drop(columns=["weighted_counts"], errors="ignore")
    keep.to_parquet(paths["predictions"], index=False)
    main = summary[summary.subset == "all"].set_index("metric").estimate.to_dict()
    body = {"results": main,
            "by_subset": json.loads(summary.to_json(orient="records")),
            "pairs": len(preds), "questions": int(preds.qid.nunique()), "subgroups": int(preds.subgroup_id.nunique()),
            **record}
    paths["metrics"].write_text(json.dumps(body, indent=2, default=str) + "\n")
    return paths


def rescore_run(run_dir: str | Path, n_boot: int = 1000, seed: int = 0,
                questions: dict[str, Question] | None = None) -> dict[str, Path]:
    """Re-derive a saved run's scores and summary from its stored predictions with the current scoring rules:
    generate-mode replies are parsed again, logprob predictions keep their distributions; intervals and the
    option mass are recomputed. The model is not called. The record says when and by which revision."""
    from .dataset import load_pairs
    from .provenance import git_revision

    preds, record = load_run(run_dir)
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    all_pairs = load_pairs()
    truth = all_pairs.set_index(["qid", "subgroup_id"]).weighted_counts
    preds["weighted_counts"] = [truth.loc[(q, s)] for q, s in zip(preds.qid, preds.subgroup_id)]
    if preds["reply"].notna().any():
        parsed = [parse_answer(r, [v for v, _ in questions[q].options], labels=dict(questions[q].options))
                  for q, r in zip(preds.qid, preds.reply)]
        preds["choice"] = pd.array([p.choice for p in parsed], dtype="Int64")
        preds["status"] = [p.status for p in parsed]
    preds = score(preds.drop(columns=["correct", "nmae", "wasserstein", "js"], errors="ignore"))
    summary = summarise(preds, n_boot=n_boot, seed=seed)
    keep = {k: v for k, v in record.items() if k not in ("results", "by_subset", "pairs", "questions", "subgroups")}
    keep["status_counts"] = preds.status.value_counts().to_dict()
    keep["option_mass"] = option_mass_summary(preds)
    idx = all_pairs.set_index(["qid", "subgroup_id"]).index
    run_pairs = all_pairs[idx.isin(list(zip(preds.qid, preds.subgroup_id)))]
    keep["baselines"] = {k: json.loads(summarise(baseline_predictions(run_pairs, all_pairs, k, questions),
                                                 n_boot=n_boot, seed=seed).to_json(orient="records"))
                         for k in BASELINES}
    keep["rescored"] = {"revision": git_revision(), "rules": "current parser, scores and BCa intervals",
                        "model_revision": record.get("git_revision")}
    return save_run(preds, summary, run_dir, keep)


def load_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict]:
    run_dir = Path(run_dir)
    if not (run_dir / "predictions.parquet").is_file():
        raise FileNotFoundError(f"No predictions in {run_dir}: run notebooks/03_evaluate.ipynb for it first.")
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    for col in ("modal_answers", "population_modal_answers", "probs"):
        if col in preds:
            preds[col] = preds[col].map(lambda v: None if v is None else list(v))
    return preds, json.loads((run_dir / "metrics.json").read_text())
