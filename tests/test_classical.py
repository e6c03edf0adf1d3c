"""Raking and the penalised multinomial regression: by-hand checks, simulation, the real survey."""

from __future__ import annotations

import numpy as np
import pytest

from subgroup_values.analysis import folds
from subgroup_values.evaluation import baselines, classical
from subgroup_values.stats.scores import add_scores, normalised_score, pair_scores
from subgroup_values.survey import dataset


def test_ipf_matches_its_margins_and_recovers_a_no_three_way_table():
    rng = np.random.default_rng(0)
    # a table with two-way interactions only (log-linear, no three-way term): IPF from its margins returns it
    la, lb, ly = rng.normal(size=(3, 1, 4)), rng.normal(size=(1, 2, 4)), rng.normal(size=(3, 2, 1))
    truth = np.exp(la + lb + ly)
    truth *= 1000 / truth.sum()
    t = classical.ipf(truth.sum(1), truth.sum(0), truth.sum(2))
    assert np.allclose(t, truth, rtol=1e-6)
    assert np.allclose(t.sum(1), truth.sum(1)) and np.allclose(t.sum(2), truth.sum(2))


def test_regression_recovers_a_known_model():
    rng = np.random.default_rng(1)
    x = np.eye(4)[rng.integers(0, 4, 4000)]
    coef = rng.normal(size=(4, 3))
    z = x @ coef
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.multinomial(1, pi) for pi in p], float)
    b = classical.fit_multinomial(x, y, np.full(4, 1e-3))
    fitted = classical._softmax(np.column_stack([x, np.ones(len(x))]) @ b)
    assert np.abs(fitted - p).max() < 0.05


def test_scores_by_hand_and_proper():
    s = pair_scores([0.5, 0.5], [1, 1])
    assert s["log_score"] == pytest.approx(1.0) and s["kl"] == pytest.approx(0.0, abs=1e-12)
    assert s["brier"] == pytest.approx(0.5)
    q = np.array([0.7, 0.2, 0.1])
    # proper: the truth scores best in expectation (log score, Brier); TV would prefer a sharper guess
    for other in ([0.8, 0.15, 0.05], [0.6, 0.3, 0.1], [1.0, 0.0, 0.0]):
        assert pair_scores(q, q)["log_score"] < pair_scores(other, q)["log_score"]
        assert pair_scores(q, q)["brier"] < pair_scores(other, q)["brier"]
    assert np.isfinite(pair_scores([1.0, 0.0, 0.0], q)["log_score"])  # the documented smoothing
    with pytest.raises(ValueError, match="options"):
        pair_scores([0.5, 0.5], [1, 1, 1])


def test_baselines_on_the_real_survey_both_protocols(wvs_file):
    fd = folds.read_folds(wvs_file)
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46", "Q164"])]
    resp = classical.Respondents(fd.survey, [q for q in fd.questions if q.qid in set(ood.qid)], fd.study)
    rak = classical.raking(resp, ood)
    reg = classical.regression(resp, ood, 64.0)
    ll = baselines.predictions(ood, all_pairs, "log_linear")
    uni = baselines.predictions(ood, all_pairs, "uniform")
    for p in (rak, reg):
        assert len(p) == len(ood) and np.allclose(p.probs.map(sum), 1)
        assert p.tv.mean() < uni.tv.mean() / 3
    # raking knows how the attributes are crossed: it beats the naive-Bayes product on these questions
    assert rak.tv.mean() < ll.tv.mean()
    lam, cv = classical.choose_penalty(resp, n_questions=3)
    assert lam in classical.LAMBDA_GRID and len(cv) == len(classical.LAMBDA_GRID) and (cv.cells > 0).all()
    tvs = add_scores(rak).assign(uniform=uni.tv.to_numpy(), raking=rak.tv.to_numpy())[["qid", "uniform", "raking"]]
    norm = normalised_score(tvs, n_boot=50).set_index("method")
    assert norm.loc["uniform", "normalised"] == 0
    assert norm.loc["raking", "normalised_lo"] <= norm.loc["raking", "normalised"] <= norm.loc["raking", "normalised_hi"]
    assert norm.loc["raking", "normalised"] == pytest.approx(100 * (1 - rak.tv.mean() / uni.tv.mean()), rel=0.05)
