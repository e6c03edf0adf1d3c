"""Modal Diversity Score and the per-question landscape on worked examples and the real table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from subgroup_values.analysis.landscape import by_category, modal_diversity, question_landscape
from subgroup_values.survey.dataset import load_pairs


def test_mds_worked_examples():
    assert modal_diversity([[1], [1], [1]], 4) == 0.0  # everyone agrees
    assert modal_diversity([[1], [2]], 4) == pytest.approx(1.0)  # 2 subgroups, 2 modes: as divided as possible
    assert modal_diversity([[1], [2], [3], [4]], 4) == pytest.approx(1.0)
    # 4 subgroups on a binary item: modes (1,1,1,2) -> H = 0.811 bits, max log2(min(4,2)) = 1
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert modal_diversity([[1], [1], [1], [2]], 2) == pytest.approx(h)
    # 3 subgroups on a 10-point item, modes (1,1,5): H = 0.918, max log2(3)
    h3 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert modal_diversity([[1], [1], [5]], 10) == pytest.approx(h3 / math.log2(3))
    # a tied subgroup splits its vote: (1), (1|2) -> votes 1.5, 0.5
    assert modal_diversity([[1], [1, 2]], 4) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert modal_diversity([[3]], 4) == 0.0


def _pairs(dists, modes):
    return pd.DataFrame({"qid": "Q1", "category": "C", "stratum": "s", "weighted_counts": dists,
                         "counts": dists, "modal_answers": modes, "modal_answers_unweighted": modes})


def test_question_landscape_small_table():
    table = _pairs([[1, 0, 0], [0, 0, 1], [1, 0, 0]], [[1], [3], [1]])
    row = question_landscape(table).iloc[0]
    assert row.subgroups == 3 and row.distinct_modes == 2
    assert row.wasserstein == pytest.approx((1 + 0 + 1) / 3)
    with pytest.raises(ValueError, match="weighting"):
        question_landscape(table, "both")


def test_real_landscape_religion_most_divided():
    ls = question_landscape(load_pairs())
    assert len(ls) == 214 * 10 and ls.mds.between(0, 1).all() and ls.wasserstein.between(0, 1).all()
    cats = by_category(ls, n_boot=50, seed=1)
    assert cats.category.iloc[0] == "Religious Values"
    assert (cats.mds_lo <= cats.mds).all() and (cats.mds <= cats.mds_hi).all()
    assert by_category(ls, n_boot=50, seed=1).equals(cats)  # seeded
