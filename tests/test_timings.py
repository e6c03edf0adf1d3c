"""Step timings and the generated run-time sentences: a budget verdict only where it follows from the timings."""

from __future__ import annotations

import pandas as pd
import pytest


def test_a_step_run_on_its_own_keeps_the_other_steps_timings(tmp_path):
    from subgroup_values.reporting.timings import step_timings

    tsv = tmp_path / "timings.tsv"
    tsv.write_text("2026-12-01T10:00:00\t05_fairness\t120\t900\n")
    previous = tmp_path / "timings.csv"
    previous.write_text("step,minutes,peak_mb,finished,note\n01_build_dataset,0.2,425,2026-11-24T08:02:24,\n"
                        "05_fairness,0.5,800,2026-11-24T09:00:00,\n")
    t = step_timings(tsv, previous=previous)
    assert list(t.step) == ["01_build_dataset", "05_fairness"]
    assert t.set_index("step").loc["05_fairness", "minutes"] == 2.0
    assert list(step_timings(tsv).step) == ["05_fairness"]
    # the runner's six columns (with the machine's load and the step's CPU seconds) read beside the old four
    tsv.write_text("2026-12-01T10:00:00\t05_fairness\t120\t900\n2026-12-01T11:00:00\t08_headroom\t60\t700\t3.10\t55.0\n")
    mixed = step_timings(tsv).set_index("step")
    assert mixed.loc["08_headroom", "load_mean"] == 3.1 and pd.isna(mixed.loc["05_fairness", "load_mean"])
    with pytest.raises(ValueError, match="expected 4, 6 or 7"):
        bad = tmp_path / "bad.tsv"
        bad.write_text("2026-12-01T10:00:00\t05_fairness\t120\n")
        step_timings(bad)


def test_the_runner_records_the_load_of_each_step(tmp_path):
    from subgroup_values.pipeline import runner
    from subgroup_values.reporting.timings import step_timings

    sampler = runner._LoadSampler(every=0.05).start()
    import time

    time.sleep(0.2)
    mean = sampler.stop()
    assert mean >= 0 and len(sampler.samples) >= 2
    runner._log_timing(tmp_path, "05_fairness", 12.0, mean, 3.5)
    t = step_timings(tmp_path / "timings.tsv")
    assert t.load_mean.iloc[0] == pytest.approx(round(mean, 2))


