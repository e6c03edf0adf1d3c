"""README's results are generated from results/ and data/processed/: a test ties them together."""

from __future__ import annotations

import pandas as pd
import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.reporting import report


def test_readme_results_block_matches_results():
    text = (REPO_ROOT / "README.md").read_text()
    assert report.README_BEGIN in text and report.README_END in text
    current = text.split(report.README_BEGIN, 1)[1].split(report.README_END, 1)[0]
    expected = "\n" + report.readme_block(REPO_ROOT / "results" / "default", REPO_ROOT / "data" / "processed")
    assert current == expected, "README's results block is stale: run `make report` (notebook 07) to rewrite it."


def test_update_readme_replaces_only_the_block(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_BEGIN}\nold 0.292\n{report.README_END}\noutro\n")
    assert report.update_readme(readme, "new\n")
    assert readme.read_text() == f"intro\n{report.README_BEGIN}\nnew\n{report.README_END}\noutro\n"
    assert not report.update_readme(readme, "new\n")
    (tmp_path / "bad.md").write_text("no markers")
    with pytest.raises(ValueError, match="lacks the markers"):
        report.update_readme(tmp_path / "bad.md", "x")


def test_the_papers_models_stand_beside_singapore_runs_only(monkeypatch):
    from subgroup_values.reporting.report import beside_paper

    def summary(acc):
        return pd.DataFrame({"subset": ["all", "all"], "metric": ["accuracy", "nmae"], "estimate": [acc, 0.2]})

    summaries = {"model": summary(0.4), "population_mode": summary(0.8)}
    sgp = beside_paper(summaries, "base_ood", "sgp")
    assert "reported" in set(sgp.model.str.extract(r"\((\w+)\)")[0]) and len(sgp) > 2
    tur = beside_paper(summaries, "base_ood", "tur")
    assert list(tur.model) == ["base_ood (ours)", "population_mode (baseline)"]


