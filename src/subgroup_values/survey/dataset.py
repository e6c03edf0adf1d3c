"""Build, save and load the study's dataset: the pairs table, the subgroups and a manifest."""

from __future__ import annotations

import hashlib
import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import __version__
from ..core import paper
from ..core.choices import SPLITS
from ..core.claims import Claim
from ..core.paths import INSTALLED, PROCESSED, SHIPPED_PROCESSED, data_folder
from ..core.provenance import sha256_of, write_csv
from .questions import QUESTION_RULES, Question, load_questions, questions_frame
from .study import Study, processed_dir, reference, resolve
from .subgroups import build_pairs, find_subgroups, stratum_name, subgroups_frame, usable_dimensions
from .wvs import Survey, read_wvs

#: The pairs table's columns besides the study's dimension columns.
PAIR_COLUMNS = ("qid", "category", "stratum", "subgroup_id", "subgroup", "split", "n", "n_answered", "n_valid",
                "counts", "weighted_counts", "modal_answer", "modal_answers", "tie", "modal_answers_unweighted",
                "tie_unweighted", "population_modal_answers")
LIST_COLUMNS = ("counts", "weighted_counts", "modal_answers", "modal_answers_unweighted", "population_modal_answers")


@dataclass
class Dataset:
    pairs: pd.DataFrame
    subgroups: pd.DataFrame
    questions: pd.DataFrame
    manifest: dict


def valid_codes(questions: list[Question]) -> dict[str, set[int]]:
    """The survey codes each item may hold besides missing codes: its scale's codes, or the codes its recode
    knows (which include the documented off-scale answers, such as "not allowed to vote")."""
    return {q.qid: set(q.recode) if q.recode else {v for v, _ in q.options} for q in questions}


def build_dataset(wvs_file: str | Path, country: str | None = None, min_size: int | None = None,
                  min_answers: int | None = None, question_rule: str | None = None, progress: bool = True,
                  expected_respondents: int | None = -1, study: Study | str | None = None
                  ) -> tuple[Dataset, Survey, list[Question]]:
    """Read the survey file and build every (question, subgroup) pair of the study's train and OOD strata.

    ``study`` (a :class:`~subgroup_values.survey.study.Study`, a shipped study's name or a config path; default: Singapore's,
    the paper's) gives the country, dimensions, split and rules; the other arguments override it.
    ``min_answers`` (default: the study's) drops a pair whose subgroup gave fewer answers to that question.
    ``expected_respondents``: the country's documented sample size, checked against the file (-1: the study's;
    None: no check). A dimension that cannot form two groups of ``min_size`` is dropped, with its reason kept in
    the manifest (``dropped_dimensions``) and printed.
    """
    study = resolve(study)
    if country is not None and str(country).strip() != "" and str(country).strip().upper() not in (
            study.country, str(study.country_code)):
        raise ValueError(
            f"country {country!r} is not the country of study {study.name!r} ({study.country}, "
            f"{study.country_name}): its personas would say {study.country_name} and its tables would go to "
            f"{study.data_dir}/. For another country write a study config (a copy of "
            f"src/subgroup_values/_data/studies/sgp.yaml with its own study: name, country: {str(country).upper()}, "
            "country_name and that country's codes) and pass it as the study (make: a profile with study: PATH; "
            "CLI: --study PATH).")
    country = country or study.country
    min_size = study.min_group_size if min_size is None else min_size
    min_answers = (study.min_answers if min_size == study.min_group_size else min_size) if min_answers is None \
        else min_answers
    question_rule = question_rule or study.question_rule
    expected_respondents = study.expected_respondents if expected_respondents == -1 else expected_respondents
    if question_rule not in QUESTION_RULES:
        raise ValueError(f"question_rule must be one of {QUESTION_RULES}, got {question_rule!r}.")
    questions = load_questions(rule=question_rule)
    survey = read_wvs(wvs_file, country=country, items=[q.qid for q in questions],
                      valid_codes=valid_codes(load_questions(rule="all")), expected_respondents=expected_respondents,
                      columns=tuple(study.columns), may_lack=study.absent_items, study=study)
    questions = [q for q in questions if q.qid not in survey.absent_items]
    _check_country_code(survey, study)
    _check_declared_codes(survey, study)
    used, dropped = usable_dimensions(survey, study, min_size)
    for reason in dropped.values():
        print(f"dimension dropped: {reason}")
    if not used.train_strata or not used.ood_strata:
        raise ValueError(f"{study.name}: after dropping {sorted(dropped)} no {'training' if not used.train_strata else 'OOD'} "
                         f"stratum is left ({list(dropped.values())}). Choose dimensions that form groups of "
                         f"{min_size}+ respondents in this country (see the study config).")
    subgroups = find_subgroups(survey, used.strata, min_size=min_size, study=used)
    pairs = build_pairs(survey, questions, subgroups, min_answers=min_answers, progress=progress, study=used)
    sub = subgroups_frame(subgroups, used)
    qf = questions_frame(questions)
    manifest = {
        "source": survey.record(),
        "rule": {"country": country, "min_group_size": min_size, "min_answers_per_pair": min_answers,
                 "question_rule": question_rule, "ground_truth": "weighted mode (W_WEIGHT); ties kept",
                 "train_strata": [stratum_name(s) for s in used.train_strata],
                 "ood_strata": [stratum_name(s) for s in used.ood_strata]},
        "study": used.record() | ({"dropped_dimensions": dropped} if dropped else {}),
        "counts": {
            "respondents": survey.n_respondents,
            "questions": len(questions),
            "subgroups": {s: int((sub.split == s).sum()) for s in ("train", "ood")},
            "pairs": {s: int((pairs.split == s).sum()) for s in ("train", "ood")} | {"total": len(pairs)},
            "pairs_with_tied_modes": int(pairs.tie.sum()),
            "pairs_with_tied_modes_unweighted": int(pairs.tie_unweighted.sum()),
        },
        "package_version": __version__,
    }
    return Dataset(pairs, sub, qf, manifest), survey, questions