def test_timing_claims_split_make_all_from_its_separate_targets_and_judge_the_budget():
    import pandas as pd

    from subgroup_values.reporting import timings

    t = pd.DataFrame({"step": ["01_build_dataset", "04_finetune", "04_finetune__sft_distribution",
                               "03_evaluate__sft_distribution_ood", "07_paper_comparison"],
                      "minutes": [0.5, 80.0, 9.0, 12.0, 0.3], "peak_mb": [1, 2, 3, 4, 5],
                      "load_mean": [1.9, 2.0, 1.9, 2.0, 1.0], "cores": [2, 2, 2, 2, 2],
                      "finished": ["2026-12-01T00:00:00", "2026-12-01T01:20:00", "2026-12-01T01:29:00",
                                   "2026-12-01T01:41:00", "2026-11-20T00:00:00"],
                      "from_cache": ["", "False", "False", "False", ""], "note": ""})
    plan = {"01_build_dataset", "04_finetune"}
    by = {c.id: c for c in timings.timing_claims(t, "default", "x", expected=plan)}
    claim = by["timings.default.make_all"]
    assert claim.estimate == 80.5 and claim.verdict == "within the budget", claim.sentence
    # step 7 (it writes this table; its row is an earlier run's) is not counted
    assert "its 2 steps' recorded wall times sum to 80.5 min on 2 CPU cores" in claim.sentence
    assert ("recorded in one session (2026-11-30 23:59 to 2026-12-01 01:20; longest step 04_finetune, 80.0 min): "
            "within the budget") in claim.sentence
    assert "every model step computed its answers itself" in claim.sentence
    assert by["timings.default.make_distribution"].estimate == 21.0
    assert "2 steps" in by["timings.default.make_distribution"].sentence
    over = timings.timing_claims(t.assign(minutes=[0.5, 95.0, 9.0, 12.0, 0.3]), "default", "x", expected=plan)
    assert over[0].verdict == "over the budget" and "over the budget of 90 min" in over[0].sentence
    # the sum is shown to one decimal: 89.6 is not printed as a whole 90 beside "within"
    near = timings.timing_claims(t.assign(minutes=[0.5, 89.1, 9.0, 12.0, 0.3]), "default", "x", expected=plan)
    assert "sum to 89.6 min" in near[0].sentence and near[0].verdict == "within the budget"
    # another profile has no separate targets: every step is make all's; it is timed, not judged
    other = timings.timing_claims(t, "disjoint", "x", expected=set())
    assert len(other) == 1 and other[0].estimate == 101.5 and other[0].verdict == ""
    assert timings.timing_claims(t.iloc[:0], "default", "x") == []

    def verdict_of(table, expected=plan):
        (c, *_) = timings.timing_claims(table, "default", "x", expected=expected)
        return c.verdict, c.sentence

    # no verdict unless it can be given: a plan step without a time, a model step whose cache use is not
    # recorded, a fine-tune resumed from a checkpoint, steps recorded in separate sessions
    v, sentence = verdict_of(t, expected=plan | {"05_fairness"})
    assert v == "" and "1 step of the plan has no recorded time (05_fairness)" in sentence
    v, sentence = verdict_of(t.assign(from_cache=["", "", "False", "False", ""]))
    assert v == "" and "whether 1 model step computed its answers itself (not from the response cache, not resumed) is not recorded" in sentence
    v, sentence = verdict_of(t.assign(from_cache=["", "True", "False", "False", ""]))
    assert v == "" and "1 fine-tune resumed from a checkpoint" in sentence
    v, sentence = verdict_of(t.assign(finished=["2026-11-29T00:00:00", *t.finished[1:]]))
    assert v == "" and "recorded in 2 sessions (2026-11-28 23:59 to 2026-12-01 01:20" in sentence
    assert "steps more than 5 min apart: the sum may not be one run's wall time" in sentence
    # the recorded load says which steps shared the machine; rows without one are counted
    loaded = timings.timing_claims(t.assign(load_mean=[1.9, 3.4, float("nan"), 2.0, 1.0]), "default", "x", expected=plan)
    assert "1 of its 2 steps (80.0 min) ran with the machine's mean load above 2.5" in loaded[0].sentence
    assert loaded[0].extra["steps_over_quiet_load"] == 1 and loaded[0].verdict == "within the budget"
    assert "; 1 step without a recorded load" in loaded[1].sentence
    silent = timings.timing_claims(t.assign(load_mean=float("nan")), "default", "x", expected=plan)
    assert "no step's machine load was recorded, so whether other work shared the cores is not known" in silent[0].sentence
    unknown_cores = timings.timing_claims(t.drop(columns="cores"), "default", "x", expected=plan)
    assert "CPU cores not recorded" in unknown_cores[0].sentence and "on 2 CPU cores" not in unknown_cores[0].sentence
    # by default the expected steps are the profile's plan: a table of two steps lacks most of them
    (default_plan, *_) = timings.timing_claims(t, "default", "x")
    assert default_plan.verdict == "" and "steps of the plan have no recorded time" in default_plan.sentence
    # what a reviewer tried: each must withhold the verdict (or not crash), never say "within"
    v, sentence = verdict_of(t.assign(finished=["garbage", *t.finished[1:]]))
    assert v == "" and "finish times cannot be read" in sentence
    v, sentence = verdict_of(t.assign(minutes=[float("nan"), 80.0, 9.0, 12.0, 0.3]))
    assert v == "" and "1 step without a readable time" in sentence
    v, sentence = verdict_of(t.assign(cores=[16, 16, 16, 16, 16]))
    assert v == "" and "the budget is for 2 CPU cores and the steps ran on 16" in sentence
    v, sentence = verdict_of(t.assign(minutes=[0.5, 89.497, 9.0, 12.0, 0.3]))
    assert v == "" and "within rounding of the budget" in sentence
    dup = pd.concat([t, t.iloc[[1]].assign(finished="2026-12-01T01:21:00", minutes=1.0)], ignore_index=True)
    (c, *_) = timings.timing_claims(dup, "default", "x", expected=plan)
    assert c.estimate == 1.5  # a step recorded twice counts once, its last run
    one = timings.timing_claims(t.iloc[[0]], "disjoint", "x", expected=set())
    assert "its 1 step's recorded wall times" in one[0].sentence


