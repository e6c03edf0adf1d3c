"""A run on disk: its predictions, its summary and the record of how it was made.

``results/<profile>/<run>/predictions.parquet`` (one row per pair) and ``metrics.json`` (the summary on all,
consensus and divergent pairs with intervals, the baselines on the same pairs, the record: config, data hashes,
backend identity, revision, timings, status counts, option mass).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..core.provenance import run_record
from ..stats.metrics import score_pairs
from ..survey.prompts import parse_answer
from ..survey.questions import Question, load_questions
from . import baselines
from .evaluate import cut_summary, option_mass_summary, persona_sensitivity, summarise


def evaluation_record(config: dict, preds: pd.DataFrame, all_pairs: pd.DataFrame, manifest: dict, backend: dict,
                      wall_seconds: float, n_boot: int = 1000, seed: int = 0,
                      questions: dict[str, Question] | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The record of an evaluation run and the baselines' summaries on the same pairs."""
    run_pairs = _pairs_of(preds, all_pairs)
    base = {k: summarise(baselines.predictions(run_pairs, all_pairs, k, questions), n_boot=n_boot, seed=seed)
            for k in baselines.KINDS}
    sens = persona_sensitivity(preds)
    record = run_record(
        config=config, data={"pairs_sha256": all_pairs.attrs.get("sha256") or manifest["files"]["pairs"]["sha256"],
                             "pairs_file": all_pairs.attrs.get("path"),
                             "manifest_pairs_sha256": manifest["files"]["pairs"]["sha256"],
                             "survey_sha256": manifest["source"]["sha256"],
                             # a fold's dataset (folds.write_fold_dataset): the disjoint protocol and its target fold
                             **({"protocol": manifest["protocol"], "fold": manifest.get("fold")}
                                if manifest.get("protocol") else {})},
        backend=backend, timing={"wall_seconds": round(wall_seconds, 1),
                                 "pairs_computed": preds.attrs.get("pairs_computed", 0),
                                 "pairs_failed": preds.attrs.get("pairs_failed", 0)},
        baselines={k: json.loads(s.to_json(orient="records")) for k, s in base.items()},
        persona_sensitivity={"model_change": sens.model_change.mean(), "true_change": sens.true_change.mean(),
                             "never_changes": float((sens.model_distinct == 1).mean())},
        status_counts=preds.status.value_counts().to_dict(), option_mass=option_mass_summary(preds),
        **({"cut_at_budget": cut_summary(preds, config.get("max_new_tokens", 12))} if "cut" in preds else {}))
    return record, base


def _pairs_of(preds: pd.DataFrame, all_pairs: pd.DataFrame) -> pd.DataFrame:
    idx = all_pairs.set_index(["qid", "subgroup_id"]).index
    return all_pairs[idx.isin(list(zip(preds.qid, preds.subgroup_id)))]


def save_run(preds: pd.DataFrame, summary: pd.DataFrame, run_dir: str | Path, record: dict) -> dict[str, Path]:
    """Write the run's predictions and metrics. Both go to temporary files first and are moved into place only
    when both are complete: a full disk or a kill keeps the previous finished run as it was. Secrets (the
    environment's keys, credentials in URLs) are redacted from the record."""
    import os

    from ..core.provenance import atomic_write, portable, scrub

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"predictions": run_dir / "predictions.parquet", "metrics": run_dir / "metrics.json"}
    keep = preds.drop(columns=["weighted_counts"], errors="ignore")
    keep.attrs = portable(dict(preds.attrs))  # the table's path, relative to the checkout (the parquet keeps attrs)
    main = summary[summary.subset == "all"].set_index("metric").estimate.to_dict()
    body = {"results": main,
            "by_subset": json.loads(summary.to_json(orient="records")),
            "pairs": len(preds), "questions": int(preds.qid.nunique()), "subgroups": int(preds.subgroup_id.nunique()),
            **record}
    body = portable(scrub(json.loads(json.dumps(body, default=str))))
    staged = {k: p.with_name(f".{p.name}.staged") for k, p in paths.items()}
    try:
        atomic_write(staged["predictions"], writer=lambda tmp: keep.to_parquet(tmp, index=False))
        atomic_write(staged["metrics"], json.dumps(body, indent=2, default=str) + "\n")
        os.replace(staged["predictions"], paths["predictions"])
        os.replace(staged["metrics"], paths["metrics"])
    finally:
        for p in staged.values():
            p.unlink(missing_ok=True)
    return paths