def _check_country_code(survey: Survey, study: Study) -> None:
    """The file's country code column (B_COUNTRY) holds the study's country_code for every respondent selected."""
    if study.country_code is None or "B_COUNTRY" not in survey.data:
        return
    found = sorted({int(c) for c in pd.to_numeric(survey.data["B_COUNTRY"], errors="coerce").dropna()})
    if found != [study.country_code]:
        raise ValueError(f"study {study.name!r} ({study.source or 'its config'}) says country_code "
                         f"{study.country_code} ({study.country_name}), but the {study.country} respondents of "
                         f"{survey.path.name} hold B_COUNTRY {found}: fix country_code in the study config (the ISO "
                         "numeric code of its country) or use that country's file.")


def _check_declared_codes(survey: Survey, study: Study) -> None:
    """Every code a study declares occurs in the file where the dimension was asked (a code that never does is a
    typo or another country's numbering: an error), and the file's other codes of a dimension are reported (they
    are in no subgroup)."""
    for name, dim in study.dimensions.items():
        col = survey.data[dim.column].dropna()
        if (col != col.round()).any():
            raise ValueError(f"{survey.path.name}: column {dim.column} (dimension {name!r}) holds non-integer codes "
                             f"such as {float(col[col != col.round()].iloc[0])}; survey codes are integers. The file "
                             "is damaged or edited: download it again.")
        found = col.astype(int).value_counts().to_dict()
        absent = {c: lab for c, lab in dim.categories.items() if c not in found}
        if absent and found:  # (a dimension the file never asked is dropped later, with its reason)
            raise ValueError(f"study {study.name!r}, dimension {name!r} (column {dim.column}): declared code(s) "
                             f"{absent} never occur in {survey.path.name}, which holds codes "
                             f"{dict(sorted(found.items()))}: fix the codes in {study.source or 'the study config'} "
                             "(country-specific codes are numbered per country).")
        other = {c: n for c, n in sorted(found.items()) if c not in dim.categories}
        if other:
            print(f"dimension {name} ({dim.column}): code(s) {other} (respondents) are not declared in the study "
                  "config, so they are in no subgroup")


