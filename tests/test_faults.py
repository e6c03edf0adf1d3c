"""Nothing silent, nothing stale: bad input, faults and misuse end in a clear error or correct behaviour.

Each test is one case of the hostile-user review (issue "Nothing silent, nothing stale").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import nbformat
import pandas as pd
import pytest

from fake_openai import FakeOpenAI
from subgroup_values.backends import make_backend
from subgroup_values.backends.cache import ResponseCache
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.evaluation import evaluate
from subgroup_values.pipeline.runner import load_profile, notebook_parameters, run_notebook
from subgroup_values.survey import dataset
from subgroup_values.survey.dataset import load_pairs, valid_codes
from subgroup_values.survey.questions import load_questions
from subgroup_values.survey.wvs import WVSFileError, identify, read_wvs

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
    r = subprocess.run([sys.executable, "-m", "subgroup_values.pipeline.runner", "notebooks/03_evaluate.ipynb",
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
    proc = subprocess.Popen([sys.executable, "-m", "subgroup_values.pipeline.runner", str(src), "--profile", "smoke",
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
    from subgroup_values.core import paths
    from subgroup_values.survey.wvs import find_survey_file

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


# ---- round two (issue 29): values checked for meaning, identity by content, nothing silent ------------------------

MSG = [{"role": "user", "content": "How important is family? Answer: <number>"}]


def _chat_top(values):
    """A mutate hook: the answer token's top log-probabilities replaced by ``values`` (token -> log-probability)."""
    def mutate(reply, path):
        top = [{"token": t, "logprob": v} for t, v in values.items()]
        reply["choices"][0]["logprobs"]["content"][-1]["top_logprobs"] = top
        return reply
    return mutate


@pytest.mark.parametrize("values, reason", [
    ({"3": float("nan"), "2": -1.0}, "not a finite number <= 0"),
    ({"3": float("inf"), "2": -1.0}, "not a finite number <= 0"),
    ({"3": 5.5, "2": -1.0}, "not a finite number <= 0"),  # the option mass would be 248
    ({"3": -0.1, "2": -0.1, "1": -0.1}, "add up to a probability of 2.71"),
    ({"3": "high", "2": -1.0}, "is not a number"),
])
def test_chat_log_probabilities_outside_their_domain_are_a_failed_prediction(values, reason):
    from subgroup_values.backends.base import ScoreRequest

    with FakeOpenAI(mutate=_chat_top(values)) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, max_retries=0)
        [s] = be.score([ScoreRequest(MSG, ["1", "2", "3", "4"])])
    assert s.status == "failed" and s.probs is None and reason in s.error


def test_a_malformed_log_probability_entry_fails_that_request_not_the_run():
    from subgroup_values.backends.base import ScoreRequest

    def mutate(reply, path):
        reply["choices"][0]["logprobs"]["content"][-1]["top_logprobs"] = [{"tok": "3"}]  # no token, no logprob
        return reply

    with FakeOpenAI(mutate=mutate) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, max_retries=0)
        [s] = be.score([ScoreRequest(MSG, ["1", "2", "3"])])
    assert s.status == "failed" and "malformed reply" in s.error and "KeyError" in s.error


@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), 0.5])
def test_completions_log_probabilities_outside_their_domain_are_a_failed_prediction(tiny_model, bad, tmp_path):
    """Issue 29, case 2: NaN or -inf prompt-token log-probabilities used to give status ok and the lowest code."""
    def mutate(reply, path):
        for ch in reply["choices"]:
            ch["logprobs"]["token_logprobs"][-2] = bad  # the option's last token
        return reply

    pairs = dataset.sample_pairs(load_pairs(split="ood"), 3, seed=1)
    with FakeOpenAI(model_path=tiny_model, mutate=mutate) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, max_retries=0,
                          endpoint="completions", tokenizer=str(tiny_model))
        with pytest.raises(RuntimeError, match="Every request of the first chunk \\(3\\) failed.*finite number <= 0"):
            evaluate.predict(be, pairs, cache=ResponseCache(tmp_path / "c.sqlite"), progress=False)


def test_a_local_model_with_nan_weights_gives_no_scores(tiny_model, tmp_path):
    """Probabilities are checked for meaning whatever the backend: NaN weights fail the run, not a lowest code."""
    import shutil

    from safetensors.torch import load_file, save_file

    bad = tmp_path / "nan-model"
    shutil.copytree(tiny_model, bad)
    w = load_file(bad / "model.safetensors")
    name = next(k for k in w if "embed" in k)
    w[name][:] = float("nan")
    save_file(w, bad / "model.safetensors", metadata={"format": "pt"})
    pairs = dataset.sample_pairs(load_pairs(split="ood"), 4, seed=1)
    with pytest.raises(RuntimeError, match="failed.*not all finite"):
        evaluate.predict(make_backend("hf", str(bad), dtype="float32"), pairs, progress=False,
                         cache=ResponseCache(tmp_path / "c.sqlite"))


def test_a_reply_from_another_model_is_a_failed_prediction():
    def mutate(reply, path):
        reply["model"] = "some-other-model"
        return reply

    with FakeOpenAI(mutate=mutate) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, max_retries=0)
        [out] = be.generate([evaluate.GenerateRequest(MSG)])
    assert "answered as model 'some-other-model', not the 'fake' asked for" in out.error
    from subgroup_values.backends.openai_compat import same_model

    assert same_model("gpt-4o", "gpt-4o-2024-08-06") and same_model("models/SmolLM2", "SmolLM2")


