"""How often the fairness intervals cover the truth, measured by simulation in a world built from the data.

The world (:func:`respondent_world`): real OOD subgroups of two sides of a contrast (Chinese and Malay ones) on the
questions all of them have, with the committed base and SFT choices and each pair's committed answer counts. Its
true answer shares are the observed ones, so its true scores are the committed scores, and its true statistics
are those of the committed scores over all its questions (the noise-corrected SD's truth is the plain SD: the
world's scores carry no respondent noise).

A simulated sample (:func:`simulated_sample`) draws questions with replacement and every pair's respondents
(multinomial, the pair's number of valid answers) from its true shares, and scores the committed choices against
the drawn modes. :func:`interval_coverage` computes the notebook's intervals on many such samples, with the
respondent stage and without it (the same BCa interval on question resamples only), and counts how often each
covers the world's truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import disparities, respondents
from ..stats.respondents import PairTruth
from . import contrasts

DELTAS = ("accuracy_mean_delta", "nmae_mean_delta", "accuracy_sd_delta", "accuracy_sd_corrected_delta",
          "accuracy_max_gap_delta", "nmae_cv_delta", "nmae_norm_range_delta", "nmae_sd_corrected_delta")


def respondent_world(both: pd.DataFrame, pairs: pd.DataFrame, per_side: int = 3,
                     sides: tuple[str, str] = ("Chinese", "Malay")) -> tuple[pd.DataFrame, PairTruth, tuple]:
    """The first ``per_side`` OOD subgroups of each ethnicity in ``sides`` on the questions all of them have."""
    sg = both.drop_duplicates("subgroup_id").set_index("subgroup_id")
    chosen = tuple(list(sg.index[sg.ethnicity == s][:per_side]) for s in sides)
    if min(len(c) for c in chosen) < per_side:
        raise ValueError(f"The world needs {per_side} subgroups of each of {sides}; found "
                         f"{[len(c) for c in chosen]} in the paired predictions.")
    w = both[both.subgroup_id.isin(chosen[0] + chosen[1])]
    full = w.groupby("qid").size()
    w = w[w.qid.isin(full[full == 2 * per_side].index)].reset_index(drop=True)
    return w, respondents.pair_truth(w, pairs), chosen


def simulated_sample(world: pd.DataFrame, truth: PairTruth, rng: np.random.Generator,
                     n_questions: int) -> tuple[pd.DataFrame, PairTruth]:
    """``n_questions`` questions drawn with replacement from the world (each copy a question of its own), every
    pair's respondents drawn from its true shares; the committed choices scored against the drawn modes."""
    qids = world.qid.unique()
    pick = rng.integers(0, len(qids), n_questions)
    col = world.qid.to_numpy()
    by_q = {q: np.flatnonzero(col == q) for q in qids}
    src = np.concatenate([by_q[qids[p]] for p in pick])
    copy = np.concatenate([np.full(len(by_q[qids[p]]), j) for j, p in enumerate(pick)])
    total = truth.counts[src].sum(1)
    drawn = rng.multinomial(np.rint(total).astype(np.int64), truth.counts[src] / total[:, None]).astype(float)
    sim = PairTruth(drawn, np.where(drawn > 0, truth.weights[src], 0.0), truth.values[src], truth.span[src])
    frame = world.iloc[src].reset_index(drop=True)
    frame["qid"] = [f"{q}#{j}" for q, j in zip(frame.qid, copy)]
    choices = np.stack([frame.choice_base.to_numpy(float), frame.choice_sft.to_numpy(float)])
    modes = respondents._modes(sim.counts * sim.weights)
    acc, nm = respondents.score(sim, choices, modes)
    frame = frame.assign(correct_base=acc[0], correct_sft=acc[1], nmae_base=nm[0], nmae_sft=nm[1],
                         modal_answers=[list(sim.values[i][modes[i]].astype(int)) for i in range(len(frame))])
    return frame, sim


def interval_coverage(world: pd.DataFrame, truth: PairTruth, sides: tuple, n_sim: int = 100,
                      n_questions: int = 50, n_boot: int = 200, seed: int = 0, method: str = "bca",
                      deltas: tuple[str, ...] = DELTAS) -> pd.DataFrame:
    """Coverage of the world's truth by each delta statistic's interval and by the base model's contrast between
    the two sides, with the respondent stage ("two-stage") and without it ("questions only")."""
    whole = disparities.build_panel(world, truth, n_draws=2, seed=seed)
    stats = disparities.delta_stats(("accuracy", "nmae"))
    nq = len(whole.qids)
    theta = stats(*disparities._means(np.ones((1, nq)), whole.values, whole.present, np.zeros_like(whole.noise)))
    a = np.array([whole.sids.index(i) for i in sides[0]])
    b = np.array([whole.sids.index(i) for i in sides[1]])
    d, _ = contrasts._differences(whole.values[:, :, 0], whole.present, a, b)
    truths = {n: float(theta[n][0]) for n in deltas} | {"accuracy_contrast_base": float(d.mean())}
    rng = np.random.default_rng(seed)
    hits = {(n, k): 0 for n in truths for k in ("two-stage", "questions only")}
    for i in range(n_sim):
        frame, sim = simulated_sample(world, truth, rng, n_questions)
        panel = disparities.build_panel(frame, sim, n_draws=n_boot, seed=seed + i)
        flat = disparities.Panel(panel.values, panel.present, panel.noise,
                                 np.broadcast_to(panel.values[None], panel.draws.shape).astype(np.float32),
                                 panel.columns, panel.qids, panel.sids)
        for kind, p in (("two-stage", panel), ("questions only", flat)):
            r = disparities.analyse(p, stats, [(0, 1), (2, 3)], n_boot=n_boot, n_perm=1, seed=seed + i,
                                    method=method).set_index("statistic")
            for n in deltas:
                hits[(n, kind)] += bool(r.loc[n, "lo"] <= truths[n] <= r.loc[n, "hi"])
            c = contrasts.contrast(p, "accuracy_base", a, b, n_boot=n_boot, n_perm=1, seed=seed + i, method=method)
            hits[("accuracy_contrast_base", kind)] += bool(c["lo"] <= truths["accuracy_contrast_base"] <= c["hi"])
    return pd.DataFrame([{"statistic": n, "interval": kind, "coverage": hits[(n, kind)] / n_sim, "nominal": 0.95,
                          "truth": truths[n], "simulations": n_sim, "questions": n_questions,
                          "subgroups": 2 * len(sides[0]), "bootstrap_draws": n_boot}
                         for n in truths for kind in ("two-stage", "questions only")])