def test_a_step_run_on_its_own_keeps_the_other_steps_timings(tmp_path):
    from subgroup_values.reporting.report import step_timings

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
    from subgroup_values.reporting.report import step_timings

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

    from subgroup_values.reporting import report

    t = pd.DataFrame({"step": ["01_build_dataset", "04_finetune", "04_finetune__sft_distribution",
                               "03_evaluate__sft_distribution_ood", "07_paper_comparison"],
                      "minutes": [0.5, 80.0, 9.0, 12.0, 0.3], "peak_mb": [1, 2, 3, 4, 5],
                      "load_mean": [1.9, 2.0, 1.9, 2.0, 1.0], "cores": [2, 2, 2, 2, 2],
                      "finished": ["2026-12-01T00:00:00", "2026-12-01T01:20:00", "2026-12-01T01:29:00",
                                   "2026-12-01T01:41:00", "2026-11-20T00:00:00"],
                      "from_cache": ["", "False", "False", "False", ""], "note": ""})
    plan = {"01_build_dataset", "04_finetune"}
    by = {c.id: c for c in report.timing_claims(t, "default", "x", expected=plan)}
    claim = by["timings.default.make_all"]
    assert claim.estimate == 80.5 and claim.verdict == "within the budget", claim.sentence
    # step 7 (it writes this table; its row is an earlier run's) is not counted
    assert "its 2 steps' recorded wall times sum to 80.5 min on 2 CPU cores" in claim.sentence
    assert "recorded in one session, 2026-11-30 23:59 to 2026-12-01 01:20: within the budget" in claim.sentence
    assert "every model step computed its answers itself" in claim.sentence
    assert by["timings.default.make_distribution"].estimate == 21.0
    assert "2 steps" in by["timings.default.make_distribution"].sentence
    over = report.timing_claims(t.assign(minutes=[0.5, 95.0, 9.0, 12.0, 0.3]), "default", "x", expected=plan)
    assert over[0].verdict == "over the budget" and "over the budget of 90 min" in over[0].sentence
    # the sum is shown to one decimal: 89.6 is not printed as a whole 90 beside "within"
    near = report.timing_claims(t.assign(minutes=[0.5, 89.1, 9.0, 12.0, 0.3]), "default", "x", expected=plan)
    assert "sum to 89.6 min" in near[0].sentence and near[0].verdict == "within the budget"
    # another profile has no separate targets: every step is make all's; it is timed, not judged
    other = report.timing_claims(t, "disjoint", "x", expected=set())
    assert len(other) == 1 and other[0].estimate == 101.5 and other[0].verdict == ""
    assert report.timing_claims(t.iloc[:0], "default", "x") == []

    def verdict_of(table, expected=plan):
        (c, *_) = report.timing_claims(table, "default", "x", expected=expected)
        return c.verdict, c.sentence

    # no verdict unless it can be given: a plan step without a time, a model step whose cache use is not
    # recorded, a fine-tune resumed from a checkpoint, steps recorded in separate sessions
    v, sentence = verdict_of(t, expected=plan | {"05_fairness"})
    assert v == "" and "1 of the plan's steps have no recorded time (05_fairness)" in sentence
    v, sentence = verdict_of(t.assign(from_cache=["", "", "False", "False", ""]))
    assert v == "" and "whether 1 model step computed its answers or took them from the response cache is not recorded" in sentence
    v, sentence = verdict_of(t.assign(from_cache=["", "True", "False", "False", ""]))
    assert v == "" and "1 fine-tune resumed from a checkpoint" in sentence
    v, sentence = verdict_of(t.assign(finished=["2026-11-29T00:00:00", *t.finished[1:]]))
    assert v == "" and "recorded in 2 sessions between 2026-11-28 23:59 and" in sentence
    assert "the sum is not one run's wall time" in sentence
    # the recorded load says which steps shared the machine; rows without one are counted
    loaded = report.timing_claims(t.assign(load_mean=[1.9, 3.4, float("nan"), 2.0, 1.0]), "default", "x", expected=plan)
    assert "1 of its 2 steps (80.0 min) ran with the machine's mean load above 2.5" in loaded[0].sentence
    assert loaded[0].extra["steps_over_quiet_load"] == 1 and loaded[0].verdict == "within the budget"
    assert "1 step without a recorded load" in loaded[1].sentence
    silent = report.timing_claims(t.assign(load_mean=float("nan")), "default", "x", expected=plan)
    assert "no step's machine load was recorded, so whether other work shared the cores is not known" in silent[0].sentence
    unknown_cores = report.timing_claims(t.drop(columns="cores"), "default", "x", expected=plan)
    assert "CPU cores not recorded" in unknown_cores[0].sentence and "on 2 CPU cores" not in unknown_cores[0].sentence
    # by default the expected steps are the profile's plan: a table of two steps lacks most of them
    (default_plan, *_) = report.timing_claims(t, "default", "x")
    assert default_plan.verdict == "" and "of the plan's steps have no recorded time" in default_plan.sentence


def test_the_headroom_figure_says_what_it_shows_in_the_studys_words():
    import matplotlib

    matplotlib.use("Agg")
    from subgroup_values.core.paths import REPO_ROOT
    from subgroup_values.reporting import plots

    table = pd.read_csv(REPO_ROOT / "results/default/headroom/headroom.csv")
    fig = plots.headroom(table, models=["base_ood", "sft_ood", "sft_distribution_ood"])
    assert fig._suptitle is not None and "paper protocol" in fig._suptitle.get_text()
    assert fig.legends and any("interval" in t.get_text() for t in fig.legends[0].get_texts())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "zero-shot model" in labels and "noise floor" in labels
    assert not [lab for lab in labels if "_" in lab], labels  # no run identifiers
    plt = matplotlib.pyplot
    plt.close(fig)


