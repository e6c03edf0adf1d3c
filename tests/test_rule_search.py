"""The question-rule search: its running sums agree with the landscape computed the slow way."""

from __future__ import annotations

import pytest

from subgroup_values.analysis import landscape, rule_search
from subgroup_values.survey.dataset import load_pairs
from subgroup_values.survey.questions import load_questions


def test_batteries_are_runs_of_identical_options():
    qs = {q.qid: q for q in load_questions(rule="all")}
    bats = rule_search.batteries(list(qs.values()))
    assert ["Q1", "Q2", "Q3", "Q4", "Q5", "Q6"] in bats
    assert sum(len(b) for b in bats) == len(qs)
    for b in bats:
        assert all(qs[q].options == qs[b[0]].options for q in b)


def test_search_numbers_equal_the_landscape_without_the_dropped_items():
    pairs = load_pairs()
    questions = [q for q in load_questions(rule="all") if q.qid in set(pairs.qid)]
    targets = {"Religious Values": 0.318, "Social Capital & Trust": 0.084}
    table, summary = rule_search.search(pairs, questions, targets, n_drop=4, limit=2000)
    assert summary["unions_enumerated"] == 2000 and summary["unions_total"] >= 2000
    full = landscape.question_landscape(pairs)
    for r in table.itertuples():
        dropped = r.dropped.split()
        kept = full[~full.qid.isin(dropped)].groupby("category").mds.mean()
        for c in targets:
            assert getattr(r, "_" + str(list(table.columns).index(f"mds {c}") + 1)) == pytest.approx(kept[c])
    assert table.distance.iloc[1:].is_monotonic_increasing
