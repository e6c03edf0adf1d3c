"""Demographic subgroups, strata, the compositional split, and the (question, subgroup) pairs table.

A *dimension* is a survey column with the categories we study (sex, age, ethnicity, religion). A *stratum* is a
set of dimensions (``("sex",)`` or ``("age", "religion")``); its *subgroups* are every combination of one
category per dimension with at least ``min_size`` respondents. The *split* is by stratum: the model is trained
on some strata and tested on intersections it never saw (the OOD split).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .questions import Question
from .study import Dimension, Stratum, Study, resolve
from .wvs import Survey

__all__ = ["Dimension", "Stratum", "Subgroup", "find_subgroups", "build_pairs", "subgroups_frame", "stratum_name"]


def stratum_name(stratum: Stratum) -> str:
    return " x ".join(stratum)


@dataclass(frozen=True)
class Subgroup:
    stratum: Stratum
    attributes: tuple[tuple[str, int], ...]  # (dimension, code) in stratum order
    n: int
    split: str
    labels: tuple[str, ...] = ()  # the attributes' labels, in stratum order

    @property
    def subgroup_id(self) -> str:
        return "|".join(f"{d}={c}" for d, c in self.attributes)

    @property
    def label(self) -> str:
        return ", ".join(self.labels)


def make_strata(dimensions: list[str], orders: tuple[int, ...] = (1, 2)) -> list[Stratum]:
    """Every stratum of the given orders (1 = single dimensions, 2 = pairs, ...), in dimension order."""
    return [s for k in orders for s in itertools.combinations(dimensions, k)]


def find_subgroups(survey: Survey, strata: list[Stratum] | None = None, min_size: int = 30,
                   study: Study | None = None) -> list[Subgroup]:
    """Subgroups of each stratum (default: the study's) with at least ``min_size`` respondents; split =
    train/ood/other by the study's strata (``study``: a Study, a name or a path; None: Singapore's)."""
    if min_size < 1:
        raise ValueError(f"min_size must be a positive number of respondents, got {min_size}.")
    study = resolve(study)
    dimensions = study.dimensions
    strata = strata if strata is not None else study.strata
    data = survey.data
    out = []
    for stratum in strata:
        unknown = [d for d in stratum if d not in dimensions]
        if unknown:
            raise ValueError(f"Unknown dimension(s) {unknown}; known: {sorted(dimensions)}.")
        split = study.split_of(stratum)
        for codes in itertools.product(*(dimensions[d].categories for d in stratum)):
            mask = np.ones(len(data), dtype=bool)
            for d, c in zip(stratum, codes):
                mask &= (data[dimensions[d].column] == c).to_numpy(dtype=bool, na_value=False)
            n = int(mask.sum())
            if n >= min_size:
                out.append(Subgroup(stratum, tuple(zip(stratum, codes)), n, split,
                                    tuple(dimensions[d].label(c) for d, c in zip(stratum, codes))))
    return out


def usable_dimensions(survey: Survey, study: Study, min_size: int | None = None) -> tuple[Study, dict[str, str]]:
    """The study without the dimensions that cannot form two groups of ``min_size`` respondents in this file
    (e.g. ethnicity where it was not asked), and why each was dropped."""
    min_size = study.min_group_size if min_size is None else min_size
    dropped = {}
    for name, dim in study.dimensions.items():
        col = survey.data[dim.column]
        sizes = {lab: int((col == code).sum()) for code, lab in dim.categories.items()}
        big = [lab for lab, n in sizes.items() if n >= min_size]
        if len(big) < 2:
            dropped[name] = (f"{name} ({dim.column}) forms {len(big)} group(s) of {min_size}+ respondents "
                             f"(sizes: {sizes}); a dimension needs two")
    return (study.without(list(dropped)) if dropped else study), dropped


def subgroup_mask(survey: Survey, subgroup: Subgroup, study: Study | None = None) -> np.ndarray:
    dimensions = resolve(study).dimensions
    mask = np.ones(survey.n_respondents, dtype=bool)
    for d, c in subgroup.attributes:
        mask &= (survey.data[dimensions[d].column] == c).to_numpy(dtype=bool, na_value=False)
    return mask


def modal_values(counts: np.ndarray, values: np.ndarray, rtol: float = 1e-9) -> list[int]:
    """Every value whose count equals the maximum (ties kept); empty when there are no answers."""
    counts = np.asarray(counts, dtype=float)
    if counts.sum() <= 0:
        return []
    top = counts.max()
    return [int(v) for v, c in zip(values, counts) if c >= top * (1 - rtol)]


def subgroups_frame(subgroups: list[Subgroup], study: Study | None = None) -> pd.DataFrame:
    rows = []
    for s in subgroups:
        row = {"stratum": stratum_name(s.stratum), "subgroup_id": s.subgroup_id, "subgroup": s.label,
               "n": s.n, "split": s.split}
        row.update({d: lab for (d, _), lab in zip(s.attributes, s.labels)})
        rows.append(row)
    cols = ["stratum", "subgroup_id", "subgroup", *resolve(study).dimensions, "n", "split"]
    return pd.DataFrame(rows).reindex(columns=cols)


def build_pairs(survey: Survey, questions: list[Question], subgroups: list[Subgroup],
                min_answers: int = 30, progress: bool = True, study: Study | None = None) -> pd.DataFrame:
    """The tidy pairs table: one row per (question, subgroup) with at least ``min_answers`` answers.

    ``n_answered`` counts respondents who gave any answer (a non-negative code, including answers that are
    off the ordinal scale, such as 'not allowed to vote'); the pair rule applies to it. Counts and modes use
    only answers on the ordinal scale (``n_valid``). Weighted counts use W_WEIGHT. ``modal_answers`` lists
    every tied mode (weighted); ``modal_answer`` is the first of them; the unweighted modes are kept too.
    """
    study = resolve(study)
    weights = survey.data["W_WEIGHT"].to_numpy(dtype=float)
    masks = {s.subgroup_id: subgroup_mask(survey, s, study) for s in subgroups}
    rows = []
    for q in tqdm(questions, desc="pairs", disable=not progress):
        codes = survey.data[q.qid]
        answered = codes.notna().to_numpy()
        scaled = q.to_scale(codes).to_numpy(dtype=float)
        on_scale = ~np.isnan(scaled)
        idx = np.where(on_scale, scaled - q.scale_min, 0).astype(int)
        k = q.n_options
        pop_w = np.bincount(idx[on_scale], weights=weights[on_scale], minlength=k)
        pop_modes = modal_values(np.round(pop_w, 9), q.values)
        for s in subgroups:
            m = masks[s.subgroup_id]
            n_answered = int((answered & m).sum())
            if n_answered < min_answers:
                continue
            sel = m & on_scale
            counts = np.bincount(idx[sel], minlength=k)
            wcounts = np.round(np.bincount(idx[sel], weights=weights[sel], minlength=k), 6)
            modes = modal_values(wcounts, q.values)
            modes_u = modal_values(counts, q.values)
            row = {"qid": q.qid, "category": q.category, "stratum": stratum_name(s.stratum),
                   "subgroup_id": s.subgroup_id, "subgroup": s.label, "split": s.split, "n": s.n,
                   "n_answered": n_answered, "n_valid": int(sel.sum()),
                   "counts": json.dumps(counts.tolist()), "weighted_counts": json.dumps(wcounts.tolist()),
                   "modal_answer": modes[0] if modes else None, "modal_answers": json.dumps(modes),
                   "tie": len(modes) > 1, "modal_answers_unweighted": json.dumps(modes_u),
                   "tie_unweighted": len(modes_u) > 1, "population_modal_answers": json.dumps(pop_modes)}
            row.update({d: lab for (d, _), lab in zip(s.attributes, s.labels)})
            rows.append(row)
    cols = ["qid", "category", "stratum", "subgroup_id", "subgroup", *study.dimensions, "split", "n", "n_answered",
            "n_valid", "counts", "weighted_counts", "modal_answer", "modal_answers", "tie",
            "modal_answers_unweighted", "tie_unweighted", "population_modal_answers"]
    pairs = pd.DataFrame(rows).reindex(columns=cols)
    pairs["modal_answer"] = pairs["modal_answer"].astype("Int64")
    return pairs
