"""A study is a config: Singapore's reproduces the paper's dataset, Turkey's builds from the official single-country
file in every layout, a dimension that cannot form groups is dropped with its reason, and prompts speak of the
study's country in its own words."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

from subgroup_values.survey import prompts
from subgroup_values.survey.dataset import build_dataset, load_manifest
from subgroup_values.survey.questions import load_questions
from subgroup_values.survey.study import STUDIES_DIR, StudyConfigError, load_study, parse_study
from subgroup_values.survey.subgroups import usable_dimensions
from subgroup_values.survey.wvs import WVSFileError, read_wvs

TUR_KEY = ["B_COUNTRY", "W_WEIGHT", "Q260", "X003R", "Q275R", "H_URBRURAL", "Q288R", "Q1", "Q46", "Q164"]


@pytest.fixture
def tur():
    return load_study("tur")


def test_singapore_study_is_the_papers_design():
    s = load_study("sgp")
    assert s.country == "SGP" and s.country_name == "Singapore" and s.data_dir == "data/processed"
    assert {k: (d.column, list(d.categories)) for k, d in s.dimensions.items()} == {
        "sex": ("Q260", [1, 2]), "age": ("X003R", [1, 2, 3, 4, 5, 6]),
        "ethnicity": ("Q290", [702004, 702006, 702003]), "religion": ("Q289", [7, 0, 2, 5, 9, 1, 6])}
    assert s.ood_strata == (("age", "religion"), ("age", "ethnicity"), ("ethnicity", "religion"))
    assert len(s.train_strata) == 7
    # the committed manifest's split is this study's
    rule = load_manifest()["rule"]
    assert rule["ood_strata"] == ["age x religion", "age x ethnicity", "ethnicity x religion"]


@pytest.mark.parametrize("attributes, phrase", [
    ({"sex": "Female", "age": "25-34"}, "a woman aged 25 to 34"),
    ({"ethnicity": "Malay", "religion": "Muslim"}, "a Malay Muslim person"),
    ({"age": "65+", "religion": "No religion"}, "a person aged 65 or older with no religious affiliation"),
    ({"sex": "Male", "religion": "Protestant"}, "a Protestant Christian man"),
    ({"ethnicity": "Indian", "religion": "Other religion"},
     "an Indian person who follows another religion (such as Taoism)"),
    ({}, "a person")])
def test_singapore_personas_read_as_before(attributes, phrase):
    assert prompts.describe(attributes, load_study("sgp")) == phrase


def test_turkey_prompts_name_turkey_in_the_configs_words(tur):
    assert prompts.describe({"sex": "Female", "settlement": "Rural", "education": "Higher education"}, tur) == \
        "a rural woman with a university-level education"
    q = next(q for q in load_questions(rule="all") if prompts.PLACEHOLDER.search(q.text + " ".join(
        lab for _, lab in q.options)))
    text = "\n".join(m["content"] for m in prompts.build_messages(q, {"income": "Low income", "age": "16-24"},
                                                                study=tur))
    assert "Turkey" in text and "Singapore" not in text and not prompts.PLACEHOLDER.search(text)
    assert text.endswith("Respondent: a person aged 16 to 24 with a low household income")
    with pytest.raises(ValueError, match="Unknown dimension"):
        prompts.describe({"ethnicity": "Malay"}, tur)


def test_turkey_file_reads_as_a_single_country_file(wvs_file_tur):
    items = [q.qid for q in load_questions(rule="all")]
    s = read_wvs(wvs_file_tur, country="TUR", items=items, expected_respondents=2415,
                 columns=tuple(load_study("tur").columns), may_lack=load_study("tur").absent_items)
    assert s.n_respondents == 2415 and s.country == "TUR" and s.version.startswith("1-5-0")
    assert s.weighting == "self-weighting" and s.record()["weights"] == "self-weighting"
    assert s.absent_items == ["Q245"]  # not in Turkey's v5.0 file: reported and left out
    assert (s.data.Q275R.value_counts().sort_index().to_dict()) == {1.0: 1409, 2.0: 585, 3.0: 412}
    with pytest.raises(WVSFileError, match="not in .*it holds: TUR"):
        read_wvs(wvs_file_tur, country="SGP", items=items)


@pytest.fixture(scope="module")
def tur_frame(wvs_file_tur):
    frame = pd.read_csv(wvs_file_tur, sep=";", encoding="utf-8-sig", low_memory=False)
    return frame[["version", "doi", "B_COUNTRY_ALPHA", "D_INTERVIEW", *TUR_KEY]].head(150).copy()


@pytest.mark.parametrize("fmt", ["comma_csv", "semicolon_csv", "sav", "dta", "zip_sav"])
def test_turkey_in_every_layout_gives_the_same_respondents(tmp_path, tur_frame, fmt):
    ref_path = tmp_path / "ref.csv"
    tur_frame.to_csv(ref_path, index=False)
    path = tmp_path / f"WVS_Wave_7_Turkey.{fmt.split('_')[-1]}"
    if fmt == "comma_csv":
        path = ref_path
    elif fmt == "semicolon_csv":
        path.write_text("".join(line + ";\n" for line in tur_frame.to_csv(index=False, sep=";").splitlines()))
    elif fmt == "sav":
        pyreadstat.write_sav(tur_frame, str(path))
    elif fmt == "dta":
        pyreadstat.write_dta(tur_frame, str(path))
    else:
        sav = tmp_path / "inner.sav"
        pyreadstat.write_sav(tur_frame, str(sav))
        path = tmp_path / "F00013167-WVS_Wave_7_Turkey.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.write(sav, "WVS_Wave_7_Turkey_Spss_v5.0.sav")
    cols = ("Q260", "X003R", "Q275R", "H_URBRURAL", "Q288R")
    ref = read_wvs(ref_path, country="TUR", items=["Q1", "Q46", "Q164"], columns=cols)
    got = read_wvs(path, country="TUR", items=["Q1", "Q46", "Q164"], columns=cols)
    assert got.n_respondents == ref.n_respondents == 150
    for col in TUR_KEY:
        np.testing.assert_allclose(got.data[col].to_numpy(float), ref.data[col].to_numpy(float), equal_nan=True)
    assert got.file_format.endswith(fmt.split("_")[-1].replace("comma", "csv"))


def test_single_country_file_without_a_wave_is_refused(tmp_path, tur_frame):
    bad = tur_frame.assign(doi="doi.org/10.14281/18240.1")  # Wave 6's DOI
    bad.to_csv(tmp_path / "w6.csv", index=False)
    with pytest.raises(WVSFileError, match="not Wave 7"):
        read_wvs(tmp_path / "w6.csv", country="TUR", columns=("Q260",))
    tur_frame.drop(columns="doi").to_csv(tmp_path / "nowave.csv", index=False)
    with pytest.raises(WVSFileError, match=r"A_WAVE \(pooled file\) or doi"):
        read_wvs(tmp_path / "nowave.csv", country="TUR", columns=("Q260",))
    tur_frame.to_csv(tmp_path / "ok.csv", index=False)
    with pytest.raises(WVSFileError, match=r"lacks required columns \['Q999'\]"):
        read_wvs(tmp_path / "ok.csv", country="TUR", columns=("Q260", "Q999"))


def test_turkey_dataset_builds_and_records_its_weights(wvs_file_tur, tur, capsys):
    ds, survey, questions = build_dataset(wvs_file_tur, progress=False, study=tur)
    m = ds.manifest
    assert m["source"]["weights"] == "self-weighting" and m["source"]["items_not_in_file"] == ["Q245"]
    assert m["study"]["study"] == "tur" and "dropped_dimensions" not in m["study"]
    assert set(ds.subgroups.stratum) == {"sex", "age", "education", "settlement", "income", "sex x age",
                                         "sex x education", "sex x settlement", "sex x income", "age x education",
                                         "age x settlement", "age x income", "education x settlement",
                                         "education x income", "settlement x income"}
    assert (ds.subgroups.n >= 30).all() and (ds.pairs.n_answered >= 30).all()
    assert set(ds.pairs.split) == {"train", "ood"} and "Q245" not in set(ds.pairs.qid)
    assert {"education", "settlement", "income"} <= set(ds.pairs.columns) and "ethnicity" not in ds.pairs.columns
    # self-weighting: weighted counts are the counts
    row = ds.pairs.iloc[0]
    assert json.loads(row.counts) == json.loads(row.weighted_counts)


def test_a_dimension_that_cannot_form_two_groups_is_dropped_with_its_reason(wvs_file_tur, tmp_path):
    cfg = yaml.safe_load((STUDIES_DIR / "tur.yaml").read_text())
    cfg["dimensions"]["ethnicity"] = {"column": "Q290", "codes": {792001: {"label": "Turkish", "before": "Turkish"},
                                                                   792002: {"label": "Kurdish", "before": "Kurdish"}}}
    cfg["dimensions"]["religion"] = {"column": "Q289", "codes": {5: {"label": "Muslim", "before": "Muslim"},
                                                                  0: {"label": "No religion", "after": "with no religion"}}}
    cfg["train_strata"] += [["ethnicity"], ["religion"]]
    cfg["ood_strata"] += [["age", "religion"]]
    study = parse_study(cfg, "test")
    survey = read_wvs(wvs_file_tur, country="TUR", columns=tuple(study.columns))
    used, dropped = usable_dimensions(survey, study)
    assert set(dropped) == {"ethnicity", "religion"}
    assert "forms 0 group(s)" in dropped["ethnicity"] and "forms 1 group(s)" in dropped["religion"]
    assert "religion" not in used.dimensions and ("age", "religion") not in used.ood_strata
    path = tmp_path / "tur_ext.yaml"
    cfg["study"] = "tur_ext"  # a changed copy has its own name (its own data folder)
    path.write_text(yaml.safe_dump(cfg))
    ds, _, _ = build_dataset(wvs_file_tur, study=str(path), progress=False)
    assert set(ds.manifest["study"]["dropped_dimensions"]) == {"ethnicity", "religion"}


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("dimensions"), "lacks"),
    (lambda c: c.update(country="Turkey"), "alpha-3"),
    (lambda c: c["dimensions"]["sex"]["codes"][1].pop("noun"), "exactly one of"),
    (lambda c: c["dimensions"]["sex"]["codes"].pop(2), "at least two groups"),
    (lambda c: c.update(ood_strata=[["sex"]]), "both training and OOD"),
    (lambda c: c.update(train_strata=[["sex", "colour"]]), "distinct dimensions"),
    (lambda c: c.update(min_group_size=0), "positive integer")])
def test_a_wrong_study_config_says_what_is_expected(change, message):
    cfg = yaml.safe_load((STUDIES_DIR / "tur.yaml").read_text())
    change(cfg)
    with pytest.raises(StudyConfigError, match=message):
        parse_study(cfg, "bad.yaml")
    with pytest.raises(StudyConfigError, match="Shipped studies"):
        load_study("atlantis")


def test_make_runs_turkeys_steps_into_its_own_folders(tmp_path, wvs_file_tur):
    import os
    import re
    import subprocess

    from subgroup_values.core.paths import REPO_ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL",
                                                            "SUBGROUP_VALUES_STUDY")}
    r = subprocess.run(["make", "-n", "--no-print-directory", "all", "PROFILE=tur", f"BUILD={tmp_path}",
                        "WVS_CHECK=", f"WVS_FILE={wvs_file_tur}"], cwd=REPO_ROOT, capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = re.findall(r"runner --profile tur --out-dir \S+/notebooks/tur notebooks/(\w+)\.ipynb(?: --run (\w+))?",
                       r.stdout)
    assert [s + (f":{run}" if run else "") for s, run in steps] == [
        "01_build_dataset", "02_value_landscape", "03_evaluate:base_ood", "03_evaluate:base_train",
        "03_evaluate:base_ood_generate", "03_evaluate:base_ood_marginals", "08_headroom"]
    assert "wvs_file.tur.id" in r.stdout and str(wvs_file_tur) in r.stdout


def test_the_runner_passes_the_profiles_study_and_ignores_the_environment(monkeypatch):
    """The study reaches a notebook as its ``study`` parameter, from the profile: a variable in the shell (the old
    global) changes nothing."""
    from subgroup_values.pipeline import runner

    seen = {}
    monkeypatch.setenv("SUBGROUP_VALUES_STUDY", "sgp")
    monkeypatch.setattr("papermill.execute_notebook", lambda src, out, parameters, **kw: (
        seen.update(parameters), (_ for _ in ()).throw(RuntimeError("stop before the kernel"))))
    with pytest.raises(RuntimeError, match="stop before the kernel"):
        runner.run_notebook("notebooks/01_build_dataset.ipynb", profile="tur", out_dir="/tmp/never-tur", html=False)
    assert seen["study"] == "tur"


def test_two_studies_in_one_process_each_with_its_own_pairs():
    """Singapore's and Turkey's committed tables side by side in one process: each carries its study, and the
    prompts, the attributes and the per-attribute audit follow the table, whatever the environment says."""

    from subgroup_values.analysis import fairness
    from subgroup_values.evaluation.evaluate import predict
    from subgroup_values.survey.dataset import load_pairs, pair_frame
    from subgroup_values.survey.study import study_of

    sgp, tur = load_pairs(split="ood"), load_pairs(study="tur", split="ood")
    assert study_of(sgp).name == "sgp" and study_of(tur).name == "tur"
    questions = {q.qid: q for q in load_questions(rule="all")}
    out = {}
    for name, pairs in (("sgp", sgp), ("tur", tur)):
        sample = pairs.head(3)
        assert study_of(pair_frame(sample, questions)).name == name  # the study survives the steps' frames

        class Capture:
            kind, supports_logprob, key = "capture", True, name

            def identity(self):
                return {"kind": "capture"}

            def score(self, requests):
                out.setdefault(self.key, []).extend(r.messages for r in requests)
                from subgroup_values.backends.base import OptionScores

                return [OptionScores(probs=[1 / len(r.options)] * len(r.options), option_mass=1.0)
                        for r in requests]

        preds = predict(Capture(), sample, progress=False, questions=questions)
        assert study_of(preds).name == name
        dims = set(fairness.per_subgroup(preds).columns) & {"ethnicity", "religion", "settlement", "income"}
        assert dims <= set(load_study(name).dimensions)
    text = {k: " ".join(m["content"] for msgs in v for m in msgs) for k, v in out.items()}
    assert "Singapore" in text["sgp"] and "Turkey" not in text["sgp"]
    assert "Turkey" in text["tur"] and "Singapore" not in text["tur"]


def test_no_module_reads_the_study_from_the_environment():
    """The study is passed, never read from the shell: no module of the package names the old variable."""
    from subgroup_values.core.paths import REPO_ROOT

    found = [str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "src/subgroup_values").rglob("*.py")
             if "SUBGROUP_VALUES_STUDY" in p.read_text()]
    assert found == []
    from subgroup_values.survey import study as study_module

    assert not hasattr(study_module, "active")


def test_the_study_survives_the_packages_merges_and_every_notebook_that_reads_data_takes_it():
    """pandas drops attrs when it merges frames whose attrs differ: the functions that merge set the study again."""
    import json

    from subgroup_values.analysis import fairness
    from subgroup_values.core.paths import REPO_ROOT
    from subgroup_values.evaluation.runs import load_run, rescore
    from subgroup_values.survey.dataset import load_pairs

    preds, _ = load_run(REPO_ROOT / "results/tur/base_ood")
    assert preds.attrs["study"] == "tur"
    scored = rescore(preds, load_pairs(study="tur"))
    assert scored.attrs["study"] == "tur" and fairness.per_subgroup(scored).shape[0] > 0
    base, _ = load_run(REPO_ROOT / "results/default/base_ood")
    sft, _ = load_run(REPO_ROOT / "results/default/sft_ood")
    assert fairness.paired(base, sft).attrs["study"] == "sgp"
    for stem in ("01_build_dataset", "02_value_landscape", "03_evaluate", "04_finetune", "06_open_ended",
                 "07_paper_comparison", "08_headroom"):
        cell = next(c for c in json.loads((REPO_ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
                    if "parameters" in c.get("metadata", {}).get("tags", []))
        assert any(line.startswith("study = ") for line in "".join(cell["source"]).splitlines()), stem


def test_rescoring_finds_the_table_the_run_read_from_any_folder(tmp_path, monkeypatch):
    """A fold-0 run records its table relative to the repository root; re-scoring it from another folder reads
    that table (hash checked), not the study's full one."""
    import shutil

    from subgroup_values.core.paths import REPO_ROOT
    from subgroup_values.evaluation import runs

    src = REPO_ROOT / "results/disjoint/sft_ood"
    fold = REPO_ROOT / "build/disjoint/folds/fold0/pairs.csv"
    if not fold.is_file():  # what make builds first for the disjoint profile, from the committed fold aggregates
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "subgroup_values.analysis.folds", "dataset", "--fold", "0", "--study",
                        "sgp", str(fold.parent)], cwd=REPO_ROOT, check=True, capture_output=True)
    run = tmp_path / "disjoint" / "sft_ood"
    shutil.copytree(src, run)
    monkeypatch.chdir(tmp_path)
    old = json.loads((src / "metrics.json").read_text())
    runs.rescore_run(run, n_boot=200, seed=0)
    new = json.loads((run / "metrics.json").read_text())
    assert new["results"]["tv"] == pytest.approx(old["results"]["tv"])
