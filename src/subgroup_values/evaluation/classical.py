"""The baselines a survey statistician would use for an unseen intersection, fitted on respondent-level answers.

Both take the *input* respondents (all of them under the ``paper`` protocol; the other folds' under
``disjoint``, :mod:`subgroup_values.analysis.folds`) and predict the answer distribution of every target pair:

- ``raking``: iterative proportional fitting (Deming & Stephan 1940) of the joint table
  attribute A x attribute B x answer to its three two-way margins: A-by-answer and B-by-answer (the
  single-attribute distributions) and the cell sizes A x B (the population's composition), from a table of ones
  (the no-three-way-interaction log-linear model). The prediction for cell (a, b) is its slice, normalised.
  Unlike the log-linear rule (:func:`subgroup_values.evaluation.baselines.log_linear`, the naive-Bayes product of the
  marginals, which treats the attributes as independent given the answer), raking knows how the attributes are
  crossed in the population (that "Hindu" respondents are mostly Indian) and does not count that twice.
- ``regression``: a multinomial logistic regression per question on respondents' answers (survey weights as
  frequency weights), with main effects of every dimension and the interactions of the training strata
  (sex x age, ...) as features, ridge-penalised (MRP-style partial pooling: main effects lightly, interactions
  by ``lambda_int``, chosen by cross-validation on training cells only, :func:`choose_penalty`), and
  post-stratified: a cell's prediction is the weighted mean of its input respondents' predicted distributions.
  An OOD intersection has no feature of its own (its interaction is never fitted).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..survey.study import Study

#: Ridge penalty of the main effects (in weighted respondents); interactions get one chosen by CV.
LAMBDA_MAIN = 1.0
LAMBDA_GRID = (4.0, 64.0, 1024.0)


class Respondents:
    """Respondent-level arrays of a survey: the codes of every dimension (``-1`` outside its kept codes), the
    weights and, per question, the option index (``-1`` off the scale or missing)."""

    def __init__(self, survey, questions, study: Study):
        self.study = study
        self.weights = survey.data["W_WEIGHT"].to_numpy(float)
        self.codes = {}
        for name, d in study.dimensions.items():
            cats = list(d.categories)
            col = survey.data[d.column]
            idx = np.full(len(col), -1)
            for i, c in enumerate(cats):
                idx[(col == c).to_numpy(dtype=bool, na_value=False)] = i
            self.codes[name] = idx
        self.cats = {name: list(d.categories) for name, d in study.dimensions.items()}
        self.questions = {q.qid: q for q in questions}
        self.answers = {}
        for q in questions:
            s = q.to_scale(survey.data[q.qid]).to_numpy(dtype=float)
            self.answers[q.qid] = np.where(np.isnan(s), -1, s - q.scale_min).astype(int)

    def __len__(self):
        return len(self.weights)

    def cell(self, subgroup_id: str) -> tuple[list[str], list[int]]:
        """Dimensions and code indices of ``dim=code|dim=code``."""
        dims, idx = [], []
        for part in subgroup_id.split("|"):
            d, c = part.split("=")
            cats = self.cats[d]
            code = int(c)
            if code not in cats:
                raise ValueError(f"{subgroup_id}: code {code} is not a kept code of {d} ({cats}).")
            dims.append(d)
            idx.append(cats.index(code))
        return dims, idx


def _as_predictions(pairs: pd.DataFrame, probs: list, questions) -> pd.DataFrame:
    from ..stats.metrics import score_pairs
    from ..survey.dataset import pair_frame

    frame = pair_frame(pairs, questions)
    frame["probs"] = [list(map(float, p)) for p in probs]
    frame["choice"] = pd.array([lo + int(np.argmax(p)) for lo, p in zip(frame.scale_min, probs)], dtype="Int64")
    frame["option_mass"], frame["reply"], frame["status"], frame["expected"] = 1.0, None, "ok", False
    return score_pairs(frame)


def ipf(margin_a: np.ndarray, margin_b: np.ndarray, sizes: np.ndarray, iterations: int = 200,
        tol: float = 1e-10) -> np.ndarray:
    """The A x B x answer table with margins A x answer, B x answer and A x B, by IPF from ones."""
    t = np.ones((sizes.shape[0], sizes.shape[1], margin_a.shape[1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(iterations):
            prev = t.copy()
            t *= np.nan_to_num(sizes / t.sum(2))[:, :, None]
            t *= np.nan_to_num(margin_a / t.sum(1))[:, None, :]
            t *= np.nan_to_num(margin_b / t.sum(0))[None, :, :]
            if np.abs(t - prev).max() < tol * max(sizes.sum(), 1):
                break
    return t


def raking(resp: Respondents, pairs: pd.DataFrame) -> pd.DataFrame:
    """The raking prediction of every pair of ``pairs`` (two-attribute cells) from ``resp``'s respondents."""
    cache: dict = {}
    probs = []
    for row in pairs.itertuples(index=False):
        dims, idx = resp.cell(row.subgroup_id)
        if len(dims) != 2:
            raise ValueError(f"raking composes two attributes; {row.subgroup_id} has {len(dims)}.")
        key = (row.qid, *dims)
        if key not in cache:
            q = resp.questions[row.qid]
            y = resp.answers[row.qid]
            a, b = resp.codes[dims[0]], resp.codes[dims[1]]
            ok = (y >= 0) & (a >= 0) & (b >= 0)
            na, nb, k = len(resp.cats[dims[0]]), len(resp.cats[dims[1]]), q.n_options
            w = resp.weights[ok]
            ma = np.bincount(a[ok] * k + y[ok], w, na * k).reshape(na, k)
            mb = np.bincount(b[ok] * k + y[ok], w, nb * k).reshape(nb, k)
            sizes = np.bincount(a[ok] * nb + b[ok], w, na * nb).reshape(na, nb)
            cache[key] = ipf(ma, mb, sizes)
        t = cache[key][idx[0], idx[1]]
        if t.sum() <= 0:
            raise ValueError(f"{row.qid} x {row.subgroup_id}: no input respondent in this cell answered; "
                             "raking cannot predict it.")
        probs.append(t / t.sum())
    return _as_predictions(pairs, probs, resp.questions)