def require_complete(preds: pd.DataFrame, run_dir: str | Path | None = None, remote: bool = True) -> None:
    """Fail (after the run is saved) when some requests failed or (from a server: ``remote``) came back empty:
    the step is then not done, so `make` reruns it, and the rerun asks only those again (the rest is cached). A
    local model's empty reply is its answer (greedy decoding gives it again), not a failure. From a server, a run in
    which no prediction has an answer is a failure too (the server's replies, not the model, are then in doubt);
    a local model that answers nothing (a random test model in generate mode) has that as its result."""
    retry = ["failed", "empty"] if remote else ["failed"]
    failed = preds.status.isin(retry) if "status" in preds else pd.Series(False, index=preds.index)
    if remote and len(preds) and "choice" in preds and preds["choice"].isna().all() and not failed.any():
        raise RuntimeError(f"None of the {len(preds)} predictions has an answer (statuses "
                           f"{preds.status.value_counts().to_dict()}): the scores would only say that. The run is "
                           f"saved{f' in {run_dir}' if run_dir else ''}; check the backend (its log-probabilities or "
                           "replies) before reading it.")
    if failed.any():
        first = preds.loc[failed, "error"].dropna().astype(str)
        raise RuntimeError(f"{int(failed.sum())} of {len(preds)} predictions failed or came back empty "
                           f"(first: {first.iloc[0] if len(first) else 'no error text'}). The run is saved"
                           f"{f' in {run_dir}' if run_dir else ''} but incomplete: rerun the step (make reruns it) "
                           "once the cause is fixed; only these requests are asked again.")


def load_run(run_dir: str | Path, study=None) -> tuple[pd.DataFrame, dict]:
    """A saved run's predictions and record. The predictions carry their study (``preds.attrs["study"]``):
    ``study`` when given, else the one written with them, else (runs saved before predictions carried it) the
    study of the profile whose folder holds the run (``results/<profile>/<run>``: ``configs/<profile>.yaml``)."""
    run_dir = Path(run_dir)
    if not (run_dir / "predictions.parquet").is_file():
        raise FileNotFoundError(f"No predictions in {run_dir}: run notebooks/03_evaluate.ipynb for it first.")
    preds = pd.read_parquet(run_dir / "predictions.parquet")
    for col in ("modal_answers", "population_modal_answers", "probs"):
        if col in preds:
            preds[col] = preds[col].map(lambda v: None if v is None else list(v))
    named = _study_of_run(run_dir, study, preds.attrs.get("study"))
    if named:
        preds.attrs["study"] = named
    return preds, json.loads((run_dir / "metrics.json").read_text())


def _study_of_run(run_dir: Path, study, written) -> str | None:
    from ..survey.study import reference, resolve

    if study is not None and str(study).strip():
        return reference(resolve(study))
    if written:
        return str(written)
    from ..core.paths import REPO_ROOT

    config = REPO_ROOT / "configs" / f"{run_dir.resolve().parent.name}.yaml"
    if run_dir.resolve().parent.parent == (REPO_ROOT / "results").resolve() and config.is_file():
        import yaml

        return str((yaml.safe_load(config.read_text()) or {}).get("study") or "sgp")
    return None


#: The per-pair scores a prediction table carries (recomputed, never trusted from a file).
SCORE_COLUMNS = ("correct", "nmae", "tv", "wasserstein", "js")


