"""Predictors that need no language model, in the same shape as a model's predictions.

- ``population_mode``: every subgroup answers with the whole sample's mode (distribution: the sample's);
- ``compositional``: an intersection answers with the mode of the mean of its single-attribute subgroups'
  distributions (training-split marginals only); a single-attribute subgroup with its own distribution;
- ``uniform``: chance, scored in expectation (accuracy = share of modal options, expected NMAE);
- ``log_linear``: the naive-Bayes composition of the single-attribute training distributions (a product of
  experts), ``p(y | a, b) proportional to p(y | a) p(y | b) / p(y)`` (k attributes: the product of the k
  marginals over ``p(y)^(k-1)``): exact when the attributes are independent *given the answer*, and blind to
  how they are crossed in the population (an attribute's marginal that is mostly the other attribute's people
  is counted twice). Raking, which knows the crossing, is in :mod:`subgroup_values.evaluation.classical`.
  Smoothing: each marginal and the population get ``LOG_LINEAR_PSEUDOCOUNT`` (0.5, Jeffreys) added to every
  option's weighted count before normalising, so an option no respondent of a cell chose keeps a small weight;
- ``true_mode`` and ``population_mode_point``: the subgroup's own (lowest) modal answer and the population's
  mode as point masses (our references: perfect or population accuracy, with the distribution of a single
  answer). They are *not* Meister et al.'s LB1 / LB2, which are point masses on a *model's* own most / least
  likely option (:func:`subgroup_values.analysis.headroom.point_masses`, rows ``<model>_lb1`` / ``<model>_lb2``).

Each gives a full distribution (``probs``) and an answer (its mode; none for uniform). Every later non-LLM
predictor belongs here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats.metrics import score_pairs
from ..survey.dataset import pair_frame
from ..survey.questions import Question, load_questions

KINDS = ("population_mode", "compositional", "uniform", "log_linear", "true_mode", "population_mode_point")
#: Added to every option's weighted count of a marginal (and of the population) in the log-linear predictor.
LOG_LINEAR_PSEUDOCOUNT = 0.5


def log_linear(marginals: list[np.ndarray], population: np.ndarray,
               pseudocount: float = LOG_LINEAR_PSEUDOCOUNT) -> np.ndarray:
    """Product-of-experts composition of weighted answer counts: prod_i p_i(y) / p(y)^(k-1), renormalised."""
    if not marginals:
        raise ValueError("log_linear needs at least one marginal distribution.")
    pop = np.asarray(population, float) + pseudocount
    logp = -(len(marginals) - 1) * np.log(pop / pop.sum())
    for m in marginals:
        m = np.asarray(m, float) + pseudocount
        if m.shape != pop.shape:
            raise ValueError(f"marginal over {m.shape} options, population over {pop.shape}.")
        logp = logp + np.log(m / m.sum())
    p = np.exp(logp - logp.max())
    return p / p.sum()


def population_distributions(all_pairs: pd.DataFrame) -> dict[str, np.ndarray]:
    """Whole-sample weighted answer distribution per question (the two sex subgroups partition the sample)."""
    sex = all_pairs[all_pairs.stratum == "sex"]
    return {q: np.sum([np.asarray(c, float) for c in g.weighted_counts], axis=0) for q, g in sex.groupby("qid")}


def single_marginals(pairs: pd.DataFrame, all_pairs: pd.DataFrame) -> list[dict[str, tuple[str, list[float]]]]:
    """For each pair of ``pairs``: {dimension: (value, weighted answer counts of that single-attribute training
    cell)} over its known attributes (the input of the ``marginals`` prompt template). A pair whose cell was
    dropped (too few answers) raises: the template cannot be filled honestly."""
    singles = all_pairs[~all_pairs.stratum.str.contains(" x ", regex=False) & (all_pairs.split == "train")]
    cell = {(r.qid, r.subgroup_id): list(r.weighted_counts) for r in singles.itertuples()}
    out = []
    for row in pairs.itertuples(index=False):
        m = {}
        for part in row.subgroup_id.split("|"):
            dim = part.split("=")[0]
            if (row.qid, part) not in cell:
                raise ValueError(f"No single-attribute training cell {part} for {row.qid}: the marginals template "
                                 f"cannot describe pair {row.qid} x {row.subgroup_id}.")
            m[dim] = (getattr(row, dim), cell[(row.qid, part)])
        out.append(m)
    return out


def predictions(pairs: pd.DataFrame, all_pairs: pd.DataFrame, kind: str,
                questions: dict[str, Question] | None = None) -> pd.DataFrame:
    """The ``kind`` baseline's prediction for every pair of ``pairs`` (``all_pairs`` supplies the marginals)."""
    if kind not in KINDS:
        raise ValueError(f"baseline must be one of {KINDS}, got {kind!r}.")
    questions = questions or {q.qid: q for q in load_questions(rule="all")}
    frame = pair_frame(pairs, questions)
    pop = population_distributions(all_pairs)
    singles = all_pairs[~all_pairs.stratum.str.contains(" x ", regex=False)]
    single_dist = {(r.qid, r.subgroup_id): np.asarray(r.weighted_counts, float) for r in singles.itertuples()}
    probs, choice = [], []
    for row in frame.itertuples(index=False):
        lo = row.scale_min
        width = row.scale_max - lo + 1
        if kind == "population_mode":
            d = pop[row.qid]
        elif kind == "uniform":
            d = np.ones(width)
        elif kind == "true_mode":
            d = np.eye(width)[min(int(m) for m in row.modal_answers) - lo]
        elif kind == "population_mode_point":
            d = np.eye(width)[int(np.argmax(pop[row.qid]))]
        else:
            ds = [single_dist.get((row.qid, p)) for p in row.subgroup_id.split("|")]
            if any(x is None for x in ds):
                d = pop[row.qid]  # a marginal was dropped (too few answers): fall back to the population
            elif kind == "log_linear":
                d = log_linear(ds, pop[row.qid])
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