def _data_copy(tmp_path):
    import shutil

    data = tmp_path / "processed"
    data.mkdir()
    for name in ("pairs.csv", "manifest.json"):
        shutil.copy(REPO_ROOT / "data" / "processed" / name, data / name)
    return data


def test_a_hand_edited_pairs_table_is_refused_and_runs_record_the_hash_of_what_they_read(tmp_path):
    """Issue 29, case 3."""
    from subgroup_values.core.provenance import sha256_of
    from subgroup_values.evaluation.runs import evaluation_record

    data = _data_copy(tmp_path)
    pairs = load_pairs(data / "pairs.csv")
    assert pairs.attrs["sha256"] == sha256_of(data / "pairs.csv")
    preds = pairs.head(0).assign(status=pd.Series(dtype=str))
    text = (data / "pairs.csv").read_text().splitlines()
    text[1] = text[1].replace(",ood,", ",train,", 1) if ",ood," in text[1] else text[1].replace(",train,", ",ood,", 1)
    (data / "pairs.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match="differs from its manifest.*changed after it was built"):
        load_pairs(data / "pairs.csv")
    (data / "manifest.json").unlink()  # a table of one's own (no manifest): read, and its own hash recorded
    mine = load_pairs(data / "pairs.csv")
    manifest = json.loads((REPO_ROOT / "data" / "processed" / "manifest.json").read_text())
    del preds
    from subgroup_values.backends.hf import HFBackend  # noqa: F401  (the record needs no model)

    frame = evaluate.pair_frame(mine.head(3), {q.qid: q for q in load_questions(rule="all")})
    frame = frame.assign(choice=pd.array([1, 1, 1], dtype="Int64"), probs=[None] * 3, option_mass=1.0, reply=None,
                         status="ok", error="")
    record, _ = evaluation_record({}, evaluate.score_pairs(frame), mine, manifest, {"backend": "x"}, 1.0, n_boot=10)
    assert record["data"]["pairs_sha256"] == sha256_of(data / "pairs.csv") != manifest["files"]["pairs"]["sha256"]


def test_the_cache_key_follows_the_config_the_chat_template_and_the_adapter_config(tiny_model, tmp_path):
    """Issue 29, case 4: editing config.json, chat_template.jinja or adapter_config.json never reuses old answers."""
    import shutil

    from subgroup_values.backends.hf import files_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    pairs = dataset.sample_pairs(load_pairs(split="ood"), 3, seed=2)
    cache = ResponseCache(tmp_path / "c.sqlite")
    first = evaluate.predict(make_backend("hf", str(model), dtype="float32"), pairs, cache=cache, progress=False)
    assert first.attrs["pairs_computed"] == 3
    again = evaluate.predict(make_backend("hf", str(model), dtype="float32"), pairs, cache=cache, progress=False)
    assert again.attrs["pairs_computed"] == 0
    cfg = json.loads((model / "config.json").read_text())
    cfg["rms_norm_eps"] = cfg.get("rms_norm_eps", 1e-6) * 10
    (model / "config.json").write_text(json.dumps(cfg))
    edited = evaluate.predict(make_backend("hf", str(model), dtype="float32"), pairs, cache=cache, progress=False)
    assert edited.attrs["pairs_computed"] == 3
    (model / "chat_template.jinja").write_text((model / "chat_template.jinja").read_text() + " ")
    templ = evaluate.predict(make_backend("hf", str(model), dtype="float32"), pairs, cache=cache, progress=False)
    assert templ.attrs["pairs_computed"] == 3
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"lora_alpha": 16}))
    before = files_digest(adapter)
    (adapter / "adapter_config.json").write_text(json.dumps({"lora_alpha": 32}))
    assert files_digest(adapter) != before
    (adapter / "provenance.json").write_text("{}")  # records beside it do not change answers
    assert files_digest(adapter) == files_digest(adapter)


def test_a_copied_study_that_keeps_a_shipped_name_is_refused(tmp_path):
    """Issue 29, case 5: it would write over data/processed/ (and verify-data would still pass)."""
    import yaml

    from subgroup_values.survey.study import STUDIES_DIR, StudyConfigError, load_study

    cfg = yaml.safe_load((STUDIES_DIR / "sgp.yaml").read_text())
    cfg["min_answers"] = 31  # another dataset under the shipped name
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(StudyConfigError, match="names itself 'sgp'.*overwrite.*its own name"):
        load_study(str(path))
    same = tmp_path / "same.yaml"
    same.write_text((STUDIES_DIR / "sgp.yaml").read_text())
    assert load_study(str(same)).name == "sgp"  # an exact copy is the same study


def test_a_country_that_is_not_the_studys_is_refused(wvs_file):
    """Issue 29, case 5: COUNTRY=AND used to build Andorra's data into Singapore's folder, saying 'Singapore'."""
    with pytest.raises(ValueError, match="country 'AND' is not the country of study 'sgp'.*write a study config"):
        dataset.build_dataset(wvs_file, country="AND", progress=False)


