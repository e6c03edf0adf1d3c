"""Respondent-disjoint folds: no target respondent in any input, cells split evenly, and the leave-cell-out
bound on the committed paper aggregates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from subgroup_values import baselines, classical, dataset, folds


def test_leave_cell_out_on_the_committed_aggregates():
    """The reviewer's check, measured: removing each OOD cell's own respondents from its marginals and the
    population raises the log-linear rule's mean TV from 0.066 to 0.130 (divergent pairs 0.096 -> 0.171)."""
    all_pairs = dataset.load_pairs()
    ood = all_pairs[all_pairs.split == "ood"]
    paper = baselines.predictions(ood, all_pairs, "log_linear")
    lco = folds.leave_cell_out(ood, all_pairs)
    assert paper.tv.mean() == pytest.approx(0.0662, abs=0.0005)
    assert lco.tv.mean() == pytest.approx(0.1297, abs=0.0005)
    assert lco[lco.divergent].tv.mean() == pytest.approx(0.1711, abs=0.0005)
    assert (lco.tv >= 0).all() and np.isfinite(lco.tv).all()


@pytest.fixture(scope="module")
def fd(wvs_file):
    return folds.read_folds(wvs_file, k=2, seed=0)


def test_folds_are_seeded_and_split_every_cell_evenly(fd, wvs_file):
    assert set(np.unique(fd.folds)) == {0, 1}
    again = folds.read_folds(wvs_file, k=2, seed=0)
    assert (again.folds == fd.folds).all()
    assert (folds.read_folds(wvs_file, k=2, seed=1).folds != fd.folds).any()
    bal = folds.balance(fd)
    assert set(bal.split) == {"train", "ood"}
    # measured: the largest spread is 10 respondents (religion=0, n=472); most cells split within 2
    assert (bal.spread <= 0.05 * bal.n + 4).all(), bal.sort_values("spread").tail()
    assert bal.spread.median() <= 2
    three = folds.assign_folds(fd.survey, fd.study, k=3, seed=0)
    assert np.bincount(three).max() - np.bincount(three).min() <= 1
    with pytest.raises(ValueError, match="k >= 2"):
        folds.assign_folds(fd.survey, fd.study, k=1)


def test_disjoint_inputs_never_contain_a_target_respondent(fd):
    """Structurally (the input and target respondents of a fold are disjoint and cover the sample) and by
    effect: changing every answer of fold 0's respondents changes fold 0's targets and none of its inputs, nor
    raking's or the log-linear rule's predictions for them."""
    fd = replace(fd, questions=[q for q in fd.questions if q.qid in ("Q1", "Q46")])
    for f in range(fd.k):
        t, i = fd.targets_of(f).data.index, fd.inputs_of(f).data.index
        assert not set(t) & set(i)
        assert len(t) + len(i) == fd.survey.n_respondents
    table = folds.fold_pairs(fd)
    assert (table.n >= 30).all() and set(table.role) == {"target", "inputs"}
    data = fd.survey.data.copy()
    q1 = next(q for q in fd.questions if q.qid == "Q1")
    in0 = fd.folds == 0
    data.loc[in0 & data["Q1"].notna().to_numpy(), "Q1"] = q1.values[-1]  # every fold-0 answer: "not at all"
    changed = replace(fd, survey=replace(fd.survey, data=data))
    table2 = folds.fold_pairs(changed)
    cols = ["qid", "subgroup_id", "weighted_counts"]
    same = folds.inputs(table, 0)[cols].astype(str).equals(folds.inputs(table2, 0)[cols].astype(str))
    assert same, "fold 0's inputs moved when only fold 0's answers changed"
    t1, t2 = folds.targets(table, 0), folds.targets(table2, 0)
    assert not t1[t1.qid == "Q1"].weighted_counts.astype(str).equals(t2[t2.qid == "Q1"].weighted_counts.astype(str))
    for tab, f in ((table, fd), (table2, changed)):
        r = classical.raking(classical.Respondents(f.inputs_of(0), f.questions, f.study), folds.targets(table, 0))
        ll = baselines.predictions(folds.targets(table, 0), folds.inputs(tab, 0), "log_linear")
        if tab is table:
            first = (r.probs.map(tuple).tolist(), ll.probs.map(tuple).tolist())
    assert first == (r.probs.map(tuple).tolist(), ll.probs.map(tuple).tolist())
    # fold 1's inputs are fold 0: they do move
    assert not folds.inputs(table, 1)[cols].astype(str).equals(folds.inputs(table2, 1)[cols].astype(str))


def test_fold_aggregates_keep_the_disclosure_rule(tmp_path):
    small = pd.DataFrame([{"fold": 0, "role": "target", "qid": "Q1", "subgroup_id": "sex=1", "n": 12,
                           "counts": [1], "weighted_counts": [1.0], "modal_answers": [1],
                           "population_modal_answers": [1]}])
    with pytest.raises(ValueError, match="fewer than 30"):
        folds.save_fold_pairs(small, tmp_path / "f.csv")
    ok = small.assign(n=40)
    assert folds.save_fold_pairs(ok, tmp_path / "f.csv")
    assert not folds.save_fold_pairs(ok, tmp_path / "f.csv")  # unchanged: not rewritten
    back = folds.load_fold_pairs(tmp_path / "f.csv")
    assert back.weighted_counts.iloc[0] == [1.0]
    with pytest.raises(FileNotFoundError, match="survey file"):
        folds.load_fold_pairs(tmp_path / "none.csv")
