"""Audit one model in one command (``subgroup-values audit``, ``make audit MODEL=...``).

The model (a local folder, a hub id, a LoRA adapter on a base model, or a model on an OpenAI-compatible server)
is evaluated zero-shot on the OOD pairs (or a seeded sample of them: ``limit``) with every baseline
(:func:`.runs.evaluate_run`, the evaluation `subgroup-values evaluate` runs), then placed:

- beside the committed reference models (``results/default/base_ood``, ``sft_ood``, ``sft_distribution_ood``):
  their committed predictions are read, never recomputed, and restricted to the audited pairs, so that every
  comparison is on the same pairs (paired differences over questions, Bonferroni over the family);
- in the headroom table under the paper protocol (:func:`.headroom.protocol_table`, the committed noise floor);
  under the respondent-disjoint protocol too when the survey file is given (the folds are drawn from the
  respondents), for the models that saw no survey answer;
- in the per-attribute fairness table (:func:`.fairness.attribute_table`), with its dispersion over subgroups and
  the paper's bias contrasts (:func:`.contrasts.paper_bias`, Holm over the contrasts);
- beside the paper's reported models (:mod:`.paper`).

Everything goes to the audit's own folder (default ``audits/<model name>/``), never under ``results/``,
``figures/``, ``data/`` or ``docs/`` of the checkout: ``evaluation/`` (the run: predictions.parquet,
metrics.json; systems.csv), ``headroom.csv`` (and ``headroom_disjoint.csv``), ``per_attribute.csv``,
``disparity.csv``, ``paper_bias.csv``, ``claims/audit.json`` (every sentence of the card that states a number, as a
:class:`.claims.Claim`), ``report_card.md`` and ``audit.json`` (what was read and run: config, revision, hashes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.claims import Claim, fmt, fmt_ci
from ..core.paths import REPO_ROOT
from ..core.provenance import sha256_of
from ..survey.dataset import load_pairs
from ..survey.sampling import whole_questions

#: The committed reference runs the audited model stands beside, with the words the card uses for them.
REFERENCE_PROFILE = "default"
REFERENCE_RUNS = {"base_ood": "SmolLM2-135M-Instruct, zero-shot",
                  "sft_ood": "SmolLM2-135M-Instruct + modal SFT (LoRA)",
                  "sft_distribution_ood": "SmolLM2-135M-Instruct + distribution SFT (LoRA)"}
#: Reference runs that saw no survey answer (placed against the floor; scored under the disjoint protocol).
ZERO_SHOT_REFERENCES = ("base_ood",)
#: The audited model's name in tables and claim ids (the card says which model it is).
AUDITED = "audited"
#: Folders of the checkout an audit never writes into (the committed study lives there).
PROTECTED = ("results", "figures", "data", "docs", "notebooks", "src", "configs", "tests")
#: (subset, metric) of the audited-vs-reference comparisons, one Bonferroni family over references x these.
REFERENCE_COMPARISONS = (("all", "accuracy"), ("divergent", "accuracy"), ("all", "nmae"))
ALPHA = 0.05


class AuditError(ValueError):
    """An audit that cannot run as asked (the message says what was expected, what was found and what to do)."""


def model_name(model: str, adapter: str | None = None) -> str:
    """A folder name for the audit of ``model`` (+ ``adapter``): the last parts of the names, safe characters."""
    def last(x: str) -> str:
        return Path(str(x).rstrip("/")).name or str(x)

    name = last(model) + (f"+{last(adapter)}" if adapter else "")
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name) or "model"


def check_out(out: str | Path, root: Path | None = None) -> Path:
    """The audit's folder, resolved; refused when it lies inside one of the checkout's committed folders
    (:data:`PROTECTED`), where it would overwrite or mix with the study's own results."""
    from ..core.paths import REPO_ROOT, SOURCE_CHECKOUT

    path = Path(out).expanduser().resolve()
    root = root or (SOURCE_CHECKOUT and REPO_ROOT)
    if root is not None:
        root = Path(root).resolve()
        for name in PROTECTED:
            guarded = root / name
            if path == guarded or guarded in path.parents:
                raise AuditError(f"--out {out} lies inside {guarded}/, the study's committed {name}/ folder: an audit "
                                 f"never writes there. Expected a folder of its own, e.g. audits/<model name>/ (the "
                                 f"default) or --out /tmp/my-audit.")
        if path == root:
            raise AuditError(f"--out {out} is the checkout itself ({root}); give a folder of its own, e.g. "
                             "audits/<model name>/.")
    if path.exists() and not path.is_dir():
        raise AuditError(f"--out {out} is a file, not a folder; give a folder for the audit.")
    return path


