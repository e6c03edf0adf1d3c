"""The headroom table: every method between the noise floor and uniform, on the same pairs."""

from __future__ import annotations

import pandas as pd
import pytest

from subgroup_values.analysis import headroom, noise_floor
from subgroup_values.evaluation import baselines
from subgroup_values.survey import dataset


def test_methods_must_share_their_pairs():
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46"])]
    systems = {"uniform": baselines.predictions(ood, all_pairs, "uniform"),
               "log_linear": baselines.predictions(ood.iloc[:-1], all_pairs, "log_linear")}
    with pytest.raises(ValueError, match="same pairs"):
        headroom.protocol_table(systems, noise_floor.load(), "paper", n_boot=20)


def test_protocol_table_scores_and_normalised_score():
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46", "Q164", "Q241"])]
    systems = {k: baselines.predictions(ood, all_pairs, k) for k in ("uniform", "compositional", "log_linear")}
    systems |= headroom.point_masses(systems["log_linear"], "log_linear")
    floor = noise_floor.load()
    t = headroom.protocol_table(systems, floor, "paper", n_boot=100)
    assert set(t.protocol) == {"paper"}
    a = t[t.pairs == "all"].set_index("method")
    for col in ("log_score", "kl", "brier", "normalised", "normalised_lo", "normalised_hi"):
        assert col in t.columns
    assert a.loc["uniform", "normalised"] == 0
    assert a.loc["log_linear", "normalised"] == pytest.approx(
        100 * (1 - a.loc["log_linear", "tv"] / a.loc["uniform", "tv"]))
    # LB1 puts all mass on the predictor's own mode: never better than the distribution itself under proper scores
    assert a.loc["log_linear_lb1", "log_score"] > a.loc["log_linear", "log_score"]
    assert a.loc["log_linear_lb2", "tv"] > a.loc["log_linear_lb1", "tv"]
    f = floor.merge(ood[["qid", "subgroup_id"]])
    assert a.loc["noise_floor", "tv"] == pytest.approx(f.floor_tv.mean())
    with pytest.raises(ValueError, match="protocol"):
        headroom.protocol_table(systems, floor, "leaky", n_boot=10)


def test_divergence_of_a_fold_target_ignores_its_own_sample():
    """A fold target's consensus / divergent label is judged by the other folds' respondents of its cell: changing
    the target's own answers never changes it, changing the other fold's cell can; a cell the other fold lacks is
    unlabelled (in "all" only)."""
    import numpy as np

    from subgroup_values.analysis import folds
    from subgroup_values.survey.questions import load_questions

    table = folds.load_fold_pairs()
    table = table[table.qid.isin(["Q1", "Q46"])].reset_index(drop=True)
    base = folds.other_folds_divergence(table)
    k = table.index[(table.fold == 0) & (table.role == "target")][0]
    flipped = table.copy()
    flipped.at[k, "weighted_counts"] = list(reversed(table.at[k, "weighted_counts"]))
    flipped.at[k, "modal_answers"] = [0]
    mine = base.fold == 0  # (fold 1's labels are judged by fold 0's respondents: those may move)
    assert folds.other_folds_divergence(flipped)[mine].divergent.equals(base[mine].divergent)
    # the same cell in fold 1's targets decides fold 0's label
    r = table.loc[k]
    j = table.index[(table.fold == 1) & (table.role == "target") & (table.qid == r.qid)
                    & (table.subgroup_id == r.subgroup_id)][0]
    other = table.copy()
    counts = np.zeros(len(r.weighted_counts))
    pop = set(r.population_modal_answers)
    values = {q.qid: list(q.values) for q in load_questions(rule="all")}[r.qid]
    away = next(i for i, v in enumerate(values) if v not in pop)
    counts[away] = 50.0
    other.at[j, "weighted_counts"] = counts.tolist()
    after = folds.other_folds_divergence(other).set_index(["fold", "qid", "subgroup_id"])
    assert bool(after.loc[(0, r.qid, r.subgroup_id), "divergent"]) is True
    gone = folds.other_folds_divergence(table.drop(index=j)).set_index(["fold", "qid", "subgroup_id"])
    assert pd.isna(gone.loc[(0, r.qid, r.subgroup_id), "divergent"])


