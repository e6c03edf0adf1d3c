"""Worth in respondents: inverting the own-sample curve, its extrapolation, and the prior plus k answers."""

from __future__ import annotations

import numpy as np
import pytest

from subgroup_values.analysis import worth


def test_invert_and_extrapolate_a_known_curve():
    m = np.arange(1, 41)
    curve = np.sqrt(0.002 + 0.09 / m)
    assert worth.invert(curve, curve[9]) == pytest.approx(10)
    assert worth.invert(curve, (curve[9] + curve[10]) / 2) == pytest.approx(10.5)
    assert worth.invert(curve, curve[0] + 0.1) == 0.0
    assert np.isinf(worth.invert(curve, 0.05))  # closer than 40 respondents get
    assert worth.extrapolate(curve, np.sqrt(0.002 + 0.09 / 100)) == pytest.approx(100, rel=1e-6)
    assert np.isinf(worth.extrapolate(curve, 0.04))  # below the asymptote: no sample size reaches it


def test_prior_plus_k_draws_its_respondents_from_the_target_fold_never_from_the_priors_inputs(wvs_file,
                                                                                             monkeypatch):
    """The k real respondents come from the target fold's own respondents of the cell (whose other respondents are
    the scored target), never from the other folds whose respondents built the prior: counted twice, they would
    build a loss into "prior plus k" (the statistician's finding on the earlier design)."""
    import pandas as pd

    from subgroup_values.analysis import folds
    from subgroup_values.evaluation import classical

    fd = folds.read_folds(wvs_file, k=2, seed=0)
    table = folds.load_fold_pairs()
    table = table[table.qid.isin(sorted(table.qid.unique())[:2])]
    rows = [{"fold": f, "qid": r.qid, "subgroup_id": r.subgroup_id,
             "probs": np.full(len(r.weighted_counts), 1 / len(r.weighted_counts))}
            for f in range(2) for r in folds.targets(table, f).itertuples(index=False)]
    systems = {"uniform": pd.DataFrame(rows)}
    built = []

    class Spy(classical.Respondents):
        def __init__(self, survey, questions, study):
            built.append(set(survey.data.index))
            super().__init__(survey, questions, study)

    monkeypatch.setattr(classical, "Respondents", Spy)
    curve, summary = worth.prior_plus_answers(fd, table, systems, {"uniform": {0: 2.0, 1: 2.0}}, draws=5, n_boot=50)
    index = fd.survey.data.index
    assert len(built) == 2
    for f, drawn_from in enumerate(built):
        assert drawn_from == set(index[fd.folds == f])  # the target fold's respondents
        assert not drawn_from & set(index[fd.folds != f])  # none of them an input of fold f's prior
    s = summary.iloc[0]
    assert s.k == worth.K_MAX and s.pairs > 0 and s.min_target == 20
    # the k alone approach the target as k grows; the prior alone does not depend on k
    alone = curve[curve.k > 0].tv_own_alone.to_numpy()
    assert alone[-1] < alone[0] and curve.tv_prior_alone.nunique() == 1
