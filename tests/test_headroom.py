"""The headroom table: every method between the noise floor and uniform, on the same pairs."""

from __future__ import annotations

import pytest

from subgroup_values import baselines, dataset, headroom, noise_floor


@pytest.fixture(scope="module")
def table():
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46", "Q164", "Q241"])]
    systems = {k: baselines.predictions(ood, all_pairs, k) for k in ("uniform", "compositional", "log_linear")}
    return headroom.headroom_table(systems, noise_floor.load(), n_boot=100), systems


def test_rows_columns_and_order(table):
    t, systems = table
    assert set(t.method) == {"noise_floor", *systems}
    for col in ("method", "pairs", "accuracy", "tv", "w1", "jsd", "tv_lo", "tv_hi", "w1_lo", "jsd_hi"):
        assert col in t.columns
    assert set(t.pairs.astype(str)) == {"all", "consensus", "divergent"}
    assert t[t.method == "noise_floor"].accuracy.isna().all()
    for _, g in t.groupby("pairs", observed=True):
        assert g.tv.is_monotonic_increasing
        assert (g.tv_lo <= g.tv).all() and (g.tv <= g.tv_hi).all()
    a = t[t.pairs == "all"].set_index("method")
    assert a.loc["noise_floor", "tv"] < a.loc["compositional", "tv"] < a.loc["uniform", "tv"]


def test_finding_is_written_from_the_table(table):
    t, _ = table
    text = headroom.finding(t, models=[])
    a = t[t.pairs == "all"].set_index("method")
    assert f"the noise floor is TV {a.loc['noise_floor', 'tv']:.3f}" in text
    assert f"uniform {a.loc['uniform', 'tv']:.3f}" in text and "log_linear" in text


def test_methods_must_share_their_pairs():
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46"])]
    systems = {"uniform": baselines.predictions(ood, all_pairs, "uniform"),
               "log_linear": baselines.predictions(ood.iloc[:-1], all_pairs, "log_linear")}
    with pytest.raises(ValueError, match="same pairs"):
        headroom.headroom_table(systems, noise_floor.load(), n_boot=20)