# ---- regression ----------------------------------------------------------------------------------------------

def _features(resp: Respondents, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Design matrix of covariate patterns ``keys`` [patterns, dimensions] (main effects, then the training
    strata's interactions) and a mask of the interaction columns."""
    cols, inter = [], []
    names = list(resp.cats)
    for j, name in enumerate(names):
        cols += [(keys[:, j] == i).astype(float) for i in range(len(resp.cats[name]))]
        inter += [False] * len(resp.cats[name])
    for stratum in resp.study.train_strata:
        if len(stratum) != 2:
            continue
        j1, j2 = names.index(stratum[0]), names.index(stratum[1])
        for i in range(len(resp.cats[stratum[0]])):
            for j in range(len(resp.cats[stratum[1]])):
                cols.append(((keys[:, j1] == i) & (keys[:, j2] == j)).astype(float))
                inter.append(True)
    return np.column_stack(cols), np.array(inter)


def _design(resp: Respondents):
    """Every respondent's covariate pattern, and the patterns' design matrix (computed once per respondents)."""
    if not hasattr(resp, "_design"):
        key = np.column_stack([resp.codes[n] for n in resp.cats])
        uniq, inverse = np.unique(key, axis=0, return_inverse=True)
        x, inter = _features(resp, uniq)
        resp._design = (inverse.ravel(), uniq, np.column_stack([x, np.ones(len(x))]), inter)
    return resp._design


def fit_multinomial(x: np.ndarray, y: np.ndarray, penalty: np.ndarray, start=None) -> np.ndarray:
    """Coefficients [features + 1, k] (last row: the unpenalised intercepts) of the ridge-penalised multinomial
    logit maximising ``sum_p sum_y y[p, y] log softmax(x_p B + c)_y - sum_f penalty_f |B_f|^2 / 2``."""
    p, k = x.shape[1], y.shape[1]
    xa = np.column_stack([x, np.ones(len(x))])
    pen = np.append(penalty, 0.0)[:, None]
    tot = y.sum(1, keepdims=True)

    def f(theta):
        b = theta.reshape(p + 1, k)
        z = xa @ b
        z -= z.max(1, keepdims=True)
        lse = np.log(np.exp(z).sum(1, keepdims=True))
        prob = np.exp(z - lse)
        loss = -(y * (z - lse)).sum() + 0.5 * (pen * b ** 2).sum()
        grad = xa.T @ (prob * tot - y) + pen * b
        return loss, grad.ravel()

    if start is None:  # intercepts at the overall log distribution: fewer iterations
        start = np.zeros((p + 1, k))
        share = y.sum(0) + 0.5
        start[-1] = np.log(share / share.sum())
    theta0 = np.ravel(start)
    res = minimize(f, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500, "ftol": 1e-7})
    return res.x.reshape(p + 1, k)


def _softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _fit_question(resp: Respondents, qid: str, rows: np.ndarray, lambda_int: float, start=None) -> np.ndarray:
    """Coefficients for question ``qid`` fitted on respondents ``rows``: [features + intercept, k]."""
    pattern, _, xa, inter = _design(resp)
    y = resp.answers[qid][rows]
    rows = rows[y >= 0]
    y = y[y >= 0]
    k = resp.questions[qid].n_options
    counts = np.bincount(pattern[rows] * k + y, resp.weights[rows], len(xa) * k).reshape(-1, k)
    used = counts.sum(1) > 0
    return fit_multinomial(xa[used, :-1], counts[used], np.where(inter, lambda_int, LAMBDA_MAIN),
                           None if start is None else start.ravel())


def _cell_members(resp: Respondents, cells: list[str], rows: np.ndarray) -> np.ndarray:
    """[cells, patterns]: the weight of each covariate pattern among each cell's respondents in ``rows``."""
    pattern, uniq, _, _ = _design(resp)
    names = list(resp.cats)
    pw = np.bincount(pattern[rows], resp.weights[rows], len(uniq))
    out = np.zeros((len(cells), len(uniq)))
    for c, sid in enumerate(cells):
        dims, idx = resp.cell(sid)
        m = np.ones(len(uniq), bool)
        for d, i in zip(dims, idx):
            m &= uniq[:, names.index(d)] == i
        out[c] = np.where(m, pw, 0.0)
    return out


def _predict_cells(resp: Respondents, coef: np.ndarray, members: np.ndarray) -> list:
    """Post-stratified prediction of each cell: the weighted mean of its patterns' predicted distributions."""
    _, _, xa, _ = _design(resp)
    prob = _softmax(xa @ coef)
    tot = members.sum(1)
    return [None if t <= 0 else (m @ prob) / t for m, t in zip(members, tot)]


def choose_penalty(resp: Respondents, rows: np.ndarray | None = None, n_questions: int = 8, seed: int = 0,
                   grid=LAMBDA_GRID) -> tuple[float, pd.DataFrame]:
    """The interaction penalty with the best mean log score on held-out *training* cells: the input
    respondents split in two at random, fit on one half, score the other half's training-stratum interaction
    cells (30+ respondents), both ways, on ``n_questions`` questions spread over the questionnaire."""
    from ..stats.scores import pair_scores

    rows = np.arange(len(resp)) if rows is None else rows
    rng = np.random.default_rng(seed)
    half = rng.random(len(rows)) < 0.5
    qids = list(resp.questions)
    qids = [qids[i] for i in np.unique(np.linspace(0, len(qids) - 1, min(n_questions, len(qids))).astype(int))]
    cells = []
    for stratum in resp.study.train_strata:
        if len(stratum) == 2:
            d1, d2 = stratum
            cells += [f"{d1}={c1}|{d2}={c2}" for c1 in resp.cats[d1] for c2 in resp.cats[d2]]
    splits = ((rows[half], rows[~half]), (rows[~half], rows[half]))
    members = {id(f): _cell_members(resp, cells, f) for f, _ in splits}
    rows_out, warm = [], {}
    for lam in sorted(grid):
        scores = []
        for s, (fit_rows, held) in enumerate(splits):
            for qid in qids:
                coef = _fit_question(resp, qid, fit_rows, lam, warm.get((s, qid)))
                warm[(s, qid)] = coef
                y = resp.answers[qid]
                k = resp.questions[qid].n_options
                preds = _predict_cells(resp, coef, members[id(fit_rows)])
                for sid, p in zip(cells, preds):
                    dims, idx = resp.cell(sid)
                    m = y[held] >= 0
                    for d, i in zip(dims, idx):
                        m &= resp.codes[d][held] == i
                    if p is None or m.sum() < 30:
                        continue
                    target = np.bincount(y[held][m], resp.weights[held][m], k)
                    scores.append(pair_scores(p, target)["log_score"])
        rows_out.append({"lambda_int": lam, "log_score": float(np.mean(scores)), "cells": len(scores)})
    table = pd.DataFrame(rows_out)
    return float(table.loc[table.log_score.idxmin(), "lambda_int"]), table


def regression(resp: Respondents, pairs: pd.DataFrame, lambda_int: float) -> pd.DataFrame:
    """The post-stratified penalised multinomial regression's prediction of every pair of ``pairs``, fitted on
    all of ``resp``'s respondents (the inputs)."""
    rows = np.arange(len(resp))
    probs: dict = {}
    for qid, g in pairs.groupby("qid", sort=False):
        coef = _fit_question(resp, qid, rows, lambda_int)
        for sid, p in zip(g.subgroup_id, _predict_cells(resp, coef, _cell_members(resp, list(g.subgroup_id), rows))):
            if p is None:
                raise ValueError(f"{qid} x {sid}: no input respondent has these attributes; the regression "
                                 "cannot post-stratify the cell.")
            probs[(qid, sid)] = p
    return _as_predictions(pairs, [probs[(q, s)] for q, s in zip(pairs.qid, pairs.subgroup_id)], resp.questions)
