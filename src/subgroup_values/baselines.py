"""Predictors that need no language model, in the same shape as a model's predictions.

- ``population_mode``: every subgroup answers with the whole sample's mode (distribution: the sample's);
- ``compositional``: an intersection answers with the mode of the mean of its single-attribute subgroups'
  distributions (training-split marginals only); a single-attribute subgroup with its own distribution;
- ``uniform``: chance, scored in expectation (accuracy = share of modal options, expected NMAE).

Every later non-LLM predictor belongs here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .dataset import pair_frame
from .metrics import score_pairs
from .questions import Question, load_questions
from .subgroups import DIMENSIONS

KINDS = ("population_mode", "compositional", "uniform")


def population_distributions(all_pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Whole-sample weighted answer distribution per question (the two sex subgroups partition the sample)."""
    sex = all_pairs[all_pairs.stratum == "sex"]
    return {q: np.sum([np.asarray(c, float) for c in g.weighted_counts], axis=0) for q, g in sex.groupby("qid")}


def predictions(pairs: pd.DataFrame, all_pairs: pd.DataFrame, kind: str,
                questions: dict[str, Question] | None = None) -> pd.DataFrame:
    """The ``kind`` baseline's prediction for every pair of ``pairs`` (``all_pairs`` supplies the marginals)."""
    if kind not in KINDS:
        raise ValueError(f"baseline must be one of {KINDS}, got {kind!r}.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    frame = pair_frame(pairs, questions)
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
            ds = [single_dist.get((row.qid, p)) for p in row.subgroup_id.split("|")]
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
    return score_pairs(frame)