def check_model(model: str, adapter: str | None, backend: str) -> None:
    """A local model given as a path must exist (a hub id is left to the backend, which says how to go online)."""
    if backend == "hf":
        p = Path(model).expanduser()
        first = Path(model).parts[0] if Path(model).parts else ""
        looks_local = p.is_absolute() or model.startswith(".") or (first and Path(first).is_dir()) \
            or model.count("/") != 1
        if looks_local and not p.is_dir():
            raise AuditError(f"No model folder at {model!r} (resolved: {p.resolve()}). Expected a folder with "
                             "config.json and the weights (the embedded model: `subgroup-values models build smollm2`, "
                             "or `make model` in a checkout; the tiny test model: `subgroup-values models build "
                             "tiny`), or a hub id such as Qwen/Qwen2.5-7B-Instruct.")
        if looks_local and not (p / "config.json").is_file():
            raise AuditError(f"{model!r} is a folder but has no config.json: expected a transformers model folder.")
    if adapter and not (Path(adapter).expanduser() / "adapter_config.json").is_file():
        raise AuditError(f"No LoRA adapter at {adapter!r} (expected a folder with adapter_config.json, e.g. "
                         "results/default/finetune/adapter).")


def check_server(base_url: str, timeout: float = 10.0) -> None:
    """An OpenAI-compatible server answers ``GET <base_url>/models`` (any HTTP answer counts: it is reachable).
    ``${NAME}`` placeholders are filled from the environment for the request only; messages show the URL redacted."""
    import urllib.error
    import urllib.request

    from ..core.provenance import redact_url

    names = re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", base_url)
    if any(n not in os.environ for n in names):
        return  # the backend says which variable is missing
    url = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: os.environ[m.group(1)], base_url).rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered (401 without a key, 404 on a server without /models): reachable
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AuditError(f"The server at {redact_url(base_url)} is unreachable ({reason}). Expected an "
                         "OpenAI-compatible server answering at --base-url (e.g. `make serve-vllm`, then "
                         "--base-url http://127.0.0.1:8000/v1); start it or correct the address.") from None


def default_references() -> Path:
    """The reference runs: the checkout's committed ``results/default/``; for an installed copy (pip), the copies
    the wheel ships (``subgroup_values/_references/``, the same files)."""
    here = REPO_ROOT / "results" / REFERENCE_PROFILE
    return here if here.is_dir() else Path(__file__).resolve().parents[1] / "_references"


def scored_run(run_dir: Path, all_pairs: pd.DataFrame) -> pd.DataFrame:
    """A saved run's predictions (read only), scored with today's metrics against the pairs' weighted answer
    distributions (as :func:`.headroom.model_predictions` does for a profile's runs)."""
    from ..evaluation.runs import load_run, rescore

    preds, _ = load_run(run_dir)
    return rescore(preds, all_pairs)