def test_tables_go_only_to_their_studys_folder(tmp_path):
    from subgroup_values.core.paths import PROCESSED

    ds = dataset.Dataset(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {"study": {"study": "tur"}})
    with pytest.raises(ValueError, match="belong in .*processed/tur.*overwrite"):
        dataset.save_dataset(ds, PROCESSED)


def test_make_rebuilds_the_dataset_when_country_changes_and_refuses_it_without_the_file(tmp_path):
    r = make(f"BUILD={tmp_path}", f"{tmp_path}/country.id", "COUNTRY=ZZZ")
    assert r.returncode == 0 and (tmp_path / "country.id").read_text().strip() == "country=ZZZ"
    mtime = (tmp_path / "country.id").stat().st_mtime_ns
    make(f"BUILD={tmp_path}", f"{tmp_path}/country.id", "COUNTRY=ZZZ")
    assert (tmp_path / "country.id").stat().st_mtime_ns == mtime  # unchanged: nothing downstream reruns
    make(f"BUILD={tmp_path}", f"{tmp_path}/country.id")
    assert (tmp_path / "country.id").read_text().strip() == "country="  # changed back: step 1 reruns
    r = make("-p", "-n", f"BUILD={tmp_path}", f"{tmp_path}/country.id")
    rule = next(line for line in r.stdout.splitlines()
                if line.startswith(f"{tmp_path}/notebooks/default/01_build_dataset.ipynb:"))
    assert f"{tmp_path}/country.id" in rule  # a prerequisite of step 1
    r = make("-n", "all", "COUNTRY=ZZZ", "WVS_SEARCH=/none", WVS_FILE="")
    assert r.returncode != 0 and "COUNTRY=ZZZ needs the survey file" in r.stderr


def test_cli_evaluate_takes_the_study_of_the_pairs(tmp_path, monkeypatch):
    """Issue 29, case 5: Turkey's pairs were scored with Singapore's prompts."""
    data = _data_copy(tmp_path)
    m = json.loads((data / "manifest.json").read_text())
    m["study"]["study"] = "tur"
    (data / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="holds the pairs of study 'tur'.*--study tur"):
        load_pairs(data / "pairs.csv", study="sgp")  # Singapore's prompts asked for Turkey's pairs
    assert load_pairs(data / "pairs.csv").attrs["study"] == "tur"  # the table says whose it is; the prompts follow


def _cli(*argv):
    from subgroup_values.pipeline.cli import main

    try:
        return main(list(argv))
    except SystemExit as exc:
        return exc


def test_cli_refuses_a_negative_limit(tmp_path, capsys):
    """Issue 29, case 9: --limit -5 evaluated all 10,177 pairs."""
    out = _cli("evaluate", "--model", "x", "--limit", "-5", "--out", str(tmp_path / "run"))
    assert out.code == 2 and "expected an integer >= 0, got -5" in capsys.readouterr().err
    out = _cli("evaluate", "--model", "x", "--batch-size", "0", "--out", str(tmp_path / "run"))
    assert out.code == 2 and "expected an integer >= 1, got 0" in capsys.readouterr().err
    out = _cli("evaluate", "--model", "x", "--timeout", "-1", "--out", str(tmp_path / "run"))
    assert out.code == 2 and "expected seconds > 0" in capsys.readouterr().err


def test_failed_requests_fail_the_step_so_that_make_reruns_it(tmp_path, capsys):
    """Issue 29, case 6: failures were promised a retry, but the step counted as done (exit 0)."""
    common = ("evaluate", "--backend", "openai_compat", "--model", "fake", "--scoring", "generate", "--limit", "4",
              "--concurrency", "1", "--cache", str(tmp_path / "c.sqlite"), "--n-boot", "10", "--quiet")
    with FakeOpenAI(["400"]) as srv:
        out = _cli(*common, "--base-url", srv.url, "--out", str(tmp_path / "run"))
    # (--limit 4: one whole question, every subgroup of it)
    assert isinstance(out, SystemExit) and re.search(r"1 of \d+ predictions failed", str(out)) and "rerun" in str(out)
    assert (tmp_path / "run" / "metrics.json").is_file()  # saved, but the step is not done
    with FakeOpenAI() as srv:
        assert _cli(*common, "--base-url", srv.url, "--out", str(tmp_path / "run")) == 0  # the rerun asks it again
    with FakeOpenAI(answer="") as srv:  # every reply empty: never exit 0 with accuracy 0
        out = _cli(*common, "--base-url", srv.url, "--out", str(tmp_path / "run2"), "--cache", "")
    assert isinstance(out, SystemExit) and "came back empty" in str(out)


TOKEN = "Zq8xR2mK9vL4pT7wN3bY6cH1"


@pytest.mark.parametrize("url, where", [
    ("http://alice:{t}@127.0.0.1:9/v1", "user:password@"),
    ("http://{t}@127.0.0.1:9/v1", "user:password@"),
    ("http://127.0.0.1:9/{t}/v1", "token in its path"),
    ("http://127.0.0.1:9/v1?api_key={t}", "key in its query"),
])
def test_a_credential_in_base_url_is_refused_without_being_repeated(url, where, capsys):
    """Issue 29, case 7 and the 'key in the URL's user part' case: refused at once, the secret never echoed."""
    url = url.format(t=TOKEN)
    with pytest.raises(ValueError, match=where) as err:
        make_backend("openai_compat", model="fake", base_url=url)
    assert TOKEN not in str(err.value)
    with pytest.raises(SystemExit, match=where) as err:
        notebook_parameters("smoke", "03_evaluate", {"base_url": url})
    assert TOKEN not in str(err.value) and TOKEN not in capsys.readouterr().out