def test_bars_beside_the_paper_show_our_intervals():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from subgroup_values.reporting import plots
    from subgroup_values.reporting.report import beside_paper

    def summary(acc):
        return pd.DataFrame({"subset": ["all", "all"], "metric": ["accuracy", "nmae"], "estimate": [acc, 0.2],
                             "lo": [acc - 0.05, 0.18], "hi": [acc + 0.05, 0.22]})

    both = beside_paper({"model": summary(0.4), "population_mode": summary(0.8)}, "base_ood", "sgp")
    assert both.loc[0, ["acc_lo", "acc_hi"]].tolist() == pytest.approx([0.35, 0.45]) and both.acc_lo.isna().any()
    fig, ax = plt.subplots()
    plots.model_bars(both, "acc", ax=ax)
    assert len(ax.collections) >= 1  # the error bars of ours and the baselines
    plt.close(fig)


def test_a_step_that_took_its_answers_from_the_cache_is_not_judged_against_the_budget(tmp_path):
    """A rerun whose evaluations came from the response cache is minutes long: its sum is not a fresh machine's
    time, so the budget verdict is withheld and the sentence says why (the runs' records say what was computed)."""
    import json

    from subgroup_values.reporting import report

    res = tmp_path / "results"
    for run, computed in (("base_ood", 0), ("sft_ood", 10)):
        (res / run).mkdir(parents=True)
        (res / run / "metrics.json").write_text(json.dumps({"pairs": 10, "timing": {"pairs_computed": computed}}))
    tsv = tmp_path / "timings.tsv"
    tsv.write_text("2026-12-01T10:00:00\t03_evaluate__base_ood\t30\t900\t1.0\t20\n"
                   "2026-12-01T10:10:00\t03_evaluate__sft_ood\t600\t900\t1.9\t900\t2\n"
                   "2026-12-01T10:11:00\t05_fairness\t60\t900\t1.9\t50\t2\n")
    t = report.step_timings(tsv, results_dir=res).set_index("step")
    assert bool(t.loc["03_evaluate__base_ood", "from_cache"]) and not bool(t.loc["03_evaluate__sft_ood", "from_cache"])
    assert t.loc["03_evaluate__base_ood", "note"] == "0 of 10 pairs computed, the rest from the response cache"
    assert pd.isna(t.loc["05_fairness", "from_cache"])
    written = tmp_path / "timings.csv"
    t.reset_index().to_csv(written, index=False)
    steps = set(t.index)
    (claim,) = report.timing_claims(pd.read_csv(written, keep_default_na=False), "default", "x", expected=steps)
    assert claim.verdict == "" and "not judged against the budget of 90 min" in claim.sentence
    assert "1 of its 3 steps (0.5 min with cached answers)" in claim.sentence and claim.extra["steps_from_cache"] == 1
    assert "on 2 CPU cores" in claim.sentence and "1 of its steps without a recorded core count" in claim.sentence
    # the same steps computed by the model are judged
    fresh = pd.read_csv(written, keep_default_na=False).assign(from_cache="False")
    assert report.timing_claims(fresh, "default", "x", expected=steps)[0].verdict == "within the budget"
    # the committed table alone (no timings here) is checked again against the records: a record now saying
    # the answers were computed clears the mark; one without the count leaves the step unknown, so not judged
    (res / "base_ood" / "metrics.json").write_text(json.dumps({"pairs": 10, "timing": {"pairs_computed": 10}}))
    kept = report.step_timings(tmp_path / "none.tsv", results_dir=res, previous=written).set_index("step")
    assert not bool(kept.loc["03_evaluate__base_ood", "from_cache"])
    (res / "base_ood" / "metrics.json").write_text(json.dumps({"pairs": 10, "timing": {}}))
    fresh.assign(from_cache="").to_csv(tmp_path / "blank.csv", index=False)
    blank = report.step_timings(tmp_path / "none.tsv", results_dir=res, previous=tmp_path / "blank.csv")
    (unknown,) = report.timing_claims(blank, "default", "x", expected=steps)
    assert unknown.verdict == "" and "is not recorded" in unknown.sentence
    with pytest.raises(FileNotFoundError, match="run `make all` for the profile first"):
        report.step_timings(tmp_path / "none.tsv", results_dir=res)
    # a previous table without the column still merges
    again = report.step_timings(tsv, results_dir=res, previous=written)
    assert list(again.columns)[-2:] == ["from_cache", "note"]