def test_a_step_that_took_its_answers_from_the_cache_is_not_judged_against_the_budget(tmp_path):
    """A rerun whose evaluations came from the response cache is minutes long: its sum is not a fresh machine's
    time, so the budget verdict is withheld and the sentence says why (the runs' records say what was computed)."""
    import json

    from subgroup_values.reporting import timings

    res = tmp_path / "results"
    def record(run, computed, date, **more):
        (res / run).mkdir(parents=True, exist_ok=True)
        (res / run / "metrics.json").write_text(json.dumps({"pairs": 10, "timing": {"pairs_computed": computed},
                                                            "date": date, **more}))

    record("base_ood", 0, "2026-12-01T09:59:50")
    record("sft_ood", 10, "2026-12-01T10:09:58")
    tsv = tmp_path / "timings.tsv"
    tsv.write_text("2026-12-01T10:00:00\t03_evaluate__base_ood\t30\t900\t1.0\t20\n"
                   "2026-12-01T10:10:00\t03_evaluate__sft_ood\t600\t900\t1.9\t900\t2\n"
                   "2026-12-01T10:11:00\t05_fairness\t60\t900\t1.9\t50\t2\n")
    t = timings.step_timings(tsv, results_dir=res).set_index("step")
    assert bool(t.loc["03_evaluate__base_ood", "from_cache"]) and not bool(t.loc["03_evaluate__sft_ood", "from_cache"])
    assert t.loc["03_evaluate__base_ood", "note"] == "0 of 10 pairs computed, the rest from the response cache"
    assert pd.isna(t.loc["05_fairness", "from_cache"])
    written = tmp_path / "timings.csv"
    t.reset_index().to_csv(written, index=False)
    steps = set(t.index)
    (claim,) = timings.timing_claims(pd.read_csv(written, keep_default_na=False), "default", "x", expected=steps)
    assert claim.verdict == "" and "not judged against the budget of 90 min" in claim.sentence
    assert "1 step (0.5 min with cached answers) took model answers from the response cache" in claim.sentence and claim.extra["steps_from_cache"] == 1
    assert "on 2 CPU cores" in claim.sentence and "(1 step without a recorded core count)" in claim.sentence
    # the same steps computed by the model are judged
    fresh = pd.read_csv(written, keep_default_na=False).assign(from_cache="False", cores=2)
    assert timings.timing_claims(fresh, "default", "x", expected=steps)[0].verdict == "within the budget"
    # the committed table alone (no timings here) is checked again against the records: a record now saying
    # the answers were computed clears the mark; one without the count leaves the step unknown, so not judged
    record("base_ood", 10, "2026-12-01T09:59:55")
    kept = timings.step_timings(tmp_path / "none.tsv", results_dir=res, previous=written).set_index("step")
    assert not bool(kept.loc["03_evaluate__base_ood", "from_cache"])
    # a record another run wrote (a later `subgroup-values evaluate --out` into the same folder) is not this row's
    record("base_ood", 10, "2026-12-03T08:00:00")
    other = timings.step_timings(tmp_path / "none.tsv", results_dir=res, previous=written).set_index("step")
    assert pd.isna(other.loc["03_evaluate__base_ood", "from_cache"])
    assert "is not this row's run" in other.loc["03_evaluate__base_ood", "note"]
    record("base_ood", None, "2026-12-01T09:59:55")
    fresh.assign(from_cache="").to_csv(tmp_path / "blank.csv", index=False)
    blank = timings.step_timings(tmp_path / "none.tsv", results_dir=res, previous=tmp_path / "blank.csv")
    (unknown,) = timings.timing_claims(blank, "default", "x", expected=steps)
    assert unknown.verdict == "" and "is not recorded" in unknown.sentence
    # the open-ended step records what it computed, not what it needed: some answers computed is not "all"
    (res / "open_ended").mkdir()
    (res / "open_ended" / "provenance.json").write_text(json.dumps({
        "date": "2026-12-01T10:20:00", "timings": {"answers base": [50.0, 1], "answers system": [0.0, 0]}}))
    (res / "finetune").mkdir()
    (res / "finetune" / "sft_run.json").write_text(json.dumps({
        "date": "2026-12-01T10:40:00", "data": {"train_pairs": 10},
        "training": {"seconds": 600, "examples_per_second": 1.0}}))
    tsv2 = tmp_path / "t2.tsv"
    tsv2.write_text("2026-12-01T10:20:10\t06_open_ended\t60\t900\t1.0\t20\t2\n"
                    "2026-12-01T10:40:10\t04_finetune\t600\t900\t1.0\t20\t2\n")
    marks = timings.step_timings(tsv2, res / "finetune", results_dir=res).set_index("step")
    assert pd.isna(marks.loc["06_open_ended", "from_cache"]) and "needed is not recorded" in marks.loc["06_open_ended", "note"]
    assert pd.isna(marks.loc["04_finetune", "from_cache"])  # no resumed_from: not known whether it resumed
    with pytest.raises(FileNotFoundError, match="run `make all` for the profile first"):
        timings.step_timings(tmp_path / "none.tsv", results_dir=res)
    # a previous table without the column still merges
    again = timings.step_timings(tsv, results_dir=res, previous=written)
    assert list(again.columns)[-2:] == ["from_cache", "note"]