def test_a_token_placeholder_in_base_url_is_filled_but_never_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWAY_TOKEN", TOKEN)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + TOKEN)
    with FakeOpenAI() as srv:
        url = srv.url.replace("/v1", "/${GATEWAY_TOKEN}/v1")
        assert _cli("evaluate", "--backend", "openai_compat", "--model", "fake", "--scoring", "generate", "--limit",
                    "2", "--cache", "", "--n-boot", "10", "--quiet", "--base-url", url,
                    "--out", str(tmp_path / "run")) == 0
        assert not any(TOKEN in json.dumps(b) for b in srv.requests)  # the token went in the path only
    text = (tmp_path / "run" / "metrics.json").read_text()
    assert TOKEN not in text and "${GATEWAY_TOKEN}" in text


def test_a_key_the_server_echoes_back_is_redacted_from_the_error(monkeypatch):
    from subgroup_values.backends.base import GenerateRequest

    monkeypatch.setenv("MY_LLM", "plainsecretvalue99")  # a key whose variable's name says nothing

    with FakeOpenAI(["400"]) as srv:  # the fake's error repeats the Authorization header, as some servers do
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, api_key_env="MY_LLM")
        [out] = be.generate([GenerateRequest(MSG)])
    assert "HTTP 400" in out.error and "plainsecretvalue99" not in out.error and "***" in out.error


def test_secrets_never_reach_an_executed_notebook_or_its_html(tmp_path, monkeypatch):
    """Issue 29, case 7: a token from the environment or in a URL's credentials is redacted from the executed
    notebook and its HTML copy (and so from what `make paper` publishes)."""
    monkeypatch.setenv("MY_SERVICE_TOKEN", TOKEN)
    monkeypatch.setenv("PROXY_URL", "http://bob:hunter2secret@example.org/v1")  # credentials in a URL
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("profile = 'smoke'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import os\nprint(os.environ['MY_SERVICE_TOKEN'])\n"
                                          "print(os.environ['PROXY_URL'])\n"
                                          "{'url': 'http://127.0.0.1/' + os.environ['MY_SERVICE_TOKEN'] + '/v1'}")]
    src = tmp_path / "97_secret.ipynb"
    nbformat.write(nb, src)
    out = run_notebook(src, "smoke", out_dir=tmp_path / "out")
    for f in (out, out.with_suffix(".html")):
        text = f.read_text()
        assert TOKEN not in text and "hunter2secret" not in text and "***" in text, f


def test_a_full_disk_keeps_the_previous_finished_run(tmp_path, monkeypatch):
    """Issue 29, case 8: a failed rewrite left a truncated parquet beside the old metrics.json."""
    import errno

    from subgroup_values.evaluation import runs

    pairs = dataset.sample_pairs(load_pairs(split="ood"), 5, seed=1)
    frame = evaluate.pair_frame(pairs, {q.qid: q for q in load_questions(rule="all")})
    preds = evaluate.score_pairs(frame.assign(choice=pd.array([1] * 5, dtype="Int64"), probs=[None] * 5,
                                              option_mass=1.0, reply=None, status="ok", error=""))
    summary = evaluate.summarise(preds, n_boot=10)
    run = tmp_path / "run"
    runs.save_run(preds, summary, run, {"first": True})
    before = {p.name: p.read_bytes() for p in run.iterdir()}

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    with pytest.raises(OSError, match="No space left"):
        runs.save_run(preds, summary, run, {"first": False})
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # intact, and no temporary file left
    monkeypatch.undo()
    from subgroup_values.core import provenance

    real = provenance.Path.write_text

    def full_text(self, *a, **k):
        if "metrics.json" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(provenance.Path, "write_text", full_text)
    with pytest.raises(OSError, match="No space left"):
        runs.save_run(preds, summary, run, {"first": False})
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_outputs_without_space_or_write_access_are_refused_before_the_run(tmp_path, monkeypatch):
    import shutil

    from subgroup_values.evaluation import runs

    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError, match="results folder .* cannot be written"):
        runs.check_outputs(tmp_path / "file" / "run")
    runs.check_outputs(tmp_path / "run", tmp_path / "cache" / "c.sqlite")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(OSError, match="results folder .* has 1 MB free, less than the 50 MB"):
        runs.check_outputs(tmp_path / "run", tmp_path / "cache" / "c.sqlite")


