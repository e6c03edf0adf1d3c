"""Respondent-disjoint folds: the ``disjoint`` protocol (design.md, "Protocols").

Under the ``paper`` protocol the same respondents feed a predictor's inputs (the single-attribute and training
cells, the population) and the targets (an Indian-Hindu respondent is in "Hindu" and in "Indian x Hindu"), so a
predictor built from the marginals partly returns the target's own sample. Here the respondents are split into
``K`` folds (seeded; stratified: respondents are ordered by their full cross-classification on the study's
dimensions, at random within it, and dealt to the folds in turn, so every cell that is a union of
cross-classes, every training and OOD cell, splits evenly). For a target fold ``f``:

- the **targets** are the OOD (question, subgroup) distributions of fold ``f``'s respondents only;
- every **input** (training-stratum and single-attribute cells, the population, the respondents a regression is
  fitted on, the cell sizes raking uses) comes from the other folds' respondents only;

and results are averaged over the ``K`` target folds (cross-fitting). A cell enters a fold's tables only with
``min_size`` (30) respondents and a pair with ``min_answers`` (30) answers in that fold, the project's
disclosure rule, so the fold aggregates (:func:`save_fold_pairs`) can be committed.

:func:`leave_cell_out` is the harsh bound the committed paper aggregates allow: each OOD cell's own respondents
taken out of its marginals and of the population before the log-linear rule composes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..survey.study import Study, resolve, study_of

#: Columns of the committed fold aggregates (``fold_pairs.csv``).
FOLD_COLUMNS = ("fold", "role", "qid", "category", "stratum", "subgroup_id", "subgroup", "split", "n",
                "n_answered", "n_valid", "counts", "weighted_counts", "modal_answers", "population_modal_answers")


@dataclass
class FoldData:
    """A study's survey split into folds: ``survey`` (all respondents), ``folds`` (fold of each respondent),
    ``questions`` (the dataset's questions), ``study`` (dimensions that form groups in this file)."""

    survey: object
    questions: list
    study: Study
    folds: np.ndarray
    k: int
    seed: int

    def part(self, mask: np.ndarray):
        """The survey restricted to the respondents of ``mask`` (their original row labels kept)."""
        mask = np.asarray(mask, bool)
        return replace(self.survey, data=self.survey.data[mask], missing=self.survey.missing[mask])

    def targets_of(self, fold: int):
        return self.part(self.folds == fold)

    def inputs_of(self, fold: int):
        return self.part(self.folds != fold)


def assign_folds(survey, study: Study, k: int = 2, seed: int = 0) -> np.ndarray:
    """Fold (0..k-1) of every respondent: ordered by the full cross-classification on the study's dimensions
    (a code outside a dimension's kept codes counts as its own class), at random within it, then dealt in turn."""
    if k < 2:
        raise ValueError(f"respondent-disjoint folds need k >= 2, got k={k}.")
    n = survey.n_respondents
    rng = np.random.default_rng(seed)
    keys = []
    for d in study.dimensions.values():
        col = survey.data[d.column]
        keys.append(pd.factorize(col.where(col.isin(list(d.categories)), -1).fillna(-1), sort=True)[0])
    order = np.lexsort([rng.random(n), *reversed(keys)])
    folds = np.empty(n, dtype=int)
    folds[order] = (np.arange(n) + int(rng.integers(k))) % k
    return folds


def read_folds(wvs_file, k: int = 2, seed: int = 0, country: str | None = None,
               study: Study | str | None = None) -> FoldData:
    """The study's survey (the same respondents and questions as its dataset build; None: Singapore's), split into
    folds."""
    from ..survey.dataset import valid_codes
    from ..survey.questions import load_questions
    from ..survey.subgroups import usable_dimensions
    from ..survey.wvs import read_wvs

    study = resolve(study)
    questions = load_questions(rule=study.question_rule)
    survey = read_wvs(wvs_file, country=country or study.country, items=[q.qid for q in questions],
                      valid_codes=valid_codes(load_questions(rule="all")), columns=tuple(study.columns),
                      may_lack=study.absent_items)
    questions = [q for q in questions if q.qid not in survey.absent_items]
    used, _ = usable_dimensions(survey, study, study.min_group_size)
    return FoldData(survey, questions, used, assign_folds(survey, used, k, seed), k, seed)


def cell_pairs(survey, questions, study: Study, strata, min_size: int | None = None,
               min_answers: int | None = None) -> pd.DataFrame:
    """The pairs table (as :func:`subgroup_values.survey.subgroups.build_pairs`) of ``strata``' cells among ``survey``'s
    respondents, cells of ``min_size`` and pairs of ``min_answers`` only."""
    from ..survey.subgroups import build_pairs, find_subgroups

    min_size = study.min_group_size if min_size is None else min_size
    min_answers = study.min_answers if min_answers is None else min_answers
    subgroups = find_subgroups(survey, list(strata), min_size=min_size, study=study)
    pairs = build_pairs(survey, questions, subgroups, min_answers=min_answers, progress=False, study=study)
    for col in ("counts", "weighted_counts", "modal_answers", "modal_answers_unweighted",
                "population_modal_answers"):
        pairs[col] = pairs[col].map(json.loads)
    return pairs


def fold_pairs(fd: FoldData, min_size: int | None = None, min_answers: int | None = None) -> pd.DataFrame:
    """Every fold's tables: ``role`` = ``target`` (fold f's OOD cells) and ``inputs`` (the other folds' training
    and single-attribute cells), with ``fold`` = f. The population is the sum of the inputs' sex cells, as in
    :func:`subgroup_values.evaluation.baselines.population_distributions`."""
    out = []
    for f in range(fd.k):
        t = cell_pairs(fd.targets_of(f), fd.questions, fd.study, fd.study.ood_strata, min_size, min_answers)
        i = cell_pairs(fd.inputs_of(f), fd.questions, fd.study, fd.study.train_strata, min_size, min_answers)
        # a target's divergence is judged against the population the predictors are given (the inputs')
        pop = _population_modes(i, fd.questions)
        t["population_modal_answers"] = [pop.get(q, []) for q in t.qid]
        out += [t.assign(fold=f, role="target"), i.assign(fold=f, role="inputs")]
    return pd.concat(out, ignore_index=True)


def _population_modes(inputs: pd.DataFrame, questions) -> dict[str, list[int]]:
    from ..evaluation.baselines import population_distributions
    from ..survey.subgroups import modal_values

    qs = {q.qid: q for q in questions}
    return {q: modal_values(np.round(d, 9), qs[q].values) for q, d in population_distributions(inputs).items()}


def targets(table: pd.DataFrame, fold: int) -> pd.DataFrame:
    return table[(table.fold == fold) & (table.role == "target")].reset_index(drop=True)


def inputs(table: pd.DataFrame, fold: int) -> pd.DataFrame:
    return table[(table.fold == fold) & (table.role == "inputs")].reset_index(drop=True)


def other_folds_divergence(table: pd.DataFrame) -> pd.DataFrame:
    """Whether each fold target pair is divergent, judged without the target's own respondents: the mode of the
    same cell among the other folds' respondents (their target rows of that question and subgroup, weighted counts
    pooled) against the population the predictors are given (the target row's ``population_modal_answers``, from
    the other folds' inputs). The target's own sample mode would select pairs on the target's sampling noise
    (a pair whose fold sample happens to stray from the population mode is called divergent, and every
    predictor then looks worse on it than on an independent sample of the cell). One row per target pair
    (fold, qid, subgroup_id) with ``divergent`` True / False, or missing where no other fold holds the cell
    (fewer than 30 of its respondents there): such a pair is in the "all" rows only."""
    from ..survey.questions import load_questions
    from ..survey.subgroups import modal_values

    values = {q.qid: np.asarray(q.values) for q in load_questions(rule="all")}
    tg = table[table.role == "target"]
    out = []
    for f in sorted(tg.fold.unique()):
        mine = tg[tg.fold == f]
        pooled = (tg[tg.fold != f].groupby(["qid", "subgroup_id"]).weighted_counts
                  .agg(lambda c: np.sum([np.asarray(x, float) for x in c], axis=0)))
        div = []
        for r in mine.itertuples(index=False):
            other = pooled.get((r.qid, r.subgroup_id))
            if other is None:
                div.append(pd.NA)
                continue
            mode = modal_values(np.round(other, 9), values[r.qid])
            div.append(not set(mode) & set(r.population_modal_answers))
        out.append(pd.DataFrame({"fold": f, "qid": mine.qid.to_numpy(), "subgroup_id": mine.subgroup_id.to_numpy(),
                                 "divergent": pd.array(div, dtype="boolean")}))
    return pd.concat(out, ignore_index=True)


def fold_file(study: Study | str | None = None):
    """Where the committed fold aggregates of ``study`` (None: Singapore's) are kept, beside its dataset."""
    from ..survey.study import processed_dir

    return processed_dir(study) / "fold_pairs.csv"


def save_fold_pairs(table: pd.DataFrame, path=None, study: Study | str | None = None) -> bool:
    """Write the fold aggregates (cells of the study's minimum group size, 30+, in their fold only) when their
    content changed; ``path`` None: the study's :func:`fold_file`."""
    from pathlib import Path

    from ..core.provenance import write_csv

    study = resolve(study)
    small = table[table.n < study.min_group_size]
    if len(small):
        raise ValueError(f"{len(small)} fold cells have fewer than {study.min_group_size} respondents (e.g. "
                         f"{small.subgroup_id.iloc[0]}): they may not be committed.")
    path = Path(path) if path else fold_file(study)
    t = table.reindex(columns=list(FOLD_COLUMNS)).copy()
    for col in ("counts", "weighted_counts", "modal_answers", "population_modal_answers"):
        t[col] = t[col].map(json.dumps)
    return write_csv(t, path)


def load_fold_pairs(path=None, study: Study | str | None = None) -> pd.DataFrame:
    from pathlib import Path

    path = Path(path) if path else fold_file(study)
    if not path.is_file():
        raise FileNotFoundError(f"No fold aggregates at {path}: run notebook 08 with the survey file "
                                "(make headroom WVS_FILE=...), which builds and keeps them.")
    t = pd.read_csv(path)
    for col in ("counts", "weighted_counts", "modal_answers", "population_modal_answers"):
        t[col] = t[col].map(json.loads)
    return t


def balance(fd: FoldData) -> pd.DataFrame:
    """Per training and OOD cell: its respondents in each fold, and the largest difference between two folds."""
    from ..survey.subgroups import find_subgroups, subgroup_mask

    rows = []
    for s in find_subgroups(fd.survey, fd.study.strata, min_size=fd.study.min_group_size, study=fd.study):
        counts = np.bincount(fd.folds[subgroup_mask(fd.survey, s, fd.study)], minlength=fd.k)
        rows.append({"subgroup_id": s.subgroup_id, "split": s.split, "n": s.n,
                     "spread": int(counts.max() - counts.min())} | {f"fold_{f}": int(c) for f, c in enumerate(counts)})
    return pd.DataFrame(rows)


def leave_cell_out(pairs: pd.DataFrame, all_pairs: pd.DataFrame) -> pd.DataFrame:
    """The log-linear rule with each OOD cell's own respondents removed from its single-attribute marginals and
    from the population (the committed paper aggregates allow it: a marginal's weighted counts minus the
    cell's). A harsh bound: the marginals lose those respondents entirely. Scored like a baseline."""
    from ..evaluation.baselines import LOG_LINEAR_PSEUDOCOUNT, log_linear, population_distributions
    from ..stats.metrics import score_pairs
    from ..survey.dataset import pair_frame
    from ..survey.questions import load_questions

    questions = {q.qid: q for q in load_questions(rule="all")}
    frame = pair_frame(pairs, questions)
    pop = population_distributions(all_pairs)
    singles = all_pairs[~all_pairs.stratum.str.contains(" x ", regex=False)]
    single = {(r.qid, r.subgroup_id): np.asarray(r.weighted_counts, float) for r in singles.itertuples()}
    probs = []
    for row in frame.itertuples(index=False):
        own = np.asarray(row.weighted_counts, float)
        ms = [single.get((row.qid, p)) for p in row.subgroup_id.split("|")]
        if any(m is None for m in ms):
            raise ValueError(f"{row.qid} x {row.subgroup_id}: a single-attribute cell is missing from the "
                             "aggregates; leave-cell-out needs both marginals.")
        d = log_linear([np.clip(m - own, 0, None) for m in ms], np.clip(pop[row.qid] - own, 0, None),
                       LOG_LINEAR_PSEUDOCOUNT)
        probs.append(d.tolist())
    frame["probs"] = probs
    frame["choice"] = pd.array([lo + int(np.argmax(p)) for lo, p in zip(frame.scale_min, probs)], dtype="Int64")
    frame["option_mass"], frame["reply"], frame["status"], frame["expected"] = 1.0, None, "ok", False
    return score_pairs(frame)


# ---- a fold as a dataset: what a fine-tune trains on and is evaluated on under the disjoint protocol -----------

#: The name of a fold's dataset folder (``build/<profile>/folds/fold<f>``) and its files.
FOLD_DATASET_FILES = ("pairs.csv", "manifest.json")


def fold_dataset(table: pd.DataFrame, fold: int, all_pairs: pd.DataFrame) -> pd.DataFrame:
    """Target fold ``fold`` of the fold aggregates ``table`` as a pairs table (the columns of ``pairs.csv``):
    its ``inputs`` rows (the other folds' training and single-attribute cells) as the ``train`` split, its
    ``target`` rows (fold ``fold``'s OOD cells) as the ``ood`` split. A fine-tune trained on the train split and
    evaluated on the ood split never sees a target respondent. The attribute columns come from ``all_pairs`` (a
    fold cell is a cell of the whole sample); the unweighted modes from the counts."""
    from ..survey.questions import load_questions
    from ..survey.subgroups import modal_values

    if fold not in set(table.fold):
        raise ValueError(f"The fold aggregates have folds {sorted(set(table.fold))}, not fold {fold}.")
    part = pd.concat([inputs(table, fold), targets(table, fold)], ignore_index=True)
    bad = part[(part.role == "inputs") != (part.split == "train")]
    if len(bad):
        raise ValueError(f"fold {fold}: {len(bad)} rows whose role and split disagree (e.g. {bad.subgroup_id.iloc[0]}"
                         f" is {bad.role.iloc[0]} but split {bad.split.iloc[0]}): the fold aggregates are damaged; "
                         "rebuild them (make headroom WVS_FILE=...).")
    dims = [c for c in all_pairs.columns if c in study_of(all_pairs).dimensions]
    attrs = all_pairs.drop_duplicates("subgroup_id").set_index("subgroup_id")[dims]
    missing = sorted(set(part.subgroup_id) - set(attrs.index))
    if missing:
        raise ValueError(f"fold {fold}: {len(missing)} cells of the fold aggregates are not cells of the pairs table "
                         f"(e.g. {missing[0]}): the two were built from different data. Rebuild both from one survey "
                         "file (make data headroom WVS_FILE=...).")
    values = {q.qid: q.values for q in load_questions(rule="all")}
    out = part.join(attrs, on="subgroup_id")
    out["modal_answer"] = pd.array([m[0] if m else None for m in out.modal_answers], dtype="Int64")
    out["tie"] = [len(m) > 1 for m in out.modal_answers]
    out["modal_answers_unweighted"] = [modal_values(np.asarray(c, float), values[q])
                                       for c, q in zip(out.counts, out.qid)]
    out["tie_unweighted"] = [len(m) > 1 for m in out.modal_answers_unweighted]
    cols = ["qid", "category", "stratum", "subgroup_id", "subgroup", *dims, "split", "n", "n_answered", "n_valid",
            "counts", "weighted_counts", "modal_answer", "modal_answers", "tie", "modal_answers_unweighted",
            "tie_unweighted", "population_modal_answers"]
    return out[cols]


def write_fold_dataset(table: pd.DataFrame, fold: int, all_pairs: pd.DataFrame, out_dir, source=None) -> dict:
    """Write :func:`fold_dataset` as ``out_dir/pairs.csv`` with a ``manifest.json`` beside it (the study, the
    protocol, the fold, the SHA-256 of the fold aggregates it came from and of the table), so that
    :func:`subgroup_values.survey.dataset.load_pairs` checks it like the dataset's own. Files are rewritten only when
    their content changes (make sees no change otherwise). Returns the manifest."""
    from pathlib import Path

    from ..core.provenance import sha256_of
    from ..survey.dataset import _write_if_changed, load_manifest

    out_dir = Path(out_dir)
    frame = fold_dataset(table, fold, all_pairs)
    t = frame.copy()
    for col in ("counts", "weighted_counts", "modal_answers", "modal_answers_unweighted", "population_modal_answers"):
        t[col] = t[col].map(json.dumps)
    text = t.to_csv(index=False, lineterminator="\n")
    path = out_dir / "pairs.csv"
    _write_if_changed(path, text)
    study = study_of(all_pairs)
    counts = frame.groupby("split").size().to_dict()
    from ..survey.study import reference

    named = {"config": reference(study)} if reference(study) != study.name else {}  # a study that is not shipped
    manifest = {"study": {"study": study.name, **named, "country": study.country, "country_name": study.country_name},
                "protocol": "disjoint", "fold": int(fold), "k": int(table.fold.nunique()),
                "description": (f"Target fold {fold}: train = the other folds' training and single-attribute cells, "
                                f"ood = fold {fold}'s OOD cells (cells and pairs of {study.min_group_size}+ "
                                "respondents in their fold)"),
                # the survey the fold aggregates were built from: the dataset's (notebook 8 builds both from it)
                "source": (load_manifest(study=study).get("source") or {}),
                "fold_pairs": {"name": Path(source).name if source else "fold_pairs.csv",
                               "sha256": sha256_of(source) if source else None},
                "counts": {"pairs": {k: int(v) for k, v in counts.items()},
                           "subgroups": {k: int(v) for k, v in frame.groupby("split").subgroup_id.nunique().items()}},
                "files": {"pairs": {"name": "pairs.csv", "sha256": sha256_of(path)}}}
    _write_if_changed(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def _main(argv=None) -> int:
    import argparse

    from ..survey.dataset import load_pairs

    ap = argparse.ArgumentParser(prog="python -m subgroup_values.analysis.folds",
                                 description="A target fold of the committed fold aggregates as a pairs table "
                                             "(train: the other folds' cells; ood: the fold's OOD cells).")
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dataset", help="write OUT_DIR/pairs.csv and OUT_DIR/manifest.json for one target fold")
    d.add_argument("out_dir")
    d.add_argument("--fold", type=int, required=True)
    d.add_argument("--fold-pairs", default="", help="the fold aggregates; empty: the study's fold_pairs.csv")
    d.add_argument("--study", default="sgp", help="the study (a shipped name or a config path; default sgp)")
    args = ap.parse_args(argv)
    try:
        src = args.fold_pairs or fold_file(args.study)
        table = load_fold_pairs(src)
        m = write_fold_dataset(table, args.fold, load_pairs(study=args.study), args.out_dir, source=src)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"fold {args.fold}: {m['counts']['pairs']} pairs -> {args.out_dir}/pairs.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
