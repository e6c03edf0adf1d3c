"""The committed derived tables are exactly what the code builds from the survey file."""

from __future__ import annotations

import json

from subgroup_values.survey.dataset import PROCESSED, build_dataset, load_manifest, load_pairs, save_dataset


def test_rebuild_matches_committed_tables(tmp_path, wvs_file):
    ds, survey, _ = build_dataset(wvs_file, progress=False)
    paths = save_dataset(ds, tmp_path)
    for name in ("pairs.csv", "subgroups.csv", "questions_used.csv"):
        assert (tmp_path / name).read_bytes() == (PROCESSED / name).read_bytes(), f"{name} differs from a rebuild"
    committed = load_manifest()
    rebuilt = json.loads(paths["manifest"].read_text())
    assert committed["files"] == rebuilt["files"] and committed["rule"] == rebuilt["rule"]
    assert committed["source"]["sha256"] == survey.sha256


def test_paper_counts():
    c = load_manifest()["counts"]
    assert c["questions"] == 214
    assert c["subgroups"] == {"train": 50, "ood": 48}
    assert c["pairs"] == {"train": 10700, "ood": 10177, "total": 20877}


def test_no_respondent_level_rows():
    pairs = load_pairs()
    assert (pairs.n >= 30).all() and (pairs.n_answered >= 30).all()
    assert "D_INTERVIEW" not in pairs.columns
    assert pairs.groupby(["qid", "subgroup_id"]).size().max() == 1
    ood = load_pairs(split="ood")
    assert len(ood) == 10177 and set(ood.split) == {"ood"}
    assert all(isinstance(m, list) for m in ood.modal_answers.head())