def test_a_hung_server_stops_the_run_after_its_timeout():
    """A server that never answers: the run stops after one request's attempts (seconds), with the timeout named,
    instead of waiting out every request (hours)."""
    import time

    from subgroup_values.backends.base import GenerateRequest
    from subgroup_values.backends.openai_compat import ServerUnreachable

    with FakeOpenAI(["hang"] * 20, hang_seconds=3) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url, backoff=0.01, max_retries=1,
                          timeout=0.3, concurrency=2)
        t0 = time.time()
        with pytest.raises(ServerUnreachable, match="timeout of 0.3 s.*No request has been answered"):
            be.generate([GenerateRequest(MSG)] * 12)
        assert time.time() - t0 < 10
    with pytest.raises(ValueError, match="timeout must be"):
        make_backend("openai_compat", model="fake", base_url=srv.url, timeout=-1)


@pytest.mark.parametrize("content", [b"this is not a database at all" * 10, b""])
def test_a_damaged_cache_file_is_named_with_what_to_do(tmp_path, content):
    from subgroup_values.backends.cache import CacheError

    path = tmp_path / "responses.sqlite"
    if content:
        path.write_bytes(content)
    else:  # a real cache, cut in half
        c = ResponseCache(path)
        c.put_many({f"k{i}": {"v": "x" * 200} for i in range(2000)})
        c.close()
        for extra in tmp_path.glob("responses.sqlite-*"):
            extra.unlink()
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheError, match=f"{path}.*move it aside"):
        c = ResponseCache(path)
        c.get_many([f"k{i}" for i in range(2000)])


def test_damaged_or_missing_model_weights_say_how_to_rebuild(tiny_model, tmp_path):
    import shutil

    from subgroup_values.backends.hf import ModelFolderError

    bad = tmp_path / "tiny-random"
    shutil.copytree(tiny_model, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelFolderError, match="could not be loaded.*missing or damaged.*make tiny-model"):
        make_backend("hf", str(bad))
    (bad / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="could not be loaded"):
        make_backend("hf", str(bad))


def test_an_adapter_for_another_base_model_is_refused(tiny_model, smollm2, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from subgroup_values.backends.hf import ModelFolderError

    net = AutoModelForCausalLM.from_pretrained(smollm2, dtype="float32")
    get_peft_model(net, LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "adapter")
    with pytest.raises(ModelFolderError, match="does not fit the model .*base model it was trained on"):
        make_backend("hf", str(tiny_model), adapter=str(tmp_path / "adapter"))
    (tmp_path / "adapter" / "provenance.json").write_text(json.dumps(
        {"data": {"base_model": {"path": str(smollm2), "weights": "0123456789abcdef"}}}))
    with pytest.raises(ModelFolderError, match="was trained on the base model"):
        make_backend("hf", str(tiny_model), adapter=str(tmp_path / "adapter"))


def test_an_unknown_finetune_flag_is_a_message(capsys):
    out = _cli("finetune", "--config", "configs/sft/smoke.yaml", "--lerning_rate", "1e-3")
    assert isinstance(out, SystemExit) and "--lerning_rate" in str(out) and "recipe's keys" in str(out)


def test_a_relative_survey_path_names_where_it_was_looked_for(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WVSFileError, match=f"relative.*{tmp_path}"):
        identify("data/raw/WVS.csv", tmp_path / "id.json")
    with pytest.raises(WVSFileError, match=f"relative.*{tmp_path}"):
        read_wvs("data/raw/WVS.csv")


def test_a_header_only_file_says_it_has_no_rows(tmp_path, survey_frame):
    path = tmp_path / "WVS_header.csv"
    survey_frame.head(0).to_csv(path, index=False)
    with pytest.raises(WVSFileError, match="header but no data rows"):
        read_wvs(path, items=ITEMS)


def test_a_trailing_delimiter_on_data_rows_keeps_every_column_under_its_name(tmp_path, survey_frame, survey):
    head = survey_frame.head(60)
    path = tmp_path / "WVS_trailing.csv"
    text = head.to_csv(index=False).splitlines()
    path.write_text("\n".join([text[0], *(line + "," for line in text[1:])]) + "\n")
    got = read_wvs(path, items=ITEMS, expected_respondents=None)
    assert list(got.data["D_INTERVIEW"]) == list(head["D_INTERVIEW"])
    want = survey.data.set_index("D_INTERVIEW").loc[head["D_INTERVIEW"], "Q1"]
    assert got.data["Q1"].fillna(-99).tolist() == want.fillna(-99).tolist()
    short = tmp_path / "WVS_short.csv"
    short.write_text("\n".join([text[0], *text[1:30], text[30].rsplit(",", 3)[0], *text[31:]]) + "\n")
    with pytest.raises(WVSFileError, match="line 31 has .* fields, the header"):
        read_wvs(short, items=ITEMS, expected_respondents=None)


def test_the_package_must_be_the_checkouts_own(tmp_path):
    from subgroup_values.core.paths import check_own_checkout

    other = tmp_path / "clone"
    (other / "src" / "subgroup_values").mkdir(parents=True)
    (other / "pyproject.toml").write_text("[project]\nname = 'subgroup-values'\n")
    with pytest.raises(SystemExit, match=f"belongs to the checkout {other}.*pip install --no-deps -e {other}"):
        check_own_checkout(cwd=other, prefix=str(REPO_ROOT / ".venv"))
    with pytest.raises(SystemExit, match="virtual environment belongs"):
        check_own_checkout(cwd=tmp_path, prefix=str(other / ".venv"))
    check_own_checkout(cwd=REPO_ROOT, prefix=str(REPO_ROOT / ".venv"))


def test_make_takes_a_model_folder_without_weights_for_unbuilt():
    """Steps depend on the weights file itself (a folder whose weights are gone is rebuilt, not taken for ready)."""
    r = make("-p", "-n", "PROFILE=smoke", "BUILD=/tmp/none", "models/tiny-random/model.safetensors", WVS_FILE="")
    lines = r.stdout.splitlines()
    evaluate_rule = next(line for line in lines if line.startswith("/tmp/none/notebooks/smoke/03_evaluate__base_ood.ipynb:"))
    assert "models/tiny-random/model.safetensors" in evaluate_rule
    assert any(line.startswith("models/tiny-random/model.safetensors: models/tiny-random/config.json") for line in lines)


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c.update(ood_strata=[list(reversed(c["train_strata"][-1]))]), "both training and OOD"),
    (lambda c: c["train_strata"].append(list(reversed(c["train_strata"][-1]))), "listed twice"),
    (lambda c: c["dimensions"].update(copy=dict(next(iter(c["dimensions"].values())))), "both read column"),
])
def test_a_study_config_is_checked_for_meaning(edit, expected):
    import yaml

    from subgroup_values.survey.study import STUDIES_DIR, StudyConfigError, parse_study

    cfg = yaml.safe_load((STUDIES_DIR / "sgp.yaml").read_text())
    multi = [s for s in cfg["train_strata"] if len(s) > 1]
    cfg["train_strata"] = [s for s in cfg["train_strata"] if len(s) == 1] + multi[:1]
    cfg["ood_strata"] = [s for s in cfg["ood_strata"] if frozenset(s) != frozenset(multi[0])]
    edit(cfg)
    with pytest.raises(StudyConfigError, match=expected):
        parse_study(cfg, "mine.yaml")