def save_dataset(ds: Dataset, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Write pairs.csv, subgroups.csv, questions_used.csv and manifest.json (with the files' hashes); ``out_dir``
    None: the folder of the dataset's study."""
    out_dir = Path(out_dir) if out_dir else processed_dir((ds.manifest.get("study") or {}).get("study"))
    shipped = SHIPPED_PROCESSED.resolve()
    if INSTALLED and (out_dir.resolve() == shipped or shipped in out_dir.resolve().parents):
        raise ValueError(f"This subgroup_values is an installed copy: {out_dir} holds the aggregates it ships, which "
                         "are not rewritten. Give the dataset a folder of your own (build-dataset --out DIR), then "
                         "read it with load_pairs(DIR/pairs.csv) or evaluate --pairs DIR/pairs.csv.")
    _check_folder_is_the_studys(out_dir, (ds.manifest.get("study") or {}).get("study"))
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"pairs": out_dir / "pairs.csv", "subgroups": out_dir / "subgroups.csv",
             "questions": out_dir / "questions_used.csv"}
    for key, frame in (("pairs", ds.pairs), ("subgroups", ds.subgroups), ("questions", ds.questions)):
        write_csv(frame, paths[key])
    manifest = dict(ds.manifest, files={k: {"name": p.name, "sha256": sha256_of(p)} for k, p in paths.items()})
    paths["manifest"] = out_dir / "manifest.json"
    _write_if_changed(paths["manifest"], json.dumps(manifest, indent=2) + "\n")
    return paths


def _check_folder_is_the_studys(out_dir: Path, name: str | None) -> None:
    """A study's tables go to its own folder: inside data/processed/, the folder must be the one named after the
    study (data/processed/ is Singapore's, data/processed/<study>/ any other's)."""
    from .study import default_data_dir

    if not name:
        return
    out, root = out_dir.resolve(), PROCESSED.resolve()
    if out != root and root not in out.parents:
        return  # a folder of the user's own, outside the study's data tree
    want = data_folder(default_data_dir(name)).resolve()
    if out != want:
        raise ValueError(f"The tables of study {name!r} belong in {want}, not {out}: that folder is "
                         f"{'Singapore (sgp)' if out == root else 'study ' + repr(out.name)}'s, and writing there "
                         "would overwrite its dataset. Leave --out at its default (or give a folder outside "
                         "data/processed/).")


def _write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file untouched, so that `make` sees no change downstream; a change is written through a
    temporary file (a full disk keeps the previous table)."""
    from ..core.provenance import atomic_write

    if path.is_file() and path.read_text() == text:
        return
    atomic_write(path, text)


def load_pairs(path: str | Path | None = None, split: str | None = None,
               study: Study | str | Path | None = None) -> pd.DataFrame:
    """Read a pairs table written by :func:`save_dataset`; list columns come back as Python lists. ``path`` None:
    the committed table of ``study`` (None: Singapore's). The table carries its study (``attrs["study"]``, from
    its manifest, or ``study`` for a table of your own without one): a table whose manifest names another study
    than ``study`` is refused."""
    path = Path(path or processed_dir(study) / "pairs.csv")
    if not path.is_file():
        if INSTALLED:
            shipped = sorted("sgp" if p.parent == SHIPPED_PROCESSED else p.parent.name
                             for p in SHIPPED_PROCESSED.rglob("pairs.csv"))
            raise FileNotFoundError(
                f"No pairs table at {path}: this installed copy of subgroup_values ships the committed tables of "
                f"the studies {shipped} only. Build this study's with `subgroup-values build-dataset --wvs-file "
                "FILE --out DIR` and pass DIR/pairs.csv.")
        raise FileNotFoundError(f"No pairs table at {path}. Build it first: `make data` (needs WVS_FILE).")
    digest, made_for = check_against_manifest(path, study)
    pairs = pd.read_csv(path, dtype={"modal_answer": "Int64"}, keep_default_na=True)
    for col in LIST_COLUMNS:
        if col in pairs:
            pairs[col] = pairs[col].map(json.loads)
    _check_counts(pairs, path)
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"split must be 'train' or 'ood', got {split!r}.")
        pairs = pairs[pairs.split == split].reset_index(drop=True)
    pairs.attrs.update(path=str(path), sha256=digest)  # the data actually read (run records carry this hash)
    named = reference(resolve(study)) if study is not None and str(study).strip() else made_for
    if named:
        pairs.attrs["study"] = named
    return pairs


def _check_counts(pairs: pd.DataFrame, path: Path) -> None:
    """Counts are non-negative integers and weighted counts finite and non-negative, one per option: a value
    outside its domain is an error naming the file, the row and the column."""
    import numpy as np

    def fail(col, i, value, expected):
        raise ValueError(f"{path}: column {col!r} of data row {i + 1} (qid {pairs.qid.iloc[i]}) holds {value!r}; "
                         f"expected {expected}. Rebuild the table from the survey file (make data WVS_FILE=...) or "
                         "restore it.")

    for col in ("n", "n_answered", "n_valid"):
        if col in pairs:
            v = pd.to_numeric(pairs[col], errors="coerce").to_numpy(float)
            bad = np.flatnonzero(~np.isfinite(v) | (v < 0) | (v != np.round(v)))
            if len(bad):
                fail(col, bad[0], pairs[col].iloc[bad[0]], "a count (an integer >= 0)")
    scales = {q.qid: {v for v, _ in q.options} for q in load_questions(rule="all")}
    for col, integer in (("counts", True), ("weighted_counts", False)):
        if col not in pairs:
            continue
        for i, v in enumerate(pairs[col]):
            a = np.asarray(v, dtype=float) if isinstance(v, list) and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in v) else None
            if a is None or not np.isfinite(a).all() or (a < 0).any() or (integer and (a != np.round(a)).any()):
                fail(col, i, v, "a list of " + ("counts (integers >= 0)" if integer else
                                                 "weighted counts (finite numbers >= 0)"))
            if pairs.qid.iloc[i] in scales and len(a) != len(scales[pairs.qid.iloc[i]]):
                fail(col, i, v, f"one per option of the item's scale {sorted(scales[pairs.qid.iloc[i]])}")
    for col in ("modal_answer", "modal_answers", "modal_answers_unweighted", "population_modal_answers"):
        if col not in pairs:
            continue
        for i, (qid, v) in enumerate(zip(pairs.qid, pairs[col])):
            if qid not in scales or (col == "modal_answer" and pd.isna(v)):
                continue  # an unknown item is refused where the questions are joined
            modes = v if isinstance(v, list) else [v]
            if (not modes and col != "modal_answer") or not all(
                    isinstance(m, numbers.Real) and not isinstance(m, bool) and m in scales[qid] for m in modes):
                fail(col, i, v, f"{'answers' if isinstance(v, list) else 'an answer'} on the item's scale "
                     f"{sorted(scales[qid])}")


def check_against_manifest(path: str | Path, study: Study | str | Path | None = None) -> tuple[str, str | None]:
    """The SHA-256 of a pairs table, checked against the manifest beside it (when there is one that lists it), and
    the study the manifest names (None without one), checked against ``study`` when given: a hand-edited table, or
    another study's, is refused, never used."""
    path = Path(path)
    digest = sha256_of(path)
    mpath = path.parent / "manifest.json"
    if not mpath.is_file():
        return digest, None
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError as exc:
        raise ValueError(f"{mpath} is not valid JSON ({exc}): restore it (`git checkout {mpath}`) or rebuild the "
                         "dataset (make data WVS_FILE=...).") from None
    entry = (manifest.get("files") or {}).get("pairs") or {}
    if entry.get("name") != path.name or not entry.get("sha256"):
        raise ValueError(f"{mpath} does not list {path.name} with its SHA-256 (it lists {entry.get('name')!r}), so "
                         f"the table cannot be checked: rebuild it (make data WVS_FILE=...), restore both files, or "
                         "put a table of your own in a folder without a manifest.json.")
    if entry["sha256"] != digest:
        raise ValueError(f"{path} differs from its manifest {mpath} (SHA-256 {digest[:12]}... != "
                         f"{entry['sha256'][:12]}...): the table was changed after it was built. Rebuild it from the "
                         f"survey file (make data WVS_FILE=...) or restore it (`git checkout {path}`); a table of "
                         "your own goes in a folder without that manifest.")
    made_for = (manifest.get("study") or {}).get("study")
    config = (manifest.get("study") or {}).get("config")  # a study that is not shipped: its config's path
    wanted = resolve(study) if study is not None and str(study).strip() else None
    if made_for and wanted is not None and made_for != wanted.name:
        raise ValueError(f"{path} holds the pairs of study {made_for!r} ({(manifest.get('study') or {}).get('country_name')}), "
                         f"but study {wanted.name!r} ({wanted.country_name}) was asked for: its personas and "
                         f"prompts would be the wrong country's. Give --study {made_for} (notebooks: a profile of "
                         f"that study), or the pairs of study {wanted.name!r}.")
    from ..core.paths import REPO_ROOT

    here = config and (Path(config).is_file() or (REPO_ROOT / config).is_file())
    return digest, (config if here and made_for else made_for)


def load_manifest(path: str | Path | None = None, study: Study | str | Path | None = None) -> dict:
    """The manifest at ``path``; None: the committed one of ``study`` (None: Singapore's)."""
    return json.loads(Path(path or processed_dir(study) / "manifest.json").read_text())


def manifest_of(pairs: pd.DataFrame) -> dict:
    """The manifest of the table ``pairs`` was read from (:func:`load_pairs` keeps its path): the one beside it
    (a fold's dataset has its own), else the study's."""
    path = pairs.attrs.get("path")
    beside = Path(path).parent / "manifest.json" if path else None
    return load_manifest(beside if beside is not None and beside.is_file() else None, pairs.attrs.get("study"))


def sample_pairs(pairs: pd.DataFrame, n: int | None, seed: int = 0, qids: list[str] | None = None) -> pd.DataFrame:
    """A seeded sample of ``n`` pairs that does not depend on the table's order (hash of seed, question, subgroup):
    the same pairs are drawn in every step that asks for the same n and seed. ``qids``: draw only from the pairs of
    these questions (each must be in the table)."""
    if qids:
        missing = sorted(set(qids) - set(pairs.qid))
        if missing:
            raise ValueError(f"qids {missing} have no pairs in this table (questions such as {sorted(set(pairs.qid))[:5]}"
                             "); check the question ids.")
        pairs = pairs[pairs.qid.isin(set(qids))]
    if n is None or n <= 0 or n >= len(pairs):
        return pairs.reset_index(drop=True)
    h = [hashlib.sha256(f"{seed}:{q}:{s}".encode()).hexdigest() for q, s in zip(pairs.qid, pairs.subgroup_id)]
    return pairs.assign(_h=h).sort_values("_h").head(n).drop(columns="_h").sort_index().reset_index(drop=True)


def pair_frame(pairs: pd.DataFrame, questions: dict[str, Question]) -> pd.DataFrame:
    """The columns a prediction table starts from: the pair, its truth, its scale, and whether it is divergent
    (the subgroup's modal answer differs from the whole sample's)."""
    named = pairs.attrs.get("study")
    dims = [d for d in resolve(named).dimensions if d in pairs.columns] if named else []
    dims = dims or [
        c for c in pairs.columns if c not in PAIR_COLUMNS]  # a table of another study: its own dimension columns
    keep = ["qid", "category", "stratum", "subgroup_id", "subgroup", *dims, "split", "n", "modal_answers",
            "population_modal_answers", "weighted_counts"]
    out = pairs[keep].copy().reset_index(drop=True)
    out["scale_min"] = [questions[q].scale_min for q in out.qid]
    out["scale_max"] = [questions[q].scale_max for q in out.qid]
    out["divergent"] = [not set(m) & set(p) for m, p in zip(out.modal_answers, out.population_modal_answers)]
    return out


def split_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per split: pairs, pairs with tied modes (weighted, unweighted), and the share of divergent pairs."""
    def decode(v):
        return json.loads(v) if isinstance(v, str) else v

    divergent = [not set(decode(m)) & set(decode(p)) for m, p in zip(pairs.modal_answers, pairs.population_modal_answers)]
    return pairs.assign(divergent=divergent).groupby("split").agg(
        pairs=("qid", "size"), tied_weighted=("tie", "sum"), tied_unweighted=("tie_unweighted", "sum"),
        divergent_share=("divergent", "mean"))


def verify(out_dir: str | Path | None = None) -> dict:
    """Check the committed aggregates against their manifest (SHA-256 of every file it lists); return the
    manifest. A difference is an error saying how to restore or rebuild the tables."""
    out_dir = Path(out_dir) if out_dir else processed_dir()
    path = out_dir / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"No manifest at {path}: build the dataset from the survey file (make data "
                                "WVS_FILE=...) or restore data/processed/ with `git checkout data/processed`.")
    manifest = json.loads(path.read_text())
    _check_folder_is_the_studys(out_dir, (manifest.get("study") or {}).get("study"))
    listed = set(manifest.get("files") or {})
    if not {"pairs", "subgroups", "questions"} <= listed:
        raise ValueError(f"{path} lists the tables {sorted(listed)}, not pairs, subgroups and questions: an empty or "
                         "partial check is no check. Restore it (`git checkout data/processed`) or rebuild the dataset "
                         "(make data WVS_FILE=...).")
    for key, entry in manifest.get("files", {}).items():
        f = out_dir / entry["name"]
        if not f.is_file():
            raise FileNotFoundError(f"{f} ({key}) is missing: restore it (`git checkout {f}`) or rebuild the "
                                    "dataset from the survey file (make data WVS_FILE=...).")
        if sha256_of(f) != entry["sha256"]:
            raise ValueError(f"{f} differs from its manifest (SHA-256 {sha256_of(f)[:12]}... != "
                             f"{entry['sha256'][:12]}...): restore it (`git checkout {f}`) or rebuild the dataset "
                             "from the survey file (make data WVS_FILE=...).")
    return manifest


if __name__ == "__main__":
    import sys

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "verify":
        raise SystemExit("usage: python -m subgroup_values.survey.dataset verify DATA_DIR [STAMP]")
    try:
        m = verify(sys.argv[2])
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    print(f"{sys.argv[2]}: {len(m['files'])} tables match the manifest (survey SHA-256 {m['source']['sha256'][:12]}...)")
    if len(sys.argv) == 4:  # a stamp for make, rewritten only when the verified tables change
        stamp = Path(sys.argv[3])
        stamp.parent.mkdir(parents=True, exist_ok=True)
        _write_if_changed(stamp, json.dumps(m["files"], sort_keys=True) + "\n")


# ---- the dataset's findings -------------------------------------------------------------------------------------------------

def data_claims(manifest: dict, rule_search: dict | None = None) -> list[Claim]:
    """The dataset's counts beside the paper's, and whether the question rule is identified."""
    P, c = paper.DATASET, manifest["counts"]
    ours = {"questions": c["questions"], "train_subgroups": c["subgroups"]["train"],
            "ood_subgroups": c["subgroups"]["ood"], "train_pairs": c["pairs"]["train"],
            "ood_pairs": c["pairs"]["ood"], "total_pairs": c["pairs"]["total"]}
    differ = [k for k in P if P[k] != ours[k]]
    counts = (f"{ours['questions']} questions, {ours['train_subgroups']} training and {ours['ood_subgroups']} OOD "
              f"subgroups, {ours['train_pairs']:,} training and {ours['ood_pairs']:,} OOD pairs "
              f"({ours['total_pairs']:,} in all)")
    rule = manifest["rule"]
    source = "data/processed/manifest.json"
    out = [Claim(
        id="data.counts", topic="data", statistic="dataset counts (questions, subgroups, pairs) vs the paper's",
        verdict="reproduced" if not differ else "differs",
        rule="every count equal to the paper's: reproduced; else the counts that differ are named",
        sentence=(f"The dataset reproduces every count the paper reports: {counts}." if not differ else
                  f"The dataset's counts ({counts}) differ from the paper's in {', '.join(differ)}."),
        method=f"survey file ({c['respondents']:,} respondents), question rule {rule['question_rule']!r}, pairs with "
               f"fewer than {rule['min_answers_per_pair']} answers dropped, subgroups of at least "
               f"{rule['min_group_size']}", source=source, extra={"ours": ours, "paper": P})]
    if "pairs_with_tied_modes" in c:
        out.append(Claim(
            id="data.ties", topic="data", statistic="pairs whose modal answer ties", estimate=float(
                c["pairs_with_tied_modes"]), verdict="", rule="ties are kept: a prediction of any tied mode is correct",
            sentence=(f"Weighted modes tie in {c['pairs_with_tied_modes']:,} of {ours['total_pairs']:,} pairs, "
                      f"unweighted modes in {c.get('pairs_with_tied_modes_unweighted', 0):,}; ties are kept and a "
                      "prediction of any tied mode counts as correct."), source=source))
    if rule_search:
        fit, n = rule_search["unions_fitting_both"], rule_search["unions_enumerated"]
        out.append(Claim(
            id="data.question_rule", topic="data", statistic="unions of whole questionnaire batteries that keep the "
            "pair counts and match both landscape numbers the paper reports", estimate=float(fit),
            verdict="not identified" if fit != 1 else "identified",
            rule="one fitting union: identified; more than one: the paper's rule is not identified",
            sentence=(f"The paper's question rule is not identified by its counts and landscape numbers: "
                      f"{rule_search['droppable_items']} items can be dropped without changing the pair counts, and "
                      f"of the first {n:,} unions of whole questionnaire batteries {fit:,} match both landscape "
                      f"numbers within {rule_search['unions_fitting_both_within']}; we keep a rule that can be "
                      f"stated in a sentence ({rule['question_rule']!r})." if fit != 1 else
                      "Exactly one union of whole questionnaire batteries matches the paper's counts and landscape "
                      "numbers."),
            method="enumeration of unions in questionnaire order (data/processed/question_rule_search.csv)",
            source="data/processed/question_rule_search.json"))
    return out