def _on(preds: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    return keys[["qid", "subgroup_id"]].merge(preds, on=["qid", "subgroup_id"], how="inner")


def reference_runs(keys: pd.DataFrame, all_pairs: pd.DataFrame, res_dir: Path) -> tuple[dict, dict, list[str]]:
    """The committed reference runs on the audited pairs ``keys``: {run: scored predictions}, {run: provenance}
    and notes for the runs left out (missing, or without every audited pair)."""
    runs, prov, notes = {}, {}, []
    for run in REFERENCE_RUNS:
        d = res_dir / run
        if not (d / "predictions.parquet").is_file():
            notes.append(f"{run}: no committed predictions at {d}/predictions.parquet (left out).")
            continue
        p = _on(scored_run(d, all_pairs), keys)
        if len(p) != len(keys):
            notes.append(f"{run}: its committed predictions lack some of the audited pairs (left out: a comparison "
                         "needs the same pairs; audit.json counts them).")
            continue
        meta = json.loads((d / "metrics.json").read_text())
        runs[run] = p
        prov[run] = {"predictions_sha256": sha256_of(d / "predictions.parquet"), "pairs": int(meta.get("pairs", 0)),
                     "git_revision": meta.get("git_revision"), "adapter": (meta.get("config") or {}).get("adapter")}
    return runs, prov, notes


def reference_summary(run: str, preds: pd.DataFrame, res_dir: Path, n_boot: int, seed: int) -> pd.DataFrame:
    """A reference run's summary on the audited pairs: its committed one (metrics.json) when the audit covers all
    of its pairs, else the summary of its committed predictions on the audited pairs."""
    from ..evaluation.evaluate import summarise

    meta = json.loads((res_dir / run / "metrics.json").read_text())
    if int(meta.get("pairs", -1)) == len(preds) and meta.get("by_subset"):
        return pd.DataFrame(meta["by_subset"])
    return summarise(preds, n_boot=n_boot, seed=seed)


# ---- claims ------------------------------------------------------------------------------------------------------

def _words(run: str) -> str:
    return REFERENCE_RUNS.get(run, run)


def scope_claim(preds: pd.DataFrame, n_ood: int, seed: int, label: str, n_questions: int | None = None) -> Claim:
    sample = len(preds) < n_ood
    what = (f"a seeded sample of {preds.qid.nunique()} whole questions of {n_questions or 'the'} (every OOD subgroup "
            f"of each: {len(preds):,} of the {n_ood:,} OOD pairs; sample seed {seed}; a quick look, not the full "
            "evaluation: its intervals resample these few questions and are wide; the reference models are compared "
            "on the same pairs)" if sample else f"all {len(preds):,} OOD pairs")
    return Claim(id="audit.scope", topic="audit", statistic="pairs audited", estimate=float(len(preds)),
                 verdict="sample" if sample else "full", protocol="paper", source="evaluation/predictions.parquet",
                 sentence=(f"{label} was audited on {what}: {preds.qid.nunique()} questions, "
                           f"{preds.subgroup_id.nunique()} subgroups, {int(preds.divergent.sum()):,} divergent "
                           "pairs."))


def reference_claims(preds: pd.DataFrame, refs: dict[str, pd.DataFrame], label: str, n_boot: int = 1000,
                     seed: int = 0) -> list[Claim]:
    """The audited model minus each reference model on the same pairs (paired over questions), one Bonferroni
    family over the references and :data:`REFERENCE_COMPARISONS`."""
    from ..analysis.findings import _METRIC, _SUBSET, _subset, paired_difference

    todo = [(r, s, m) for r in refs for s, m in REFERENCE_COMPARISONS if len(_subset(preds, s))]
    level = 1 - ALPHA / max(len(todo), 1)
    key = ["qid", "subgroup_id"]
    out = []
    for run, subset, metric in todo:
        col, name, higher_better = _METRIC[metric]
        a = _subset(preds, subset)[key + [col]]
        b = refs[run].set_index(key)[col].reindex(pd.MultiIndex.from_frame(a[key])).to_numpy(float)
        d = paired_difference(a[col], pd.Series(b), a.qid, n_boot, seed, level)
        if d["degenerate"]:
            verdict = "uninformative"
        elif d["lo"] is None or d["hi"] is None:
            verdict = "no interval"
        elif d["lo"] > 0:
            verdict = "better" if higher_better else "worse"
        elif d["hi"] < 0:
            verdict = "worse" if higher_better else "better"
        else:
            verdict = "no clear difference"
        how = (f"{100 * level:.1f}% BCa interval over questions, paired, Bonferroni over {len(todo)} comparisons")
        rel = f", {d['estimate'] / d['b']:+.0%} relative" if d["b"] else ""
        tail = {"better": f"better than {run}.", "worse": f"worse than {run}.",
                "no clear difference": f"no clear difference from {run}.",
                "uninformative": "uninformative (every resample gives the same difference).",
                "no interval": "no interval could be formed."}[verdict]
        out.append(Claim(
            id=f"audit.vs_{run}.{metric}.{subset}", topic="audit", statistic=f"{name} of {label} minus {run} on "
            f"{_SUBSET[subset]}", estimate=d["estimate"], lo=d["lo"], hi=d["hi"], verdict=verdict, method=how,
            rule="the interval above 0 (below for NMAE): better; the other side: worse; holding 0: no clear difference",
            protocol="paper", source=f"evaluation/predictions.parquet; results/{REFERENCE_PROFILE}/{run}/predictions.parquet",
            sentence=(f"{name} on {_SUBSET[subset]}: {label} {fmt(d['a'])}, {run} ({_words(run)}) {fmt(d['b'])}; "
                      f"difference {fmt_ci(d['estimate'], d['lo'], d['hi'])} ({how}{rel}): {tail}"),
            extra={"audited": d["a"], "reference": d["b"], "pairs": d["pairs"], "questions": d["questions"],
                   "level": level}))
    return out


def paper_claims(summary: pd.DataFrame, label: str, sample: bool) -> list[Claim]:
    """The audited model's accuracy and NMAE beside the range of the paper's open base models (reported on the
    full OOD split, without intervals: no test is possible, the verdict says where the interval lies)."""
    from ..core import paper

    t = paper.OOD_RESULTS[paper.OOD_RESULTS.kind == "open"]
    models = t[t.model != "open-model mean"]
    mean = t[t.model == "open-model mean"].iloc[0]
    s = summary[summary.subset == "all"].set_index("metric")
    out = []
    for metric, col in (("accuracy", "acc_base"), ("nmae", "nmae_base")):
        r = s.loc[metric]
        lo_p, hi_p = float(models[col].min()), float(models[col].max())
        verdict = ("below the paper's range" if r.hi < lo_p else "above the paper's range" if r.lo > hi_p
                   else "the sample cannot tell" if r.lo <= lo_p and r.hi >= hi_p  # spans the whole range
                   else "overlaps the paper's range")
        if verdict == "the sample cannot tell":
            verdict_words = ("the sample cannot tell where it lies: its interval spans the paper's whole range "
                             "(audit more questions to place it)")
        else:
            verdict_words = verdict
        words = "accuracy" if metric == "accuracy" else "NMAE (lower is better)"
        out.append(Claim(
            id=f"audit.paper.{metric}", topic="audit", statistic=f"{words} of {label} beside the paper's open models",
            estimate=float(r.estimate), lo=float(r.lo), hi=float(r.hi), verdict=verdict,
            method="95% BCa interval over questions; the paper's numbers as reported (no intervals)",
            rule="below / above the paper's range when the whole interval lies below its lowest / above its highest "
                 "open base model; the sample cannot tell when the interval spans the whole range; else overlaps",
            protocol="paper", source="src/subgroup_values/core/paper.py",
            sentence=(f"{label}: OOD {words} {fmt_ci(r.estimate, r.lo, r.hi)}"
                      f"{' on the sample' if sample else ''}; the paper reports {fmt(lo_p)} to {fmt(hi_p)} for its "
                      f"{len(models)} open 3-8B base models (mean {fmt(float(mean[col]))}) on its full OOD split: "
                      f"{verdict_words} (reported numbers, so no test).")))
    return out


def fairness_claims(attr: pd.DataFrame, disp: pd.DataFrame, label: str) -> list[Claim]:
    """Where the audited model does worst and best among attribute values (accuracy, all pairs; descriptive, no
    verdict) and its dispersion over subgroups beside the paper's mean for base models."""
    from ..core import paper

    out = []
    a = attr[(attr.model == AUDITED) & (attr.metric == "accuracy") & (attr.subset == "all")].sort_values("estimate")
    if len(a):
        lo, hi = a.iloc[0], a.iloc[-1]
        out.append(Claim(
            id="audit.fairness.attribute_range", topic="audit", statistic=f"per-attribute accuracy of {label}",
            estimate=float(hi.estimate - lo.estimate), verdict="descriptive",
            method="mean over the subgroups holding each value; 95% subgroup bootstrap over questions",
            protocol="paper", source="per_attribute.csv",
            sentence=(f"{label}'s accuracy is lowest for {lo.label} personas, {fmt_ci(lo.estimate, lo.lo, lo.hi)} "
                      f"({int(lo.subgroups)} subgroups), and highest for {hi.label}, "
                      f"{fmt_ci(hi.estimate, hi.lo, hi.hi)} ({int(hi.subgroups)} subgroups); the per-value intervals "
                      "are not corrected for the comparison of extremes (the contrasts below are tested).")))
    d = disp.set_index("statistic")
    for stat, key in (("accuracy_norm_range", "acc_norm_range"), ("accuracy_cv", "acc_cv")):
        if stat not in d.index:
            continue
        r = d.loc[stat]
        reported = paper.FAIRNESS[key][0]
        words = "normalised range" if "range" in stat else "coefficient of variation"
        if not np.isfinite(r.estimate):  # e.g. accuracy 0 on every subgroup: a ratio to a zero mean
            out.append(Claim(
                id=f"audit.fairness.{stat}", topic="audit", statistic=f"{words} of accuracy over subgroups, {label}",
                verdict="uninformative", protocol="paper", source="disparity.csv",
                sentence=(f"Over subgroups, the {words} of {label}'s accuracy is undefined (a ratio to a mean "
                          "accuracy of zero): uninformative.")))
            continue
        degenerate = bool(r.get("degenerate", False)) or (np.isfinite(r.lo) and r.lo == r.hi)
        out.append(Claim(
            id=f"audit.fairness.{stat}", topic="audit", statistic=f"{words} of accuracy over subgroups, {label}",
            estimate=float(r.estimate), lo=float(r.lo) if np.isfinite(r.lo) else None,
            hi=float(r.hi) if np.isfinite(r.hi) else None, verdict="uninformative" if degenerate else "descriptive",
            method="over subgroup means; BCa bootstrap over questions", protocol="paper", source="disparity.csv",
            sentence=(f"Over subgroups, the {words} of {label}'s accuracy is "
                      f"{fmt_ci(r.estimate, r.lo if np.isfinite(r.lo) else None, r.hi if np.isfinite(r.hi) else None)}"
                      f" (the paper's mean for base models, reported: {fmt(reported)}; dispersion over noisy subgroup "
                      "means is biased upwards, more so on a sample: a descriptive number, no test).")))
    return out


def bias_claims(bias: pd.DataFrame, label: str) -> list[Claim]:
    """One claim per OOD contrast of :func:`.contrasts.paper_bias` on the audited model (all subgroups)."""
    from ..stats.disparities import METRIC_LABELS, level_label

    out = []
    rows = bias[(bias.split == "ood") & (bias.matching == "all subgroups")]
    for r in rows.itertuples():
        cid = f"audit.bias.{r.contrast.replace(' ', '_').lower()}.{r.metric}"
        lab = METRIC_LABELS[r.metric]
        if not r.testable:
            out.append(Claim(id=cid, topic="audit", statistic=f"{lab}: {r.contrast}, {label}", verdict="not testable",
                             rule=r.rule, protocol="paper", source="paper_bias.csv",
                             sentence=f"{r.contrast} ({label}, {lab}): {r.note}."))
            continue
        note = f" ({r.disagreement}; a difference needs both)" if r.disagreement else ""
        lo, hi = (float(v) if np.isfinite(v) else None for v in (r.lo, r.hi))
        if r.in_family:
            method = f"{r.interval} at {level_label(r.level)} (Holm's level); sign-flip permutation test, Holm"
            how = (f"{level_label(r.level)} two-stage BCa interval over {int(r.questions)} questions; Holm-adjusted "
                   f"permutation p = {fmt(float(r.p_holm))}")
        else:  # outside the Holm family (too few questions to reject, or the same test as another): no p, no test
            method = f"{r.interval} at 95%, unadjusted, for the size only; outside the Holm family"
            how = (f"unadjusted 95% two-stage BCa interval over {int(r.questions)} questions, for the size only; "
                   "outside the Holm family, no test")
        out.append(Claim(
            id=cid, topic="audit", statistic=f"{lab}: {r.contrast}, {label}", estimate=float(r.difference),
            lo=lo, hi=hi, p_value=float(r.p_holm) if r.in_family else None, verdict=r.verdict, rule=r.rule,
            method=method, protocol="paper", source="paper_bias.csv",
            sentence=(f"{r.contrast} ({label}, {lab}, OOD): {r.favoured} minus {r.disfavoured} "
                      f"{fmt_ci(r.difference, lo, hi)} ({how}): {r.verdict}{note} (the paper: {r.paper}).")))
    return out


# ---- the card ----------------------------------------------------------------------------------------------------

def _ci(e, lo, hi) -> str:
    return fmt_ci(float(e), None if pd.isna(lo) else float(lo), None if pd.isna(hi) else float(hi))


def systems_markdown(summaries: dict[str, pd.DataFrame], subsets=("all", "divergent"),
                     metrics=("accuracy", "nmae")) -> str:
    head = ["system"] + [f"{m} ({s})" for m in metrics for s in subsets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        t = s.set_index(["subset", "metric"])
        cells = [_ci(*t.loc[(sub, m), ["estimate", "lo", "hi"]]) if (sub, m) in t.index else ""
                 for m in metrics for sub in subsets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headroom_markdown(table: pd.DataFrame) -> str:
    """The paper-protocol table on all pairs; the point masses LB1/LB2 of the audited model only."""
    t = table[(table.pairs == "all") & (~table.method.str.endswith(("_lb1", "_lb2"))
                                        | table.method.str.startswith(f"{AUDITED}_"))]
    lines = ["| method | TV | log score (bits) | normalised score |", "|---|---|---|---|"]
    for r in t.itertuples():
        ls = "" if pd.isna(r.log_score) else fmt(r.log_score)
        norm = "" if pd.isna(getattr(r, "normalised", np.nan)) else fmt(r.normalised, 1)
        lines.append(f"| {r.method} | {_ci(r.tv, r.tv_lo, r.tv_hi)} | {ls} | {norm} |")
    return "\n".join(lines)


def attribute_markdown(attr: pd.DataFrame, models: list[str]) -> str:
    a = attr[(attr.metric == "accuracy") & (attr.subset == "all")]
    lines = ["| attribute | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for label, g in a.groupby("label", sort=False):
        g = g.set_index("model")
        lines.append(f"| {label} | " + " | ".join(_ci(*g.loc[m, ["estimate", "lo", "hi"]]) if m in g.index else ""
                                                 for m in models) + " |")
    return "\n".join(lines)


def paper_markdown() -> str:
    from ..core import paper

    t = paper.OOD_RESULTS
    lines = ["| model (paper, reported) | accuracy base | NMAE base | accuracy SFT | NMAE SFT |", "|---|---|---|---|---|"]
    for r in t.itertuples():
        cells = ["not reported" if pd.isna(x) else fmt(x) for x in (r.acc_base, r.nmae_base, r.acc_sft, r.nmae_sft)]
        lines.append(f"| {r.model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict_line(label: str, found: dict[str, list[Claim]]) -> str:
    """The card's first line: the model's accuracy beside the no-model answer (always the population's most common
    answer) on the same pairs, with the comparison's verdict, and how much the scope can say."""
    by = {c.id: c for cs in found.values() for c in cs}
    c = by.get("audit.evaluation.audited.vs_population_mode.accuracy.all")
    scope = by.get("audit.scope")
    if c is None:
        return "**In one line:** the comparison with the population's most common answer could not be made.\n"
    model, base = c.extra.get("model"), c.extra.get("baseline")
    word = {"above": "above it", "below": "below it", "no clear difference": "no clear difference from it"}.get(
        c.verdict, c.verdict)
    sample = (f" A quick look at {c.extra.get('questions')} questions: the intervals are wide, and an audit of every "
              "question (no LIMIT) is the one to report." if scope is not None and scope.verdict == "sample" else "")
    gap = (f"a difference of {100 * c.estimate:+.0f} points, {100 * c.lo:+.0f} to {100 * c.hi:+.0f} at "
           f"{100 * c.extra.get('level', 0.95):.1f}%" if c.lo is not None and c.hi is not None and c.lo != c.hi
           else f"a difference of {100 * c.estimate:+.0f} points")
    return (f"**In one line:** {label} gives a subgroup's most common answer on {model:.0%} of the audited pairs; "
            f"always answering the whole population's most common answer does so on {base:.0%} ({gap}, paired over "
            f"questions, Bonferroni-corrected): {word}; details below.{sample}\n")


def report_card(label: str, cfg: dict, found: dict[str, list[Claim]], tables: dict[str, str], notes: list[str]) -> str:
    """The one-page card: the claims' sentences (every number in a sentence is a claim) and generated tables."""
    def said(topic: str) -> str:
        cl = [c for c in found.get(topic, []) if c.verdict != "not testable"]
        lines = "".join(f"- {c.sentence}\n" for c in cl) if cl else "- (none)\n"
        untested = sorted({c.statistic.split(": ", 1)[1].rsplit(",", 1)[0] for c in found.get(topic, [])
                           if c.verdict == "not testable"})
        if untested:
            lines += ("- Not testable on these pairs (why: claims/audit.json, paper_bias.csv): " + "; ".join(untested)
                      + ".\n")
        return lines

    who = f"`{cfg['model']}`" + (f" with the adapter `{cfg['adapter']}`" if cfg.get("adapter") else "") + \
        (f" served at an OpenAI-compatible endpoint ({cfg['backend']})" if cfg.get("backend") == "openai_compat" else "")
    parts = [
        f"# Audit: {label}\n",
        verdict_line(label, found),
        f"Model: {who}; scoring `{cfg['scoring']}`, template `{cfg['template']}`. In the tables and claims "
        f"`{AUDITED}` is this model. Reference models: the study's committed runs "
        + ", ".join(f"`{r}` ({w})" for r, w in REFERENCE_RUNS.items())
        + f" (read from `results/{REFERENCE_PROFILE}/`, not recomputed), and the paper's reported models. "
        "Protocol: paper (the pairs' targets and every baseline's inputs come from the same respondents) unless "
        "a section says otherwise. Intervals: BCa bootstrap over questions.\n",
        "## Scope\n", said("scope"),
        *(["\n" + "".join(f"- Note: {n}\n" for n in notes)] if notes else []),
        "\n## Zero-shot evaluation with every baseline (accuracy, NMAE; 95% intervals)\n",
        tables["systems"], "\n", said("evaluation"), said("references"),
        "\n## Beside the paper's models\n", said("paper"), "\n", tables["paper"], "\n",
        "\n## Headroom (paper protocol; TV to the targets' weighted answer distributions)\n", tables["headroom"], "\n",
        said("headroom"), tables.get("headroom_note", ""),
        "\n## Per-attribute fairness (accuracy on all pairs; 95% intervals)\n", tables["attributes"], "\n",
        said("fairness"),
        "\n## Files\n",
        "`evaluation/` (predictions.parquet, metrics.json, systems.csv), `headroom.csv`"
        + (", `headroom_disjoint.csv`" if "disjoint" in tables.get("protocols", "") else "")
        + ", `per_attribute.csv`, `disparity.csv`, `paper_bias.csv`, `claims/audit.json` (every sentence above "
        "that states a number), `audit.json` (provenance).\n",
    ]
    return "\n".join(p.rstrip("\n") + "\n" if p.endswith("\n") else p for p in parts)


# ---- the audit ---------------------------------------------------------------------------------------------------

def run_audit(cfg: dict, out: str | Path, wvs_file: str | None = None, res_dir: str | Path | None = None,
              n_perm: int = 10000, folds_k: int = 2, progress: bool = True) -> dict[str, Path]:
    """Audit the model of the evaluation config ``cfg`` (:func:`.runs.evaluate_run`'s keys) into ``out``. The
    reference runs are read from ``res_dir`` (default ``results/default`` of the checkout). Returns the paths
    written."""
    from ..analysis import contrasts, fairness, headroom, noise_floor
    from ..core.claims import write_claims
    from ..core.provenance import atomic_write, git_revision, scrub, write_csv
    from ..evaluation import baselines
    from ..evaluation.runs import evaluate_run
    from ..stats import disparities, respondents
    from ..survey.study import study_of

    started = time.time()

    def say(msg: str) -> None:
        if progress:
            print(f"[audit {time.time() - started:5.0f} s] {msg}", flush=True)

    out = check_out(out)
    if cfg.get("limit") is not None and int(cfg["limit"]) < 0:
        raise AuditError(f"limit must be an integer >= 1 (a sample of that many OOD pairs), got {cfg['limit']}.")
    if cfg.get("split", "ood") != "ood":
        raise AuditError("An audit evaluates the OOD pairs (split ood); the training split is what fine-tunes saw.")
    check_model(cfg["model"], cfg.get("adapter"), cfg.get("backend", "hf"))
    if cfg.get("backend") == "openai_compat":
        if not cfg.get("base_url"):
            raise AuditError("--backend openai_compat needs --base-url (e.g. http://127.0.0.1:8000/v1).")
        check_server(cfg["base_url"])
    if wvs_file and not Path(wvs_file).is_file():
        raise AuditError(f"No survey file at {wvs_file!r}: expected the official WVS Wave 7 file (see data/raw/README.md)"
                         ", or leave --wvs-file out (the disjoint protocol is then skipped).")
    res_dir = Path(res_dir) if res_dir else default_references()
    n_boot, seed = int(cfg.get("n_boot", 1000)), int(cfg.get("seed", 0))
    label = model_name(cfg["model"], cfg.get("adapter"))
    out.mkdir(parents=True, exist_ok=True)

    if int(cfg.get("limit") or 0) > 0 and not cfg.get("qids"):  # a quick look: whole questions (survey.sampling)
        ood = load_pairs(cfg.get("pairs"), study=cfg.get("study"))
        ood = ood[ood.split == "ood"]
        qids = whole_questions(ood, int(cfg["limit"]), int(cfg.get("sample_seed") or 0))
        limit, cfg = cfg["limit"], cfg | {"qids": qids, "limit": 0}
        say(f"a quick look: {len(qids)} whole questions with all their subgroups, {int(ood.qid.isin(qids).sum())} "
            f"OOD pairs (--limit {limit} pairs at most)")
    say(f"evaluating {label} -> {out / 'evaluation'}")
    done = evaluate_run(cfg, out / "evaluation")
    all_pairs, questions, record = done["all_pairs"], done["questions"], done["record"]
    study = study_of(all_pairs)
    preds = scored_run(out / "evaluation", all_pairs)
    keys = preds[["qid", "subgroup_id"]]
    n_ood = int((all_pairs.split == "ood").sum())
    sample = len(preds) < n_ood

    say(f"reading the reference runs in {res_dir}")
    refs, ref_prov, notes = reference_runs(keys, all_pairs, res_dir)
    summaries = {AUDITED: done["summary"]} | {k: v for k, v in done["baselines"].items()} | \
        {r: reference_summary(r, p, res_dir, n_boot, seed) for r, p in refs.items()}
    write_csv(pd.concat([s.assign(system=k) for k, s in summaries.items()], ignore_index=True),
              out / "evaluation" / "systems.csv")

    found: dict[str, list[Claim]] = {"scope": [scope_claim(preds, n_ood, int(cfg.get("sample_seed") or 0), label,
                                                            int(all_pairs[all_pairs.split == "ood"].qid.nunique()))]}
    from ..analysis.findings import run_claims

    found["evaluation"] = [dataclasses.replace(c, id=c.id.replace("evaluation.", "audit.evaluation.", 1),
                                               topic="audit", source="evaluation/predictions.parquet")
                           for c in run_claims(AUDITED, preds, all_pairs, questions, record, n_boot=n_boot, seed=seed)]
    found["references"] = reference_claims(preds, refs, label, n_boot, seed)
    found["paper"] = paper_claims(done["summary"], label, sample)

    say("headroom (paper protocol, committed noise floor)")
    pairs = all_pairs[all_pairs.split == "ood"].merge(keys, on=["qid", "subgroup_id"])
    try:
        floor = noise_floor.load(study=study)
    except FileNotFoundError as exc:  # an installed copy of an older wheel, a study without a floor
        floor = None
        notes.append(f"The headroom was not computed: {exc}")
    # the headroom scores distributions: a generate-mode run (or a pair without option probabilities) has none
    placed = "probs" in preds and bool(preds["probs"].map(lambda p: p is not None and len(p) > 0).all())
    zero_shot = ([AUDITED] if placed and not cfg.get("adapter") and cfg.get("template") != "marginals" else []) + \
        [r for r in ZERO_SHOT_REFERENCES if r in refs]
    model_runs = ({AUDITED: preds} if placed else {}) | refs
    resp = lam = fd = None
    if wvs_file:
        from ..analysis import folds
        from ..evaluation import classical

        say("reading the survey file (raking, regression, folds)")
        fd = folds.read_folds(wvs_file, k=folds_k, seed=seed, study=study)
        resp = classical.Respondents(fd.survey, fd.questions, fd.study)
        lam, _ = classical.choose_penalty(resp, seed=seed)
    tables, found["headroom"], cover = {}, [], None
    if floor is not None:
        systems = headroom.paper_systems(pairs, all_pairs, resp, model_runs, lam)
        table = headroom.protocol_table(systems, floor.merge(keys, on=["qid", "subgroup_id"]), "paper", n_boot, seed)
        write_csv(table, out / "headroom.csv")
        tables["paper"] = table
        gaps = {"paper": headroom.floor_gap(systems, floor, [headroom.best_predictor(table, list(model_runs))],
                                            n_boot, seed)}
        if fd is not None:
            say("headroom (disjoint protocol: folds of respondents; minutes)")
            from ..analysis import folds

            fold_table = folds.fold_pairs(fd)
            disjoint, fold_floor, _ = headroom.disjoint_systems(fd, fold_table, {r: model_runs[r] for r in zero_shot},
                                                                seed=seed)
            dtable = headroom.protocol_table(disjoint, fold_floor, "disjoint", n_boot, seed)
            write_csv(dtable, out / "headroom_disjoint.csv")
            tables["disjoint"] = dtable
            family = headroom.candidates(dtable, zero_shot)
            gaps["disjoint"] = headroom.floor_gap(disjoint, fold_floor, family, n_boot, seed, 1 - ALPHA / len(family))
            cover = headroom.coverage(pairs, disjoint, folds_k)
        hclaims = headroom.headroom_claims(tables, gaps, {"paper": list(model_runs), "disjoint": zero_shot},
                                           study.country_name, "headroom.csv", zero_shot, cover)
        found["headroom"] = [dataclasses.replace(c, id="audit." + c.id, topic="audit") for c in hclaims]
    card_tables = {"systems": systems_markdown(summaries), "paper": paper_markdown(),
                   "headroom": headroom_markdown(tables["paper"]) if tables else "(not computed: no noise floor)",
                   "protocols": ",".join(tables)}
    card_tables["headroom_note"] = (
        "- The respondent-disjoint protocol was computed from the survey file (`headroom_disjoint.csv`; the claims "
        "above name it).\n" if fd is not None else
        "- The respondent-disjoint protocol was not computed: it needs the survey file (give --wvs-file or "
        "WVS_FILE=...). Raking and the regression need it too and are left out of the paper-protocol table.\n")
    if not placed:
        card_tables["headroom_note"] += ("- The audited model is not in the headroom table: the headroom scores answer "
                                         "distributions, and its predictions have none on every pair (generate "
                                         "scoring, or pairs without option probabilities).\n")
    elif AUDITED not in zero_shot:
        card_tables["headroom_note"] += ("- The audited model was given an adapter or the marginals template: it may "
                                         "have seen cells that hold the targets' respondents, so it is not placed "
                                         "against the floor.\n")

    say("per-attribute fairness and the paper's bias contrasts")
    fair_models = {AUDITED: preds} | refs
    attr = fairness.attribute_table(fair_models, n_boot=n_boot, seed=seed, study=study)
    write_csv(attr, out / "per_attribute.csv")
    disp = fairness.disparity_table(preds, n_boot=n_boot, seed=seed)
    write_csv(disp, out / "disparity.csv")
    found["fairness"] = fairness_claims(attr, disp, label)
    frame = preds.drop(columns=["probs", "option_mass", "reply", "tv", "js", "expected"], errors="ignore") \
        .rename(columns={c: f"{c}_{AUDITED}" for c in ("correct", "nmae", "wasserstein", "status", "choice")})
    truth = respondents.pair_truth(frame, all_pairs)
    panel = disparities.build_panel(frame, truth, models=(AUDITED,), n_draws=n_boot, seed=seed)
    bias = contrasts.paper_bias({"ood": (panel, frame)}, models=(AUDITED,), n_boot=n_boot, n_perm=n_perm, seed=seed,
                                alpha=ALPHA)
    write_csv(bias, out / "paper_bias.csv")
    found["fairness"] += bias_claims(bias, label)
    card_tables["attributes"] = attribute_markdown(attr, list(fair_models))

    every = [c for cl in found.values() for c in cl]
    write_claims(every, out / "claims" / "audit.json")
    card = report_card(label, cfg, found, card_tables, notes)
    atomic_write(out / "report_card.md", card)
    prov = {"model": cfg["model"], "adapter": cfg.get("adapter"), "label": label,
            "config": {k: v for k, v in cfg.items() if k not in ("run",)}, "git_revision": git_revision(),
            "pairs": len(preds), "sample": sample, "reference_runs": ref_prov, "notes": notes,
            "noise_floor_sha256": sha256_of(Path(noise_floor.floor_file(study))) if floor is not None else None, "wvs_file_given": bool(wvs_file),
            "protocols": list(tables), "baselines": list(baselines.KINDS), "wall_seconds": round(time.time() - started, 1),
            "backend": record.get("backend")}
    atomic_write(out / "audit.json", json.dumps(scrub(json.loads(json.dumps(prov, default=str))), indent=2) + "\n")
    say(f"done: {out / 'report_card.md'}")
    return {"card": out / "report_card.md", "claims": out / "claims" / "audit.json", "audit": out / "audit.json",
            "evaluation": out / "evaluation"}
