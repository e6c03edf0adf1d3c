"""Respondent-disjoint folds: no target respondent in any input, cells split evenly, and the leave-cell-out
bound on the committed paper aggregates."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from subgroup_values.analysis import folds
from subgroup_values.evaluation import baselines, classical
from subgroup_values.survey import dataset


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


# ---- a target fold as a dataset (the disjoint profile's fine-tunes train and are evaluated on it) --------------

def test_fold_dataset_is_the_folds_inputs_and_targets_and_is_checked_like_the_dataset(tmp_path):
    table = folds.load_fold_pairs()
    all_pairs = dataset.load_pairs()
    m = folds.write_fold_dataset(table, 0, all_pairs, tmp_path / "fold0", source=folds.fold_file())
    got = dataset.load_pairs(tmp_path / "fold0" / "pairs.csv")  # checked against its own manifest
    assert list(got.columns) == list(all_pairs.columns)
    assert m["protocol"] == "disjoint" and m["fold"] == 0
    assert dataset.manifest_of(got)["fold"] == 0 and "fold" not in dataset.manifest_of(all_pairs)
    key = ["qid", "subgroup_id"]
    train, ood = got[got.split == "train"], got[got.split == "ood"]
    ins, tgt = folds.inputs(table, 0), folds.targets(table, 0)
    # train = the other fold's cells, ood = fold 0's targets, with their own (fold) counts, not the whole sample's
    assert set(map(tuple, train[key].to_numpy())) == set(map(tuple, ins[key].to_numpy()))
    assert set(map(tuple, ood[key].to_numpy())) == set(map(tuple, tgt[key].to_numpy()))
    a = ood.merge(tgt[key + ["counts"]], on=key)
    assert (a.counts_x == a.counts_y).all()
    whole = ood.merge(all_pairs[key + ["n"]], on=key)
    assert (whole.n_x < whole.n_y).all()  # half a cell
    # attributes as the dataset's; modes from the fold's own counts
    for r in (ood.iloc[0], train.iloc[-1]):
        full = all_pairs[all_pairs.subgroup_id == r.subgroup_id].iloc[0]
        assert [str(r[d]) for d in ("sex", "age", "ethnicity", "religion")] == \
            [str(full[d]) for d in ("sex", "age", "ethnicity", "religion")]
    assert all(m_ == sorted(m_) and m_ for m_ in got.modal_answers_unweighted)
    # rewriting the same content leaves the files alone; a hand-edited table is refused
    before = (tmp_path / "fold0" / "pairs.csv").stat().st_mtime_ns
    folds.write_fold_dataset(table, 0, all_pairs, tmp_path / "fold0", source=folds.fold_file())
    assert (tmp_path / "fold0" / "pairs.csv").stat().st_mtime_ns == before
    p = tmp_path / "fold0" / "pairs.csv"
    p.write_text(p.read_text().replace(",train,", ",ood,", 1))
    with pytest.raises(ValueError, match="differs from its manifest"):
        dataset.load_pairs(p)
    with pytest.raises(ValueError, match="not fold 5"):
        folds.fold_dataset(table, 5, all_pairs)


def test_fold_runs_refuse_a_paper_protocol_run_and_say_which_are_missing(tmp_path):
    from subgroup_values.analysis import headroom

    with pytest.raises(ValueError, match="name=profile/run"):
        headroom.fold_runs("sft_disjoint")
    run = tmp_path / "default" / "base_ood"
    run.mkdir(parents=True)
    pd.DataFrame({"qid": ["Q1"], "subgroup_id": ["sex=1"]}).to_parquet(run / "predictions.parquet")
    (run / "metrics.json").write_text('{"data": {"pairs_sha256": "x"}}')
    with pytest.raises(ValueError, match="fold's dataset"):
        headroom.fold_runs("m=default/base_ood", results=str(tmp_path))
    got, notes = headroom.fold_runs("m=disjoint/sft_ood", results=str(tmp_path))
    assert got == {} and "make all PROFILE=disjoint" in notes[0]
    (run / "metrics.json").write_text('{"data": {"protocol": "disjoint", "fold": 1}}')
    got, _ = headroom.fold_runs("m=default/base_ood", results=str(tmp_path))
    assert got["m"][1] == 1


def test_paired_tv_known_answer():
    from subgroup_values.analysis import headroom

    rng = np.random.default_rng(0)
    base = pd.DataFrame({"qid": np.repeat([f"Q{i}" for i in range(30)], 4), "subgroup_id": list("abcd") * 30,
                         "tv": rng.uniform(0.1, 0.3, 120)})
    better = base.assign(tv=base.tv - 0.05)
    r = headroom.paired_tv({"a": better, "b": base}, "a", "b", n_boot=200)
    assert r["diff"] == pytest.approx(-0.05) and r["lo"] == pytest.approx(-0.05) and r["hi"] == pytest.approx(-0.05)
    assert r["relative"] == pytest.approx(-0.05 / base.tv.mean())
    noisy = base.assign(tv=base.tv + rng.normal(0, 0.02, 120))
    r = headroom.paired_tv({"a": noisy, "b": base}, "a", "b", n_boot=200)
    assert r["lo"] < r["diff"] < r["hi"] and r["n_pairs"] == 120