@pytest.mark.parametrize("value", ["inf", "1e9"])
def test_an_implausible_survey_weight_is_refused(tmp_path, survey_frame, value):
    frame = survey_frame.copy()
    frame["W_WEIGHT"] = frame["W_WEIGHT"].astype(object)
    frame.loc[5, "W_WEIGHT"] = value
    path = tmp_path / "WVS_weights.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(WVSFileError, match="W_WEIGHT must be a finite design weight"):
        read_wvs(path, items=ITEMS)


@pytest.mark.parametrize("column, value, expected", [
    ("counts", "[3, -1, 2, 5]", "counts \\(integers >= 0\\)"),
    ("weighted_counts", "[1.5, NaN, 2.0, 1.0]", "finite numbers >= 0"),
    ("n", "-4", "an integer >= 0"),
])
def test_counts_outside_their_domain_are_refused_with_where(tmp_path, column, value, expected):
    table = pd.read_csv(REPO_ROOT / "data" / "processed" / "pairs.csv").head(20)
    table[column] = table[column].astype(object)
    table.loc[7, column] = value
    table.to_csv(tmp_path / "pairs.csv", index=False)
    with pytest.raises(ValueError, match=f"column '{column}' of data row 8 .*{expected}"):
        load_pairs(tmp_path / "pairs.csv")


def test_a_stored_score_without_meaning_is_computed_again(tiny_model, tmp_path):
    """A cached record with NaN probabilities (stored by an older version) is recomputed, never reused."""
    pairs = dataset.sample_pairs(load_pairs(split="ood"), 3, seed=4)
    cache = ResponseCache(tmp_path / "c.sqlite")
    be = make_backend("hf", str(tiny_model), dtype="float32")
    first = evaluate.predict(be, pairs, cache=cache, progress=False)
    keys = [k for (k,) in cache._db.execute("SELECT key FROM responses").fetchall()]
    cache.put_many({keys[0]: {"probs": [float("nan")] * 4, "option_mass": 1.0, "status": "ok"}})
    again = evaluate.predict(be, pairs, cache=cache, progress=False)
    assert again.attrs["pairs_computed"] == 1 and (again.status == "ok").all()
    assert again.probs.tolist() == first.probs.tolist()


def test_a_url_placeholder_without_its_variable_is_refused(monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_TOKEN.*is not set"):
        make_backend("openai_compat", model="fake", base_url="http://127.0.0.1:9/${NO_SUCH_TOKEN}/v1")


def test_a_step_whose_run_recorded_failures_is_not_done(tmp_path):
    """Issue 29, case 6, as make sees it: the executed notebook is the step's target; a run with a failed request
    is saved, but its notebook fails, so that make runs the step again (and only the failed request is asked)."""
    import shutil

    run_name = f"fault_test_{os.getpid()}"
    params = {"backend": "openai_compat", "model": "fake", "scoring": "generate", "limit": 4, "concurrency": 1,
              "cache_file": str(tmp_path / "c.sqlite"), "n_boot": 10, "run_name": run_name, "timeout": 5,
              "fig_dir": str(tmp_path / "figures")}
    try:
        with FakeOpenAI(["400"]) as srv:
            with pytest.raises(Exception, match="1 of 4 predictions failed"):
                run_notebook(REPO_ROOT / "notebooks" / "03_evaluate.ipynb", "smoke", params | {"base_url": srv.url},
                             out_dir=tmp_path / "out", html=False)
        assert not (tmp_path / "out" / "03_evaluate.ipynb").exists()
        assert (tmp_path / "out" / "03_evaluate.failed.ipynb").exists()
        assert (REPO_ROOT / "results" / "smoke" / run_name / "metrics.json").is_file()  # saved, not done
    finally:
        shutil.rmtree(REPO_ROOT / "results" / "smoke" / run_name, ignore_errors=True)


def test_a_declared_code_the_file_never_holds_is_refused(wvs_file, tmp_path, capsys):
    import yaml

    from subgroup_values.survey.study import STUDIES_DIR

    cfg = yaml.safe_load((STUDIES_DIR / "sgp.yaml").read_text())
    cfg["study"] = "sgp_typo"
    codes = cfg["dimensions"]["religion"]["codes"]
    codes[99] = dict(next(iter(codes.values())), label="Typo")
    path = tmp_path / "sgp_typo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="dimension 'religion' \\(column Q289\\): declared code\\(s\\) \\{99: 'Typo'\\} "
                                         "never occur"):
        dataset.build_dataset(wvs_file, study=str(path), progress=False)
    assert "are not declared in the study config" in capsys.readouterr().out  # Q290's other codes, reported


