"""Nothing silent, nothing stale: bad input, faults and misuse end in a clear error or correct behaviour.

Each test is one case of the hostile-user review (issue "Nothing silent, nothing stale").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from fake_openai import FakeOpenAI
from subgroup_values import dataset, evaluate
from subgroup_values.backends import make_backend
from subgroup_values.backends.cache import ResponseCache
from subgroup_values.dataset import load_pairs, valid_codes
from subgroup_values.paths import REPO_ROOT
from subgroup_values.questions import load_questions
from subgroup_values.runner import load_profile, notebook_parameters, run_notebook
from subgroup_values.wvs import WVSFileError, identify, read_wvs

ITEMS = [q.qid for q in load_questions(rule="all")]


# ---- make is never fooled ---------------------------------------------------------------------------------------

def test_a_failed_step_leaves_no_target(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("raise RuntimeError('step fails half-way')")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "99_fails.ipynb"
    nbformat.write(nb, src)
    out_dir = tmp_path / "out"
    (out_dir).mkdir()
    (out_dir / "99_fails.ipynb").write_text("{}")  # an old success must not survive a failed rerun
    with pytest.raises(Exception, match="step fails half-way"):
        run_notebook(src, "smoke", out_dir=out_dir, html=False)
    assert not (out_dir / "99_fails.ipynb").exists()
    assert (out_dir / "99_fails.failed.ipynb").exists() and not (out_dir / "99_fails.partial.ipynb").exists()


def make(*args, **env):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          env={**{k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")},
                               **env}, timeout=300)


def test_make_refuses_a_missing_survey_file_and_an_unknown_profile():
    r = make("build/wvs_file.id", "WVS_FILE=/does/not/exist")
    assert r.returncode != 0 and "No WVS survey file found (WVS_FILE='/does/not/exist')" in r.stdout + r.stderr
    r = make("all", "PROFILE=fast")
    assert r.returncode != 0 and "Unknown profile PROFILE=fast" in r.stderr and "smoke" in r.stderr


def test_survey_identity_changes_only_with_the_file(tmp_path):
    f, stamp = tmp_path / "WVS.csv", tmp_path / "id.json"
    f.write_text("a,b\n1,2\n")
    assert identify(f, stamp) is True
    assert identify(f, stamp) is False
    os.utime(f, ns=(1, 2))  # touched, same content: nothing to rebuild
    assert identify(f, stamp) is False
    f.write_text("a,b\n1,3\n")
    assert identify(f, stamp) is True and json.loads(stamp.read_text())["size"] == f.stat().st_size
    with pytest.raises(WVSFileError, match="No WVS survey file found"):
        identify(tmp_path / "gone.csv", stamp)


# ---- the loader checks what a WVS file must satisfy ------------------------------------------------------------

def test_duplicated_respondents_are_refused(tmp_path, survey_frame):
    path = tmp_path / "WVS_twice.csv"
    pd.concat([survey_frame, survey_frame]).to_csv(path, index=False)
    with pytest.raises(WVSFileError, match="respondent ids \\(D_INTERVIEW\\) repeat: 4024 rows"):
        read_wvs(path, items=ITEMS)


def test_a_file_cut_at_a_row_boundary_is_refused(tmp_path, survey_frame):
    path = tmp_path / "WVS_cut.csv"
    survey_frame.head(1500).to_csv(path, index=False)
    with pytest.raises(WVSFileError, match="holds 1,500 respondents for SGP; its documented sample is 2,012"):
        read_wvs(path, items=ITEMS, expected_respondents=2012)


@pytest.mark.parametrize("value", [2.5, 99])
def test_an_answer_that_is_no_code_of_its_question_is_refused(tmp_path, survey_frame, value):
    bad = survey_frame.copy()
    bad["Q1"] = bad["Q1"].astype(float)
    bad.loc[17, "Q1"] = value
    path = tmp_path / "WVS_bad_code.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(WVSFileError, match=f"column Q1 holds {value!r} at data row 18 .*expected one of its codes "
                                           r"\[1, 2, 3, 4\]"):
        read_wvs(path, items=ITEMS, valid_codes=valid_codes(load_questions(rule="all")))


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1", "utf-8"])
def test_text_encodings_are_read(tmp_path, survey_frame, survey, encoding):
    path = tmp_path / f"WVS_{encoding}.csv"
    frame = survey_frame.head(50).assign(version="6-0-0 (2024-04-30) Café")  # one character beyond ASCII
    frame.to_csv(path, index=False, encoding=encoding)
    s = read_wvs(path, items=ITEMS[:5])
    assert s.n_respondents == 50 and s.data["Q1"].equals(survey.data["Q1"].head(50))
    assert s.record().get("encoding", "utf-8") == encoding and s.version.endswith("Café")


def test_a_binary_file_names_the_expected_encodings(tmp_path):
    path = tmp_path / "WVS_binary.csv"
    path.write_bytes(b"A_WAVE,B\x00COUNTRY,\xff\x00,a,b,c,d\n7,1,2,3,4,5,6\n")
    with pytest.raises(WVSFileError, match="cannot tell its text encoding.*utf-16"):
        read_wvs(path)


# ---- configs are checked ---------------------------------------------------------------------------------------

def test_a_typo_in_a_profile_section_is_an_error(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "03_evaluate.ipynb").write_text("{}")
    (tmp_path / "configs" / "mine.yaml").write_text("notebook:\n  03_evaluate:\n    model: other\n")
    with pytest.raises(SystemExit, match=r"unknown section\(s\) \['notebook'\]; a profile has only"):
        load_profile("mine", tmp_path)
    (tmp_path / "configs" / "mine.yaml").write_text("notebooks:\n  03_evaluat:\n    model: other\n")
    with pytest.raises(SystemExit, match=r"\['03_evaluat'\] name no notebook"):
        load_profile("mine", tmp_path)


@pytest.mark.parametrize("name,value,expected", [
    ("batch_size", -3, "an integer >= 1"), ("split", "test", "'train' or 'ood'"), ("limit", -1, ">= 0"),
    ("scoring", "vibes", "'logprob' or 'generate'"),
    ("api_key_env", "sk-abcdefghijklmnopqrstuvwxyz123456", "looks like an API key"),
    ("base_url", "https://x/v1?key=sk-abcdefghijklmnopqrstuvwxyz1234", "looks like an API key"),
])
def test_bad_parameters_are_refused_before_anything_runs(name, value, expected, capsys):
    with pytest.raises(SystemExit, match=expected) as err:
        notebook_parameters("smoke", "03_evaluate", {name: value})
    if "key" in expected:
        assert "sk-" not in str(err.value) and "sk-" not in capsys.readouterr().out  # the key is never echoed


def test_a_missing_local_model_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model folder at .*make model"):
        make_backend("hf", str(tmp_path / "models" / "SmolLM2-135M-Instruct"))


# ---- the cache keeps only real answers; API runs degrade gracefully ---------------------------------------------

def test_a_failing_request_is_recorded_the_rest_is_cached_and_a_rerun_retries_only_it(tmp_path):
    pairs = dataset.sample_pairs(load_pairs(split="ood"), 6, seed=3)
    cache = ResponseCache(tmp_path / "c.sqlite")
    with FakeOpenAI(["ok", "400", "ok", "ok", "ok", "ok"]) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, concurrency=1)
        first = evaluate.predict(be, pairs, scoring="generate", cache=cache, progress=False)
        assert (first.status == "failed").sum() == 1 and "HTTP 400" in first.error[first.status == "failed"].iloc[0]
        assert first.attrs["pairs_failed"] == 1 and len(cache) == 5
        assert first.loc[first.status == "failed", "correct"].iloc[0] == 0.0
        asked = len(srv.requests)
        again = evaluate.predict(be, pairs, scoring="generate", cache=cache, progress=False)
        assert len(srv.requests) == asked + 1  # only the failed one is asked again
    assert again.attrs["pairs_computed"] == 1 and not (again.status == "failed").any() and len(cache) == 6


def test_a_run_whose_every_request_fails_stops_with_the_cause(tmp_path):
    pairs = dataset.sample_pairs(load_pairs(split="ood"), 3, seed=3)
    with FakeOpenAI(["400"] * 3) as srv:
        be = make_backend("openai_compat", model="wrong-name", base_url=srv.url, backoff=0.01, concurrency=1)
        with pytest.raises(RuntimeError, match="Every request of the first chunk \\(3\\) failed.*HTTP 400"):
            evaluate.predict(be, pairs, scoring="generate", cache=ResponseCache(tmp_path / "c.sqlite"),
                             progress=False)


def test_the_runner_prints_no_secret(tmp_path):
    r = subprocess.run([sys.executable, "-m", "subgroup_values.runner", "notebooks/03_evaluate.ipynb",
                        "--profile", "smoke", "-p", "api_key_env", "sk-abcdefghijklmnopqrstuvwxyz123456",
                        "--out-dir", str(tmp_path)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "looks like an API key" in r.stderr
    assert "sk-abcdef" not in r.stdout + r.stderr and not list(tmp_path.iterdir())


def test_a_killed_step_leaves_no_target(tmp_path):
    import signal
    import time

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import time\ntime.sleep(120)")]
    src = tmp_path / "98_slow.ipynb"
    nbformat.write(nb, src)
    out_dir = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "subgroup_values.runner", str(src), "--profile", "smoke",
                             "--out-dir", str(out_dir), "--no-html"], cwd=REPO_ROOT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (out_dir / "98_slow.partial.ipynb").exists():
        time.sleep(0.2)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out_dir / "98_slow.ipynb").exists()  # make will run the step again


def test_make_data_with_a_missing_file_fails_clearly():
    r = make("data", "WVS_FILE=/does/not/exist")
    assert r.returncode != 0 and "No WVS survey file found" in r.stdout + r.stderr
    assert "Nothing to be done" not in r.stdout


def test_notebook_one_finds_the_file_in_data_raw(tmp_path, monkeypatch):
    from subgroup_values import paths
    from subgroup_values.wvs import find_survey_file

    monkeypatch.delenv("WVS_FILE", raising=False)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(WVSFileError, match="none in"):
        find_survey_file("")
    (raw / "WVS_Cross-National_Wave_7_csv_v6_0.csv").write_text("x")
    assert find_survey_file("") == str(raw / "WVS_Cross-National_Wave_7_csv_v6_0.csv")
    (raw / "WVS_Cross-National_Wave_7_spss_v6_0.sav").write_text("x")
    with pytest.raises(WVSFileError, match="Several survey files"):
        find_survey_file(None)
    monkeypatch.setenv("WVS_FILE", "/given.csv")
    assert find_survey_file(None) == "/given.csv" and find_survey_file("/mine.csv") == "/mine.csv"
