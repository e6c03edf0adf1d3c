"""Subgroups, the split, modes and ties."""

from __future__ import annotations

import numpy as np
import pytest

from subgroup_values.survey.questions import load_questions
from subgroup_values.survey.study import load_study
from subgroup_values.survey.subgroups import (
    build_pairs,
    find_subgroups,
    make_strata,
    modal_values,
    subgroup_mask,
    subgroups_frame,
)

SGP = load_study("sgp")
DIMENSIONS, OOD_STRATA, TRAIN_STRATA = SGP.dimensions, SGP.ood_strata, SGP.train_strata


def test_split_reproduces_the_paper(survey):
    subs = find_subgroups(survey)
    frame = subgroups_frame(subs)
    assert (frame.split == "train").sum() == 50 and (frame.split == "ood").sum() == 48
    per_stratum = frame.groupby("stratum").size().to_dict()
    assert per_stratum["age x religion"] == 27 and per_stratum["age x ethnicity"] == 13
    assert per_stratum["ethnicity x religion"] == 8 and per_stratum["sex x religion"] == 14
    assert not set(frame[frame.split == "train"].stratum) & set(frame[frame.split == "ood"].stratum)


def test_minimum_size_is_applied(survey):
    for min_size in (30, 100):
        subs = find_subgroups(survey, min_size=min_size)
        assert all(s.n >= min_size for s in subs)
        # the count is the real number of matching respondents
        for s in subs[:: max(1, len(subs) // 10)]:
            assert subgroup_mask(survey, s).sum() == s.n
    small = [s for s in find_subgroups(survey, min_size=1) if s.n < 30]
    assert small, "some intersections are smaller than 30 and must be dropped by the default rule"
    with pytest.raises(ValueError, match="min_size"):
        find_subgroups(survey, min_size=0)


def test_labels_are_honest():
    assert DIMENSIONS["age"].label(1) == "21-24"  # respondents are 21+, not 16-24
    assert make_strata(["sex", "age", "religion"], orders=(2,)) == [("sex", "age"), ("sex", "religion"),
                                                                     ("age", "religion")]
    assert len(make_strata(list(DIMENSIONS), orders=(1, 2, 3))) == 4 + 6 + 4
    assert set(TRAIN_STRATA).isdisjoint(OOD_STRATA)


def test_modal_values_keep_ties():
    values = np.array([1, 2, 3, 4])
    assert modal_values(np.array([1, 5, 5, 0]), values) == [2, 3]
    assert modal_values(np.array([0, 0, 7, 1]), values) == [3]
    assert modal_values(np.array([0.5, 0.5000000000001, 0.1, 0]), values) == [1, 2]
    assert modal_values(np.zeros(4), values) == []


def test_pairs_table_counts_and_modes(survey):
    questions = [q for q in load_questions(rule="all") if q.qid in ("Q1", "Q56", "Q222", "Q164")]
    subs = find_subgroups(survey, [("sex",), ("age", "religion")])
    pairs = build_pairs(survey, questions, subs, min_answers=30, progress=False)
    male_q1 = pairs[(pairs.qid == "Q1") & (pairs.subgroup == "Male")].iloc[0]
    counts = np.array(eval(male_q1.counts))
    mask = subgroup_mask(survey, subs[0])
    expected = survey.data.loc[mask, "Q1"].value_counts().sort_index().to_numpy()
    assert (counts == expected).all() and male_q1.n_valid == counts.sum()
    w = np.array(eval(male_q1.weighted_counts))
    assert w.argmax() + 1 == male_q1.modal_answer
    # Q222: 'not allowed to vote' counts as an answer for the pair rule but not in the distribution
    q222 = pairs[pairs.qid == "Q222"]
    assert (q222.n_answered >= q222.n_valid).all() and (q222.n_answered > q222.n_valid).any()
    assert (pairs.n_answered >= 30).all()
    # ties: modal_answers lists them all and the flag agrees
    assert (pairs.tie == pairs.modal_answers.map(lambda s: len(eval(s)) > 1)).all()