def rescore(preds: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Saved predictions scored again with today's rules (:func:`subgroup_values.stats.metrics.score_pairs`)
    against ``truth``'s weighted answer distributions (a pairs table: qid, subgroup_id, weighted_counts), on the
    pairs of both, in the predictions' order. The one re-scoring of the package: a run's summary
    (:func:`rescore_run`), the headroom's model runs and an audit's run all go through it."""
    keep = preds.drop(columns=[*SCORE_COLUMNS, "weighted_counts"], errors="ignore")
    out = score_pairs(keep.merge(truth[["qid", "subgroup_id", "weighted_counts"]], on=["qid", "subgroup_id"]))
    out.attrs = dict(preds.attrs)  # the predictions' study and source (a merge of frames with different attrs drops them)
    return out


def rescore_run(run_dir: str | Path, n_boot: int = 1000, seed: int = 0,
                questions: dict[str, Question] | None = None) -> dict[str, Path]:
    """Re-derive a saved run's scores and summary from its stored predictions with the current scoring rules:
    generate-mode replies are parsed again, logprob predictions keep their distributions; intervals and the
    option mass are recomputed. The model is not called. The record says when and by which revision."""
    from ..core.provenance import git_revision
    from ..survey.dataset import load_pairs

    preds, record = load_run(run_dir)
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    from ..core.paths import REPO_ROOT
    from ..core.provenance import sha256_of

    data = record.get("data") or {}
    want = data.get("pairs_sha256")
    own = Path(data["pairs_file"]) if data.get("pairs_file") else None  # the table the run read (a fold's dataset)
    own = (REPO_ROOT / own) if own is not None and not own.is_absolute() else own
    if own is None or not own.is_file() or (want and sha256_of(own) != want):
        own = None  # not here, or not the table it was then: the study's own table, if its content is the record's
    all_pairs = load_pairs(own, study=preds.attrs.get("study"))
    if want and all_pairs.attrs.get("sha256") != want:
        raise ValueError(f"{run_dir} was made from a pairs table with SHA-256 {data['pairs_sha256'][:12]}... "
                         f"({own or 'the study table'}), not {all_pairs.attrs.get('path')} "
                         f"({str(all_pairs.attrs.get('sha256'))[:12]}...): its truth is not this table's. Restore "
                         "that table (or rebuild it: make data / the fold dataset) before re-scoring.")
    missing = len(preds) - len(preds.merge(all_pairs[["qid", "subgroup_id"]], on=["qid", "subgroup_id"]))
    if missing:
        raise ValueError(f"{missing} of the {len(preds)} predictions in {run_dir} are pairs the study's table does not "
                         "have: the run was made from another table; re-score it against that one.")
    if preds["reply"].notna().any():
        parsed = [parse_answer(r, [v for v, _ in questions[q].options], labels=dict(questions[q].options))
                  for q, r in zip(preds.qid, preds.reply)]
        preds["choice"] = pd.array([p.choice for p in parsed], dtype="Int64")
        preds["status"] = [p.status for p in parsed]
    preds = rescore(preds, all_pairs)
    summary = summarise(preds, n_boot=n_boot, seed=seed)
    keep = {k: v for k, v in record.items() if k not in ("results", "by_subset", "pairs", "questions", "subgroups")}
    keep["status_counts"] = preds.status.value_counts().to_dict()
    keep["option_mass"] = option_mass_summary(preds)
    run_pairs = _pairs_of(preds, all_pairs)
    keep["baselines"] = {k: json.loads(summarise(baselines.predictions(run_pairs, all_pairs, k, questions),
                                                 n_boot=n_boot, seed=seed).to_json(orient="records"))
                         for k in baselines.KINDS}
    keep["rescored"] = {"revision": git_revision(), "rules": "current parser, scores and BCa intervals",
                        "model_revision": record.get("git_revision")}
    return save_run(preds, summary, run_dir, keep)


def check_outputs(run_dir: str | Path, cache_file: str | Path | None = None, need_mb: float = 50) -> None:
    """Before long work starts: the run folder and the cache's folder can be written and have space."""
    from ..core.provenance import check_writable

    check_writable(run_dir, need_mb, "results")
    if cache_file:
        check_writable(Path(cache_file).parent, need_mb, "cache")


# ---- one evaluation, from a config: the CLI's `evaluate` and `audit` share it -----------------------------------

#: The keys of an evaluation config (:func:`evaluate_run`) and their defaults (the CLI's).
EVALUATION_DEFAULTS = {"model": None, "adapter": None, "backend": "hf", "base_url": None,
                       "api_key_env": "OPENAI_API_KEY", "concurrency": 4, "timeout": 60.0, "endpoint": "chat",
                       "top_logprobs": 20, "ends_from": "top_logprobs", "tokenizer": None, "pairs": None,
                       "split": "ood", "limit": 0, "sample_seed": 0, "qids": [], "scoring": "logprob",
                       "template": "persona_user", "max_new_tokens": 12, "dtype": "auto", "batch_size": 16,
                       "n_boot": 1000, "seed": 0,
                       "cache": "cache/responses.sqlite", "quiet": False}


def evaluate_run(config: dict, run_dir: str | Path, complete: bool = True) -> dict:
    """Evaluate one model as ``config`` says (keys: :data:`EVALUATION_DEFAULTS`; ``model`` required; ``pairs``: a
    pairs table with manifest.json beside it, default the committed table of ``study`` (Singapore's)) and save the run in ``run_dir``
    (:func:`save_run`). The output folder is checked before any scoring; the run is saved before
    :func:`require_complete` fails an incomplete one (``complete=False``: the caller calls it). Returns ``preds``, ``summary``, ``record``, ``baselines``
    (their summaries on the same pairs), ``all_pairs``, ``questions`` and ``paths``."""
    import time

    from ..backends import make_backend
    from ..backends.cache import NullCache, ResponseCache
    from ..survey.dataset import load_pairs, manifest_of, sample_pairs
    from .evaluate import predict

    unknown = sorted(set(config) - set(EVALUATION_DEFAULTS) - {"command", "run", "out", "study", "device", "name",
                                                                 "run_name", "profile"})
    if unknown:
        raise ValueError(f"Unknown evaluation settings {unknown}; expected some of {sorted(EVALUATION_DEFAULTS)}.")
    cfg = EVALUATION_DEFAULTS | {k: v for k, v in config.items()
                                 if k != "run" and (v is not None or k not in EVALUATION_DEFAULTS)}
    if not cfg["model"]:
        raise ValueError("An evaluation needs a model (a local folder, a hub id, or a served model's name).")
    if cfg["pairs"] is None:
        from ..survey.study import processed_dir

        cfg["pairs"] = str(processed_dir(cfg.get("study")) / "pairs.csv")
    check_outputs(run_dir, cfg["cache"] or None)  # writable, with space, before any scoring
    all_pairs = load_pairs(cfg["pairs"], study=cfg.get("study"))
    pairs = sample_pairs(all_pairs[all_pairs.split == cfg["split"]], cfg["limit"], cfg["sample_seed"],
                         qids=cfg["qids"] or None)
    llm = make_backend(cfg["backend"], model=cfg["model"], adapter=cfg["adapter"], dtype=cfg["dtype"],
                       device=cfg.get("device"), batch_size=cfg["batch_size"], base_url=cfg["base_url"],
                       api_key_env=cfg["api_key_env"], concurrency=cfg["concurrency"], endpoint=cfg["endpoint"],
                       tokenizer=cfg["tokenizer"], ends_from=cfg["ends_from"], timeout=cfg["timeout"],
                       **({"top_logprobs": cfg["top_logprobs"]} if cfg["backend"] == "openai_compat" else {}))
    questions = {q.qid: q for q in load_questions(rule="all")}
    t0 = time.time()
    preds = predict(llm, pairs, scoring=cfg["scoring"], template=cfg["template"], questions=questions,
                    all_pairs=all_pairs, cache=ResponseCache(cfg["cache"]) if cfg["cache"] else NullCache(),
                    max_new_tokens=cfg["max_new_tokens"], progress=not cfg["quiet"])
    summary = summarise(preds, n_boot=cfg["n_boot"], seed=cfg["seed"])
    manifest = manifest_of(all_pairs)  # the table's own, else its study's (a table of one's own has none)
    record, base = evaluation_record(cfg, preds, all_pairs, manifest, llm.identity(), time.time() - t0,
                                     n_boot=cfg["n_boot"], seed=cfg["seed"], questions=questions)
    paths = save_run(preds, summary, run_dir, record)
    if complete:
        require_complete(preds, run_dir, remote=cfg["backend"] != "hf")
    return {"preds": preds, "summary": summary, "record": record, "baselines": base, "all_pairs": all_pairs,
            "questions": questions, "paths": paths}
