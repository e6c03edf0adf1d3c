"""The question bank against the survey's own codes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from subgroup_values.survey.questions import load_questions


def test_bank_sizes_and_rules():
    all_items = load_questions(rule="all")
    paper = load_questions(rule="paper")
    assert len(all_items) == 233 and len(paper) == 214
    dropped = sorted({q.qid for q in all_items} - {q.qid for q in paper}, key=lambda s: int(s[1:]))
    assert dropped == [f"Q{i}" for i in [*range(94, 105), *range(122, 130)]]
    assert all(q.scale_min == 0 for q in all_items if q.qid in dropped)


def test_every_item_matches_the_survey_codes(survey):
    """Every answer code Singapore's respondents gave is on the item's scale, recoded, or declared off-scale."""
    for q in load_questions(rule="all"):
        observed = set(survey.data[q.qid].dropna().astype(int).unique())
        assert observed, f"{q.qid}: nobody answered; was it asked?"
        values = set(q.values.tolist())
        assert values == set(range(q.scale_min, q.scale_max + 1)), f"{q.qid}: options not contiguous"
        if q.recode:
            assert observed <= set(q.recode), f"{q.qid}: codes {observed - set(q.recode)} have no recode"
            assert {v for v in q.recode.values() if v is not None} == values
        else:
            assert observed <= values, f"{q.qid}: codes {observed - values} are not options"
        # the scale's ends are used, so the range used for NMAE is the real one
        scaled = q.to_scale(survey.data[q.qid]).dropna()
        assert scaled.min() == q.scale_min or q.qid in {"Q51", "Q53", "Q55"}, q.qid
        assert len(q.options[0][1]) > 0 and q.text.strip()


def test_recodes_make_scales_monotonic(survey):
    qs = {q.qid: q for q in load_questions(rule="all")}
    q56 = qs["Q56"]
    assert [lab for _, lab in q56.options] == ["Better off", "About the same", "Worse off"]
    assert q56.to_scale(pd.Series([1, 2, 3, np.nan])).tolist()[:3] == [1, 3, 2]
    q119 = qs["Q119"]
    assert [lab for _, lab in q119.options][2] == "Hard to say"
    assert q119.to_scale(pd.Series([0.0, 4.0])).tolist() == [3, 5]
    # off-scale answers become missing
    assert qs["Q222"].to_scale(pd.Series([4.0, 1.0])).isna().tolist() == [True, False]
    assert qs["Q254"].to_scale(pd.Series([5.0])).isna().all()
    # the spontaneous 'against democracy' joins the low end, and the label of 1 is the scale's own
    assert qs["Q241"].to_scale(pd.Series([0.0])).tolist() == [1]
    assert qs["Q241"].options[0][1] == "Not an essential characteristic of democracy"