def test_headroom_claims_are_written_from_the_tables():
    """Paper protocol: no verdict against the floor for a predictor built from the targets' respondents (the gap
    is stated as evidence of the leak). Disjoint: one verdict per non-LLM predictor, from the widened interval."""
    from subgroup_values.core.claims import fmt_ci

    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46", "Q164", "Q241"])]
    systems = {k: baselines.predictions(ood, all_pairs, k) for k in ("uniform", "compositional", "log_linear")}
    floor = noise_floor.load()
    t = headroom.protocol_table(systems, floor, "paper", n_boot=100)
    best = headroom.best_predictor(t, [])
    assert best == t[t.pairs == "all"].set_index("method").loc[["compositional", "log_linear"], "tv"].idxmin()
    assert headroom.candidates(t, []) == [best] + [m for m in ("compositional", "log_linear") if m != best]
    gap = headroom.floor_gap(systems, floor, [best], n_boot=100)
    paper = headroom.headroom_claims({"paper": t}, {"paper": gap}, {"paper": []}, "Singapore", "test")
    a = t[t.pairs == "all"].set_index("method")
    assert fmt_ci(a.loc["noise_floor", "tv"], a.loc["noise_floor", "tv_lo"], a.loc["noise_floor", "tv_hi"]) \
        in paper[0].sentence
    leak = {c.id: c for c in paper}["headroom.paper.leak"]
    assert leak.verdict == "" and "not a measure of headroom" in leak.sentence
    # the same systems labelled disjoint: every candidate gets a verdict from the widened interval
    d = headroom.protocol_table(systems, floor, "disjoint", n_boot=100)
    fam = headroom.candidates(d, [])
    dgap = headroom.floor_gap(systems, floor, fam, n_boot=100, level=1 - 0.05 / len(fam))
    out = {c.id: c for c in headroom.headroom_claims({"disjoint": d}, {"disjoint": dgap}, {"disjoint": []},
                                                     "Singapore", "test")}
    for m in fam:
        g = dgap[(dgap.method == m) & (dgap.pairs == "all")].iloc[0]
        assert g.gap_lo_wide < g.gap_lo and g.gap_hi_wide > g.gap_hi
        expected = "headroom" if g.gap_lo_wide > 0 else "below the floor" if g.gap_hi_wide < 0 else "at the floor"
        c = out[f"headroom.disjoint.gap.{m}"]
        assert c.verdict == expected and c.protocol == "disjoint" and c.estimate == pytest.approx(g.gap)


