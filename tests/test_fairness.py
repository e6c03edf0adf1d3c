"""Disparity statistics on hand-made tables, seeded bootstrap, paired deltas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subgroup_values.analysis import fairness


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
    sg = fairness.per_subgroup(t, study="sgp").set_index("subgroup_id")
    assert sg.loc["21-24/Muslim", "accuracy"] == 0.75 and sg.loc["65+/Hindu", "accuracy"] == 0.25
    attr = fairness.per_attribute(t, "accuracy", n_boot=50, seed=0, study="sgp").set_index("value")
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
    lo, hi = r.loc["sensitive items", ["refusal_lo", "refusal_hi"]]
    assert 0 < lo < 0.5 < hi < 1
    # a run of the sensitive items only: the other items are a row that says there are none, not a rate of NaN
    only = fairness.refusals(t[t.qid == "Q182"]).set_index("items")
    assert only.loc["other items", "pairs"] == 0 and "no pairs" in only.loc["other items", "note"]
    assert only.loc["sensitive items", "refusal_rate"] == 0.5


# ---- relative and absolute dispersion, permutation tests, Holm, respondent redraws ----------------------------

from subgroup_values.core.paths import REPO_ROOT  # noqa: E402
from subgroup_values.stats import disparities, respondents  # noqa: E402
from subgroup_values.survey.dataset import load_pairs  # noqa: E402


def test_dispersion_known_answers_and_noise_correction():
    m = np.array([0.2, 0.4, 0.6, 0.8])
    d = disparities.dispersion(m[None], np.full((1, 4), 0.01))
    sd = np.std(m)
    assert d["sd"][0] == pytest.approx(sd) and d["max_gap"][0] == pytest.approx(0.6)
    assert d["norm_range"][0] == pytest.approx(0.75) and d["cv"][0] == pytest.approx(sd / 0.5)
    # E[SD(m)^2] = SD(mu)^2 + (1 - 1/S) mean(v): the correction removes (1 - 1/4) * 0.01
    assert d["sd_corrected"][0] == pytest.approx(np.sqrt(sd ** 2 - 0.75 * 0.01))
    # noise larger than the spread: the corrected SD is 0, not NaN
    assert disparities.dispersion(m[None], np.ones((1, 4)))["sd_corrected"][0] == 0.0


def test_holm_known_answers():
    assert disparities.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert disparities.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    # a member with no test (NaN) counts in the family as p = 1: it never shrinks the family the rule names
    assert disparities.holm([0.01, np.nan, 0.03]) == pytest.approx([0.03, np.nan, 0.06], nan_ok=True)


def test_holm_levels_agree_with_holm():
    """The interval level of each member excludes its p-value's null exactly when Holm rejects it, including
    after the step-down stops (a p under alpha / (m - r + 1) that Holm does not reject)."""
    from subgroup_values.stats import bootstrap

    rng = np.random.default_rng(0)
    for _ in range(300):
        p = rng.choice([rng.uniform(0, 0.03, 6), rng.uniform(0, 1, 6), np.r_[0.03, 0.04, rng.uniform(0, 1, 4)]])
        levels, adj = bootstrap.holm_levels(p, 0.05), bootstrap.holm(p)
        assert ((p < 1 - levels) == (adj < 0.05)).all()
    # m = 2, p = (0.03, 0.04): Holm rejects neither; both are tested at 0.025, so 0.04 < 0.05 is not a rejection
    assert bootstrap.holm_levels([0.03, 0.04]) == pytest.approx([0.975, 0.975])


def test_bootstrap_p_value_inverts_the_interval():
    from subgroup_values.stats import bootstrap

    rng = np.random.default_rng(1)
    for shift in (0.02, 0.08, 0.2):
        d = rng.normal(shift, 0.05, 2000)
        jack = rng.normal(shift, 0.001, 60)
        p = bootstrap.p_value(shift, d, jack)
        lo, hi = bootstrap.interval(shift, d, jack, 1 - p * 1.01)
        assert lo > 0 or hi < 0
        lo, hi = bootstrap.interval(shift, d, jack, 1 - p * 0.99)
        assert lo <= 0 <= hi or p == pytest.approx(1 / (d.size + 1))
    assert np.isnan(bootstrap.p_value(0.1, np.full(100, 0.1)))  # degenerate away from the null: no test
    # a statistic finite in 3 of 4,000 resamples is no test, and is degenerate
    few = np.full(4000, np.nan)
    few[:3] = [0.1, 0.2, 0.3]
    assert np.isnan(bootstrap.p_value(0.2, few)) and bootstrap.is_degenerate(few)
    # every draw on one side: p at the draws' resolution 1 / (B + 1), never below
    assert bootstrap.p_value(0.5, rng.normal(0.5, 0.01, 999)) == pytest.approx(1 / 1000)
    assert bootstrap.p_value(0.0, np.zeros(100)) == 1.0  # degenerate at the null: cannot reject


def test_the_interval_shown_decides():
    """Every row of the disparity table: its interval (at the level Holm's step-down tests it at) excludes 0
    exactly when its Holm-adjusted bootstrap p is under alpha; a change is claimed only when the interval and the
    permutation test both reject, and a disagreement is named in the claim's sentence."""
    for shift in (0.1, 0.03, 0.0):
        t = disparities.disparity_changes(None, None, metrics=("nmae",), n_boot=200, n_perm=2000,
                                          panel=shifted_panel(shift, seed=4))
        live = t[~t.degenerate]
        excludes = (live.delta_lo > 0) | (live.delta_hi < 0)
        assert (excludes == (live.p_interval_holm < 0.05)).all()
        fam = live[live.family == "dispersion"]
        m = int((t.family == "dispersion").sum())
        # Holm's levels run from 1 - alpha/m (the smallest p) to at most 1 - alpha; a level statistic is at 95%
        assert fam.delta_level.between(0.95 - 1e-12, 1 - 0.05 / m + 1e-12).all()
        assert fam.empty or fam.delta_level.max() == pytest.approx(1 - 0.05 / m)
        assert (live[live.family != "dispersion"].delta_level == 0.95).all()
        changed = live.verdict.isin(["widen", "narrow", "rises", "falls"])
        assert (changed == (excludes & (live.p_holm < 0.05))).all()
        for c, r in zip(disparities.disparity_claims(t)[:len(t)], t.itertuples()):
            assert (bool(r.disagreement) and r.disagreement in c.sentence) or not r.disagreement


def shifted_panel(shift: float, n_q=60, n_s=12, n_draws=200, seed=0) -> disparities.Panel:
    """NMAE panel: SFT = base - ``shift`` on every pair (absolute gaps unchanged by construction)."""
    rng = np.random.default_rng(seed)
    mu = np.linspace(0.25, 0.45, n_s)
    base = np.clip(mu + rng.normal(0, 0.08, (n_q, 1)) + rng.normal(0, 0.1, (n_q, n_s)), 0.15, 1)
    values = np.stack([base, base - shift], axis=-1)
    noise = np.full_like(values, 0.002)
    draws = (values[None] + rng.normal(0, 0.045, (n_draws, n_q, n_s, 1))).astype(np.float32)
    return disparities.Panel(values, np.ones((n_q, n_s)), noise, draws, ["nmae_base", "nmae_sft"],
                             list(range(n_q)), list(range(n_s)))


def test_a_uniform_fall_of_nmae_widens_relative_gaps_only():
    t = disparities.disparity_changes(None, None, metrics=("nmae",), n_boot=200, n_perm=2000,
                                      panel=shifted_panel(0.1)).set_index("statistic")
    assert t.loc["nmae mean", "verdict"] == "falls"
    assert t.loc["nmae norm range", "verdict"] == "widen" and t.loc["nmae cv", "verdict"] == "widen"
    for k in ("max gap", "sd", "sd corrected"):
        assert t.loc[f"nmae {k}", "delta"] == pytest.approx(0, abs=1e-12)
        assert t.loc[f"nmae {k}", "p_permutation"] == 1.0 and t.loc[f"nmae {k}", "verdict"] == "no clear change"
    assert (t.loc[t.family == "dispersion", "p_holm"] >= t.loc[t.family == "dispersion", "p_permutation"]).all()
    verdict, sentence = disparities.kind_sentence(t.reset_index(), "nmae")
    assert verdict == "relative only"
    assert "as mean NMAE falls" in sentence and "no clear change in absolute NMAE gaps" in sentence
    found = disparities.disparity_claims(t.reset_index())
    assert {c.topic for c in found} == {"fairness"} and len({c.id for c in found}) == len(found)
    assert all(c.sentence for c in found)


def test_identical_models_change_nothing():
    t = disparities.disparity_changes(None, None, metrics=("nmae",), n_boot=100, n_perm=500,
                                      panel=shifted_panel(0.0))
    assert (t.delta.abs() < 1e-12).all() and (t.p_permutation == 1.0).all()
    # every resampled delta is 0 too: the verdict says the test cannot inform, not "no clear change"
    assert set(t.verdict) == {"uninformative"}
    found = disparities.disparity_claims(t)
    assert all("uninformative" in c.sentence for c in found if c.id.endswith("_delta"))


def test_respondent_redraws_on_the_committed_pairs():
    pairs = load_pairs()
    preds = pd.read_parquet(REPO_ROOT / "results" / "default" / "base_ood" / "predictions.parquet")
    preds = preds[preds.qid.isin(sorted(preds.qid.unique())[:6])].reset_index(drop=True)
    truth = respondents.pair_truth(preds, pairs)
    modal = np.array([m[0] for m in preds.modal_answers], dtype=float)
    # a model that always names the (first) observed mode: accuracy 1 on the data, less on redrawn respondents,
    # and least where the mode is least clear
    choices = np.stack([modal, preds.choice.to_numpy(float)])
    acc = np.concatenate([a for a, _ in respondents.resampled_scores(truth, choices, 200, seed=1)])  # (200, 2, P)
    shares = np.sort(truth.counts / truth.n[:, None], axis=1)
    margin = shares[:, -1] - shares[:, -2]
    stable = acc[:, 0].mean(0)
    assert (stable <= 1).all() and stable[margin > 0.3].min() > 0.9 and stable[margin < 0.05].mean() < 0.8
    # the redraws rescore the committed choices: their scores on the observed counts are the committed ones
    again, _ = respondents.score(truth, choices[1:], respondents._modes(truth.counts * truth.weights))
    assert again[0] == pytest.approx(preds.correct.to_numpy())
    bad = preds.copy()
    bad.loc[0, "modal_answers"] = [int(bad.scale_max.iat[0]) + 1]
    with pytest.raises(ValueError, match="not its modal answer"):
        respondents.pair_truth(bad, pairs)
    with pytest.raises(ValueError, match="not in the pairs table"):
        respondents.pair_truth(preds.assign(subgroup_id=preds.subgroup_id + "-elsewhere"), pairs)


def contrast_world(gap: float, n_q=80, seed=0):
    """A panel of 5 subgroups: 3 Chinese (one of them Roman Catholic), 2 Malay; Chinese accuracy higher by ``gap``."""
    from subgroup_values.analysis import contrasts  # noqa: F401

    rng = np.random.default_rng(seed)
    subs = pd.DataFrame({"subgroup_id": [f"s{i}" for i in range(5)],
                         "subgroup": ["Chinese, Buddhist", "Chinese, Roman Catholic", "25-34, Chinese", "Malay, Muslim",
                                      "25-34, Malay"],
                         "stratum": ["ethnicity x religion", "ethnicity x religion", "age x ethnicity",
                                     "ethnicity x religion", "age x ethnicity"],
                         "ethnicity": ["Chinese", "Chinese", "Chinese", "Malay", "Malay"],
                         "religion": ["Buddhist", "Roman Catholic", None, "Muslim", None],
                         "age": [None, None, "25-34", None, "25-34"], "sex": None})
    p = 0.5 + np.where(subs.ethnicity == "Chinese", gap / 2, -gap / 2)
    values = (rng.random((n_q, 5)) < p).astype(float)[:, :, None].repeat(2, axis=-1)  # base = SFT here
    draws = np.where(rng.random((100, n_q, 5, 1)) < 0.05, 1 - values[None], values[None]).astype(np.float32)
    panel = disparities.Panel(values, np.ones((n_q, 5)), np.zeros_like(values), draws,
                              ["accuracy_base", "accuracy_sft"], list(range(n_q)), list(subs.subgroup_id))
    return panel, subs


@pytest.mark.parametrize("gap, expected", [(0.35, "the paper's direction"), (-0.35, "against the paper's direction")])
def test_paper_contrasts_paired_over_questions(gap, expected):
    from subgroup_values.analysis import contrasts

    panel, subs = contrast_world(gap)
    t = contrasts.paper_bias({"ood": (panel, subs)}, metrics=("accuracy",), models=("base",), n_boot=100,
                             n_perm=2000)
    assert set(t.contrast) == {c[0] for c in contrasts.CONTRASTS}  # every contrast is a row, testable or not
    assert set(t.matching) == {"all subgroups", "matched partners"}
    m = t[t.matching == "matched partners"].set_index("contrast")
    # the only partners: "25-34, Chinese" and "25-34, Malay" (same stratum, same age)
    assert m.loc["Chinese vs Malay", "partner_pairs"] == 1 and "25-34, Chinese vs 25-34, Malay" in m.loc[
        "Chinese vs Malay", "note"]
    assert m.loc["Chinese vs Malay", "verdict"] == expected
    assert m.loc["Protestant vs Muslim", "verdict"] == "not testable"
    r = t[t.matching == "all subgroups"].set_index("contrast")
    assert r.loc["Chinese vs Malay", "verdict"] == expected
    assert np.sign(r.loc["Chinese vs Malay", "difference"]) == np.sign(gap)
    assert r.loc["Chinese vs Malay", "p_holm"] >= r.loc["Chinese vs Malay", "p_permutation"]
    # Roman Catholic is one subgroup here: flagged; no subgroup has an age of 65+ or a sex: a row that says why
    assert r.loc["Roman Catholic vs Muslim", "confounded"] and "one subgroup" in r.loc["Roman Catholic vs Muslim", "note"]
    for c in ("male vs female", "young vs elderly"):
        assert r.loc[c, "verdict"] == "not testable" and "no ood subgroup has" in r.loc[c, "note"]
    found = contrasts.bias_claims(t)
    assert len(found) == len(t) and any(c.verdict == "not testable" for c in found)


def test_paper_contrast_without_a_difference():
    from subgroup_values.analysis import contrasts

    panel, subs = contrast_world(0.0, seed=3)
    t = contrasts.paper_bias({"ood": (panel, subs)}, metrics=("accuracy",), models=("base",), n_boot=100, n_perm=2000)
    assert t[t.matching == "all subgroups"].set_index("contrast").loc["Chinese vs Malay", "verdict"] == \
        "no clear difference"


def test_vectorised_permutations_are_explicit_swaps():
    """The permutation p of :func:`disparities.analyse` equals the one from swapping base and SFT scores (and their
    noise) question by question and recomputing every statistic, with the same seeded flips."""
    panel = shifted_panel(0.03, n_q=25, n_s=6, n_draws=20, seed=4)
    panel.values[:, :3, 1] += 0.05  # SFT worse on half the subgroups: absolute gaps change too
    stats = disparities.delta_stats(("nmae",))
    n_perm, seed = 300, 7
    fast = disparities.analyse(panel, stats, [(0, 1)], n_boot=20, n_perm=n_perm, seed=seed).set_index("statistic")
    nq = len(panel.qids)
    ones = np.ones((1, nq))
    est = stats(*disparities._means(ones, panel.values, panel.present, panel.noise))
    flips = np.random.default_rng(seed + 1).integers(0, 2, (n_perm, nq)).astype(bool)
    exceed = {n: 0 for n in est if n.endswith("_delta")}
    scale = panel.values.mean(axis=(0, 1))  # every pair present: each column's mean
    for f in flips:
        for k in (1.0, scale):  # relative statistics are permuted scale-free (each model over its own mean)
            v, z = panel.values / k, panel.noise / k ** 2
            v[f] = v[f][:, :, ::-1]
            z[f] = z[f][:, :, ::-1]
            t = stats(*disparities._means(ones, v, panel.present, z))
            for n in exceed:
                if (k is scale) == any(f"_{r}_" in n for r in disparities.RELATIVE):
                    exceed[n] += abs(t[n][0]) >= abs(est[n][0]) - 1e-12
    for n, k in exceed.items():
        assert fast.loc[n, "p_permutation"] == pytest.approx((1 + k) / (1 + n_perm)), n
    assert fast.loc["nmae_max_gap_delta", "p_permutation"] < 1


def test_a_matched_contrast_that_repeats_another_and_one_that_cannot_reject_stay_out_of_the_family():
    """Christian vs Muslim on matched partners is Protestant vs Muslim's test when no Roman Catholic subgroup has a
    partner: it is kept once (under the narrower contrast), outside Holm's family; a contrast on 4 questions
    (smallest sign-flip p 2^-3 = 0.125) cannot reject and is outside the family too."""
    from subgroup_values.analysis import contrasts

    rng = np.random.default_rng(0)
    subs = pd.DataFrame({"subgroup_id": [f"s{i}" for i in range(4)],
                         "subgroup": ["Malay, Protestant", "Malay, Muslim", "Chinese, Roman Catholic", "Chinese, Buddhist"],
                         "stratum": "ethnicity x religion", "ethnicity": ["Malay", "Malay", "Chinese", "Chinese"],
                         "religion": ["Protestant", "Muslim", "Roman Catholic", "Buddhist"], "age": None, "sex": None})

    def world(n_q):
        values = (rng.random((n_q, 4)) < 0.6).astype(float)[:, :, None].repeat(2, axis=-1)
        draws = np.where(rng.random((200, n_q, 4, 1)) < 0.05, 1 - values[None], values[None]).astype(np.float32)
        return disparities.Panel(values, np.ones((n_q, 4)), np.zeros_like(values), draws,
                                 ["accuracy_base", "accuracy_sft"], list(range(n_q)), list(subs.subgroup_id))

    t = contrasts.paper_bias({"ood": (world(60), subs)}, metrics=("accuracy",), models=("base",), n_boot=200,
                             n_perm=2000).set_index(["contrast", "matching"])
    dup = t.loc[("Christian vs Muslim", "matched partners")]
    assert dup.duplicate_of == "Protestant vs Muslim" and not dup.in_family
    assert dup.verdict == "the same test as Protestant vs Muslim"
    assert t.loc[("Protestant vs Muslim", "matched partners")].in_family
    n_family = int(t.in_family.sum())
    assert f"over the split's {n_family} contrast tests" in t.loc[("Protestant vs Muslim", "matched partners")].rule
    few = contrasts.paper_bias({"ood": (world(4), subs)}, metrics=("accuracy",), models=("base",), n_boot=200,
                               n_perm=2000)
    tested = few[few.testable]
    assert tested.cannot_reject.all() and not tested.in_family.any()
    assert set(tested.verdict) <= {"cannot reject on 4 questions", "uninformative",
                                   "the same test as Protestant vs Muslim"}
    found = contrasts.bias_claims(few)
    assert any("cannot reach p < 0.05 by sign flips" in c.sentence for c in found)