def test_an_empty_or_renamed_manifest_is_no_check(tmp_path):
    """Lead's review of this branch: a manifest with no files verified anything; a renamed entry skipped the check."""
    data = _data_copy(tmp_path)
    m = json.loads((data / "manifest.json").read_text())
    (data / "manifest.json").write_text(json.dumps(m | {"files": {}}))
    with pytest.raises(ValueError, match="an empty or partial check is no check"):
        dataset.verify(data)
    m["files"]["pairs"]["name"] = "pairs_v2.csv"
    (data / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="does not list pairs.csv"):
        load_pairs(data / "pairs.csv")


def test_a_boolean_is_no_count_and_top_logprobs_is_in_the_chat_cache_key():
    with pytest.raises(SystemExit, match="'limit' = True is invalid"):
        notebook_parameters("smoke", "03_evaluate", {"limit": True})
    a = make_backend("openai_compat", model="m", base_url="http://127.0.0.1:9/v1")
    b = make_backend("openai_compat", model="m", base_url="http://127.0.0.1:9/v1", top_logprobs=1)
    assert a.identity() != b.identity() and "top_logprobs" not in a.identity()


def test_a_run_without_a_single_answer_fails():
    from subgroup_values.evaluation import runs

    preds = pd.DataFrame({"choice": pd.array([None, None], dtype="Int64"), "status": ["no_option_logprob"] * 2,
                          "error": ["", ""]})
    with pytest.raises(RuntimeError, match="None of the 2 predictions has an answer"):
        runs.require_complete(preds)
    local = preds.assign(status=["empty", "unparseable"])
    runs.require_complete(local, remote=False)  # a local model that answers nothing: that is its result


def test_a_tiny_survey_weight_is_refused(tmp_path, survey_frame):
    frame = survey_frame.copy()
    frame.loc[: len(frame) // 2, "W_WEIGHT"] = 1e-9
    path = tmp_path / "WVS_tiny.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(WVSFileError, match="between 0.001 and 100"):
        read_wvs(path, items=ITEMS)


def test_the_completions_cache_key_follows_the_tokenizer_folders_content(tiny_model, tmp_path):
    import shutil

    tok = tmp_path / "tok"
    shutil.copytree(tiny_model, tok)
    be = lambda: make_backend("openai_compat", model="m", base_url="http://127.0.0.1:9/v1",  # noqa: E731
                              endpoint="completions", tokenizer=str(tok))
    before = be().identity()
    (tok / "chat_template.jinja").write_text((tok / "chat_template.jinja").read_text() + " ")
    assert be().identity() != before


# ---- issue 29, round two ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, secret", [
    ("http://127.0.0.1:9/v1?pwd=hunter22", "hunter22"),
    ("http://127.0.0.1:9/v1;token=abc123XYZ", "abc123XYZ"),
    ("http://127.0.0.1:9/v1?api-version=2024-06-01&session=s3cr3tv4lue", "s3cr3tv4lue"),
])
def test_any_query_or_path_parameter_of_base_url_is_treated_as_a_credential(url, secret, tmp_path, capsys):
    """A query value or ;path parameter whose key is not a known harmless one is refused in base_url and
    redacted from every record (?pwd=, ;token=, ?session= reached metrics.json verbatim)."""
    from subgroup_values.core.provenance import redact, url_secrets, write_json

    assert url_secrets(url)
    with pytest.raises(ValueError, match="carries") as err:
        make_backend("openai_compat", model="fake", base_url=url)
    assert secret not in str(err.value)
    with pytest.raises(SystemExit) as err:
        notebook_parameters("smoke", "03_evaluate", {"base_url": url})
    assert secret not in str(err.value) and secret not in capsys.readouterr().out
    write_json({"base_url": url, "note": f"asked {url}/chat/completions"}, tmp_path / "metrics.json")
    text = (tmp_path / "metrics.json").read_text()
    assert secret not in text and "127.0.0.1:9/v1" in text and secret not in redact(url)
    assert "api-version=2024-06-01" in redact(url) or "api-version" not in url  # harmless keys stay readable
    assert url_secrets("http://127.0.0.1:9/v1?api-version=2024-06-01") == []


