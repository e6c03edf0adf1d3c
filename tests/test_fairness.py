"""Disparity statistics on hand-made tables, seeded bootstrap, paired deltas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subgroup_values import fairness


def preds_table(acc: dict[str, list[float]], nmae_of=lambda c: 1 - c) -> pd.DataFrame:
    rows = []
    for sid, values in acc.items():
        for k, c in enumerate(values):
            rows.append({"qid": f"Q{k}", "subgroup_id": sid, "subgroup": sid, "stratum": "age x religion",
                         "age": sid.split("/")[0], "religion": sid.split("/")[1], "sex": None, "ethnicity": None,
                         "correct": c, "nmae": nmae_of(c), "wasserstein": 0.1, "divergent": k % 2 == 1,
                         "status": "refusal" if c < 0 else "ok"})
    return pd.DataFrame(rows)


def test_disparity_known_answers():
    d = fairness.disparity(pd.Series([0.2, 0.4, 0.6, 0.8]))
    assert d["norm_range"] == pytest.approx(0.75)
    assert d["cv"] == pytest.approx(np.std([0.2, 0.4, 0.6, 0.8]) / 0.5)
    assert d["worst"] == 0.2 and d["max_gap"] == pytest.approx(0.6)
    assert fairness.disparity(pd.Series([0.1, 0.3]), lower_is_better=True)["worst"] == 0.3
    assert fairness.disparity(pd.Series([0.5, 0.5]))["norm_range"] == 0.0


def test_per_subgroup_and_attribute():
    t = preds_table({"21-24/Muslim": [1, 1, 1, 0], "65+/Muslim": [0, 0, 1, 0], "65+/Hindu": [1, 0, 0, 0]})
    sg = fairness.per_subgroup(t).set_index("subgroup_id")
    assert sg.loc["21-24/Muslim", "accuracy"] == 0.75 and sg.loc["65+/Hindu", "accuracy"] == 0.25
    attr = fairness.per_attribute(t, "accuracy", n_boot=50, seed=0).set_index("value")
    # "65+" is the mean over its two subgroups (0.25 and 0.25); "Muslim" over 0.75 and 0.25
    assert attr.loc["65+", "estimate"] == pytest.approx(0.25)
    assert attr.loc["Muslim", "estimate"] == pytest.approx(0.5)
    assert attr.loc["Muslim", "subgroups"] == 2


def test_bootstrap_is_seeded_and_intervals_cover():
    rng = np.random.default_rng(0)
    t = preds_table({f"{a}/{r}": list(rng.integers(0, 2, 30).astype(float))
                     for a in ("21-24", "65+") for r in ("Muslim", "Hindu")})
    one = fairness.disparity_table(t, n_boot=200, seed=5)
    two = fairness.disparity_table(t, n_boot=200, seed=5)
    assert one.equals(two)
    assert (one.lo <= one.estimate + 1e-12).all() and (one.estimate <= one.hi + 1e-12).all()
    assert not one.equals(fairness.disparity_table(t, n_boot=200, seed=6))


def test_deltas_are_paired():
    rng = np.random.default_rng(1)
    acc = {f"{a}/{r}": list(rng.integers(0, 2, 40).astype(float)) for a in ("21-24", "65+") for r in ("Muslim", "Hindu")}
    base = preds_table(acc)
    sft = base.copy()
    sft["correct"] = np.minimum(1.0, base["correct"] + (base.qid.str[1:].astype(int) % 4 == 0))  # SFT fixes 1 in 4
    sft["nmae"] = 1 - sft["correct"]
    both = fairness.paired(base, sft)
    d = fairness.paired_deltas(both, n_boot=300, seed=0).set_index("statistic")
    delta = d.loc["accuracy_mean_delta"]
    assert delta.estimate == pytest.approx(sft.correct.mean() - base.correct.mean())
    # paired resampling: every draw has SFT >= base, so the whole interval is >= 0
    assert delta.lo >= 0
    # identical models give exactly zero deltas in every draw
    same = fairness.paired_deltas(fairness.paired(base, base), n_boot=50, seed=0).set_index("statistic")
    assert same.loc["nmae_norm_range_delta", ["estimate", "lo", "hi"]].abs().max() == 0
    with pytest.raises(ValueError, match="different pairs"):
        fairness.paired(base, sft.iloc[:-3])


def test_refusals_on_sensitive_items():
    t = pd.DataFrame({"qid": ["Q182", "Q182", "Q1", "Q1"], "status": ["refusal", "ok", "ok", "unparseable"]})
    r = fairness.refusals(t).set_index("items")
    assert r.loc["sensitive items", "refusal_rate"] == 0.5 and r.loc["other items", "refusal_rate"] == 0.0
    assert r.loc["all items", "unparseable_rate"] == 0.25