def test_a_fold_run_is_placed_on_its_folds_targets_beside_every_predictor():
    """The disjoint profile's path, on the committed fold aggregates: predictors per fold (inputs from the other
    fold), a "fine-tune" (here the log-linear rule's distributions standing in for a model's) evaluated on fold
    0's targets only, placed with its gap to the floor, paired comparisons, and claims."""
    import numpy as np

    from subgroup_values.analysis import folds
    from subgroup_values.core import claims

    table = folds.load_fold_pairs()
    qids = ["Q1", "Q46", "Q164", "Q241"]
    table = table[table.qid.isin(qids)]
    disjoint, floors = {}, []
    for f in (0, 1):
        t, i = folds.targets(table, f), folds.inputs(table, f)
        for k in ("uniform", "compositional", "log_linear", "population_mode"):
            disjoint.setdefault(k, []).append(baselines.predictions(t, i, k).assign(fold=f))
        floors.append(t[["qid", "subgroup_id", "n_valid"]].assign(fold=f, floor_tv=0.05, floor_w1=0.03, floor_jsd=0.06))
    disjoint = {k: pd.concat(v, ignore_index=True) for k, v in disjoint.items()}
    floor = pd.concat(floors, ignore_index=True)
    t0 = folds.targets(table, 0)
    model = baselines.predictions(t0, folds.inputs(table, 0), "log_linear")[["qid", "subgroup_id", "choice", "probs",
                                                                              "option_mass", "status"]]
    with pytest.raises(ValueError, match="every target pair"):
        headroom.fold_systems(disjoint, floor, table, {"ft": (model.iloc[:-2], 0)}, 0)
    systems, ffloor = headroom.fold_systems(disjoint, floor, table, {"ft": (model, 0), "other": (model, 1)}, 0)
    assert "other" not in systems and {"ft", "ft_lb1", "ft_lb2"} <= set(systems)
    assert set(ffloor.fold) == {0} and all(set(s.fold) == {0} for s in systems.values())
    # the fold run's consensus / divergent labels are the other fold's, not those of the target's own sample
    div = folds.other_folds_divergence(table).query("fold == 0")
    got = systems["ft"].merge(div, on=["fold", "qid", "subgroup_id"], suffixes=("", "_other"))
    assert len(got) == len(systems["ft"]) and got.divergent.equals(got.divergent_other)
    # a pair the other fold cannot label is in "all" only
    unlabelled = {k: v.assign(divergent=v.divergent.astype("boolean").mask(v.index == 0)) for k, v in systems.items()}
    n = headroom.protocol_table(unlabelled, ffloor, "disjoint", n_boot=20).query("method == 'uniform'").set_index("pairs")
    assert n.n_pairs["consensus"] + n.n_pairs["divergent"] == n.n_pairs["all"] - 1
    headroom.floor_gap(unlabelled, ffloor, ["ft"], n_boot=20)
    ftable = headroom.protocol_table(systems, ffloor, "disjoint", n_boot=50)
    a = ftable[ftable.pairs == "all"].set_index("method")
    # the stand-in is the log-linear rule itself: the same TV on the same pairs
    assert a.loc["ft", "tv"] == pytest.approx(a.loc["log_linear", "tv"])
    gaps = headroom.floor_gap(systems, ffloor, ["ft"], n_boot=50)
    # the floor's bias bound at each pair's size, averaged: between the n = 400 and n = 15 bounds
    g = gaps.set_index("pairs").loc["all"]
    assert g.gap_lo - g.gap_lo_wide == pytest.approx(
        float(np.mean(noise_floor.bias_bound(ffloor.n_valid) * ffloor.floor_tv)))
    assert 0.03 <= g.floor_bias_bound <= 0.13
    comps = pd.DataFrame([headroom.paired_tv(systems, "ft", b, n_boot=50) for b in ("log_linear", "uniform")])
    assert comps.set_index("b").loc["log_linear", "diff"] == pytest.approx(0)
    found = headroom.fold_run_claims(ftable, gaps, comps, None, ["ft"], 0, "Singapore", "x",
                                     {"ft": {"pairs": 3000, "loss": "modal"}})
    by = claims.by_id(found)
    assert by["headroom.disjoint.fold0.gap.ft"].verdict in ("headroom", "at the floor", "below the floor")
    assert "3,000 training pairs" in by["headroom.disjoint.fold0.gap.ft"].sentence
    assert by["headroom.disjoint.fold0.ft.vs.log_linear"].verdict == "no clear difference"
    assert np.isfinite(by["headroom.disjoint.fold0.ft.vs.uniform"].estimate)


def test_two_fine_tunes_compared_say_how_their_training_differs():
    tr = {"a": {"pairs": 10050, "loss": "modal"}, "b": {"pairs": 3000, "loss": "distribution"},
          "c": {"pairs": 3000, "loss": "modal"}}
    assert "modal vs distribution loss and 10,050 vs 3,000 training pairs" in headroom._training_differs("a", "b", tr)
    tr["a"] |= {"steps": 321, "revision": "ee04403"}
    tr["b"] |= {"steps": 120, "revision": "fd217d9"}
    assert "321 vs 120 optimiser steps and code revisions ee04403 vs fd217d9" in headroom._training_differs("a", "b", tr)
    assert "not the loss's alone" in headroom._training_differs("a", "b", tr)
    assert headroom._training_differs("c", "b", tr).startswith(" (the two fine-tunes differ in modal vs distribution loss")
    assert headroom._training_differs("a", "uniform", tr) == ""


def test_a_floor_gap_that_cannot_say_is_uninformative_not_at_the_floor():
    from types import SimpleNamespace

    assert headroom.gap_verdict(SimpleNamespace(gap_lo_wide=float("nan"), gap_hi_wide=float("nan"))) == "uninformative"
    assert headroom.gap_verdict(SimpleNamespace(gap_lo_wide=0.01, gap_hi_wide=0.02, degenerate=True)) == "uninformative"
    assert headroom.gap_verdict(SimpleNamespace(gap_lo_wide=0.01, gap_hi_wide=0.02, degenerate=False)) == "headroom"
    all_pairs = dataset.load_pairs()
    ood = all_pairs[(all_pairs.split == "ood") & all_pairs.qid.isin(["Q1", "Q46"])]
    p = baselines.predictions(ood, all_pairs, "uniform").assign(divergent=False)  # no divergent pair at all
    floor = noise_floor.load()
    g = headroom.floor_gap({"uniform": p}, floor, ["uniform"], n_boot=50).set_index("pairs")
    assert g.loc["divergent", "n_pairs"] == 0 and headroom.gap_verdict(g.loc["divergent"]) == "uninformative"
    assert headroom.gap_verdict(g.loc["all"]) == "headroom"
