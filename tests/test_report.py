"""README's results are generated from results/ and data/processed/: a test ties them together."""

from __future__ import annotations

import pandas as pd
import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.reporting import report


def test_readme_results_block_matches_results():
    text = (REPO_ROOT / "docs" / "details.md").read_text()
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