def test_endpoint_paths_are_joined_before_the_query_of_base_url():
    """Azure's base_url ends in ?api-version=...: the route goes before the query, and the server is asked there."""
    from subgroup_values.backends.base import GenerateRequest

    paths = []
    with FakeOpenAI(mutate=lambda reply, path: paths.append(path) or reply) as srv:
        be = make_backend("openai_compat", model="fake", base_url=srv.url + "?api-version=2024-06-01")
        assert be.url == srv.url + "/chat/completions?api-version=2024-06-01"
        assert be.completions_url == srv.url + "/completions?api-version=2024-06-01"
        [out] = be.generate([GenerateRequest(MSG)])
    assert out == "Answer: 3" and paths == ["/v1/chat/completions?api-version=2024-06-01"]


def test_a_modal_answer_off_the_items_scale_is_refused_where_the_pairs_are_loaded(tmp_path):
    """A mode of 4 on a 2-point item passed every pairs check and crashed after scoring (IndexError); so would
    counts of another width than the item's scale."""
    path = tmp_path / "pairs.csv"  # a folder without a manifest: a table of one's own, still checked for meaning
    text = (REPO_ROOT / "data" / "processed" / "pairs.csv").read_text()
    path.write_text(text)
    assert len(load_pairs(path)) == text.count("\n") - 1  # the committed table passes
    frame = pd.read_csv(path)
    i = int((frame.qid == "Q7").to_numpy().argmax())  # Q7: 1 Important, 2 Not mentioned
    for col, value in (("modal_answers", "[4]"), ("population_modal_answers", "[1, 3]"), ("modal_answer", 4),
                       ("counts", "[3, 4, 5]"), ("weighted_counts", "[3.5]")):
        bad = frame.copy()
        bad[col] = bad[col].astype(object)
        bad.loc[i, col] = value
        bad.to_csv(path, index=False)
        with pytest.raises(ValueError, match=rf"column '{col}' of data row {i + 1} \(qid Q7\).*scale \[1, 2\]"):
            load_pairs(path)


def _sgp_config(**change) -> dict:
    import yaml

    from subgroup_values.survey.study import STUDIES_DIR

    cfg = yaml.safe_load((STUDIES_DIR / "sgp.yaml").read_text())
    return {**cfg, "study": "sgp_copy", **change}


def test_a_dimension_defined_by_a_value_item_is_refused_as_target_leakage():
    from subgroup_values.survey.study import StudyConfigError, parse_study

    cfg = _sgp_config()
    cfg["dimensions"] = {**cfg["dimensions"], "religion": {**cfg["dimensions"]["religion"], "column": "Q6"}}
    with pytest.raises(StudyConfigError, match=r"dimension 'religion' reads column Q6, which is question Q6 .*"
                                               r"Religion.*target leakage"):
        parse_study(cfg, "leak.yaml")


@pytest.mark.parametrize("change, said", [({"country_name": "Turkey"}, "country_code 702 is Singapore"),
                                          ({"country_code": 792}, "country_code 792 is Turkey"),
                                          ({"country": "TUR"}, "country_code 702 is Singapore"),
                                          ({"country_code": 7020}, "ISO 3166 numeric")])
def test_a_country_code_and_name_of_two_countries_are_refused(change, said):
    from subgroup_values.survey.study import StudyConfigError, parse_study

    with pytest.raises(StudyConfigError, match=said):
        parse_study(_sgp_config(**change), "cname.yaml")


def test_a_country_code_the_file_does_not_hold_is_refused(wvs_file):
    from subgroup_values.survey.study import parse_study

    study = parse_study(_sgp_config(country_code=703, country_name="Singapore"), "cc.yaml")  # 703: no known country
    with pytest.raises(ValueError, match=r"country_code 703 .*hold B_COUNTRY \[702\]: fix country_code"):
        dataset.build_dataset(wvs_file, study=study, progress=False)


def test_a_single_country_file_lacking_items_the_study_does_not_drop_is_refused(tmp_path, survey_frame):
    """Q1-Q20 deleted from a file without A_WAVE built 194 questions with one console line."""
    from subgroup_values.survey.study import load_study
    from subgroup_values.survey.wvs import WVSFileError

    items = ["Q1", "Q2", "Q46", "Q164"]
    cols = ["version", "doi", "B_COUNTRY_ALPHA", "B_COUNTRY", "D_INTERVIEW", "W_WEIGHT", "Q260", "X003R", "Q290",
            "Q289", *items]
    path = tmp_path / "single.csv"
    survey_frame[cols].head(120).drop(columns=["Q1", "Q2"]).to_csv(path, index=False)
    with pytest.raises(WVSFileError, match=r"lacks 2 value item\(s\).*\['Q1', 'Q2'\].*absent_items"):
        read_wvs(path, items=items)
    with pytest.raises(WVSFileError, match=r"lacks 1 value item\(s\).*\['Q2'\]"):
        read_wvs(path, items=items, may_lack=("Q1",))
    assert read_wvs(path, items=items, may_lack=("Q1", "Q2")).absent_items == ["Q1", "Q2"]
    assert load_study("tur").absent_items == ("Q245",)  # Turkey did not ask Q245: its study says so
