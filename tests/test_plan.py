"""A run is declared once (configs/<profile>.yaml, runs:): the Makefile's lists and the analysis notebooks' run
parameters are derived from it (subgroup_values.core.plan)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from subgroup_values.core import plan
from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline import reuse, runner


def _dry_steps(profile: str, build, target: str = "all") -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "--no-print-directory", "-n", "-B", target, f"PROFILE={profile}", f"BUILD={build}",
                        "REUSE=0", "WVS_CHECK="], cwd=REPO_ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return [f"{nb}:{run}" if run else nb for nb, run in
            re.findall(r"runner --profile \S+ --out-dir \S+ notebooks/(\w+)\.ipynb(?: --run (\w+))?", r.stdout)]


@pytest.fixture
def probe_profile():
    """A copy of the smoke profile with one more run in runs: (and nothing else changed), as configs/<name>.yaml
    for the time of the test."""
    name = f"plan_probe_{os.getpid()}"
    path = REPO_ROOT / "configs" / f"{name}.yaml"
    text = (REPO_ROOT / "configs" / "smoke.yaml").read_text()
    added = ("  base_ood_no_persona: {split: ood, scoring: logprob, limit: 300, model: models/families/qwen2}\n"
             "  sft_ood_no_persona: {split: ood, scoring: logprob, limit: 300, batch_size: 8, "
             "adapter: build/smoke/adapters/sft, after: sft}\n")
    path.write_text(text.rstrip("\n") + "\n" + added)
    for suffix in ("", "_distribution"):
        shutil.copy(REPO_ROOT / "configs" / "sft" / f"smoke{suffix}.yaml",
                    REPO_ROOT / "configs" / "sft" / f"{name}{suffix}.yaml")
    try:
        yield name
    finally:
        path.unlink(missing_ok=True)
        for suffix in ("", "_distribution"):
            (REPO_ROOT / "configs" / "sft" / f"{name}{suffix}.yaml").unlink(missing_ok=True)


def test_adding_a_run_is_one_edit_in_the_profile(probe_profile, tmp_path):
    before = _dry_steps("smoke", tmp_path / "a")
    after = _dry_steps(probe_profile, tmp_path / "b")
    new = [s for s in after if s not in before]
    assert new == ["03_evaluate:base_ood_no_persona", "03_evaluate:sft_ood_no_persona"]
    # the fine-tuned run comes after its fine-tune, and the headroom step after both (it reads them)
    assert after.index("04_finetune") < after.index("03_evaluate:sft_ood_no_persona") < after.index("08_headroom")
    assert after.index("03_evaluate:base_ood_no_persona") < after.index("08_headroom")
    # the notebooks see them: step 8 places both, and the zero-shot one under the disjoint protocol too
    p8 = runner.notebook_parameters(probe_profile, "08_headroom")
    assert "base_ood_no_persona" in p8["model_runs"].split(",") and "sft_ood_no_persona" in p8["model_runs"].split(",")
    assert "base_ood_no_persona" in p8["zero_shot_runs"].split(",")
    assert "sft_ood_no_persona" not in p8["zero_shot_runs"].split(",")
    # step 5 keeps the first zero-shot and fine-tuned OOD runs (the declared order decides)
    p5 = runner.notebook_parameters(probe_profile, "05_fairness")
    assert (p5["base_run"], p5["sft_run"]) == ("base_ood", "sft_ood")
    # make rebuilds step 8 when the new run changes: it is among its prerequisites
    frag = plan.make_fragment(probe_profile)
    reads8 = re.search(r"^PLAN_READS_08_headroom := (.*)$", frag, re.M).group(1)
    assert "03_evaluate__base_ood_no_persona.ipynb" in reads8 and "03_evaluate__sft_ood_no_persona.ipynb" in reads8


def test_an_ablation_or_a_smaller_sample_does_not_take_the_base_runs_place(tmp_path):
    (tmp_path / "configs").mkdir()
    text = (REPO_ROOT / "configs" / "default.yaml").read_text().replace(
        "runs:\n", "runs:\n  base_quick: {split: ood, scoring: logprob, limit: 300}\n"
                   "  base_nopersona: {split: ood, scoring: logprob, template: no_persona}\n", 1)
    (tmp_path / "configs" / "default.yaml").write_text(text)
    d = plan.analysis_parameters("default", root=tmp_path)
    assert d["05_fairness"]["base_run"] == "base_ood" and d["07_paper_comparison"]["base_run"] == "base_ood"
    assert d["08_headroom"]["model_runs"] == "base_ood,sft_ood,sft_distribution_ood"
    # a generate-only profile (the paper's) still has its base and fine-tuned runs
    p = plan.analysis_parameters("paper")["05_fairness"]
    assert (p["base_run"], p["sft_run"], p["base_generate_run"]) == ("base_ood", "sft_ood", "base_ood_generate")


def test_a_profile_without_steps_is_refused(tmp_path):
    (tmp_path / "configs").mkdir()
    text = (REPO_ROOT / "configs" / "tur.yaml").read_text()
    (tmp_path / "configs" / "t.yaml").write_text(re.sub(r"(?m)^steps:.*\n", "", text))
    with pytest.raises(plan.PlanError, match="has no steps"):
        plan.make_all("t", root=tmp_path)


def test_the_derived_parameters_are_the_profiles_runs_of_each_kind():
    d = plan.analysis_parameters("default")
    assert d["05_fairness"] == {"base_run": "base_ood", "base_train_run": "base_train",
                                "base_generate_run": "base_ood_generate", "base_refusal_run": "base_ood_refusals",
                                "sft_run": "sft_ood", "sft_train_run": "sft_train",
                                "sft_generate_run": "sft_ood_generate", "sft_refusal_run": "sft_ood_refusals"}
    assert d["08_headroom"] == {"model_runs": "base_ood,sft_ood,sft_distribution_ood", "zero_shot_runs": "base_ood",
                                "marginals_runs": "base_ood_marginals,sft_ood_marginals,sft_distribution_ood_marginals"}
    assert plan.analysis_parameters("gemma")["08_headroom"] == {"model_runs": "base_ood,sft_ood",
                                                              "zero_shot_runs": "base_ood", "marginals_runs": ""}
    assert plan.analysis_parameters("tur")["08_headroom"]["marginals_runs"] == "base_ood_marginals"
    # the profile's own section still decides: gemma's step 5 skips the runs it does not have
    assert runner.notebook_parameters("gemma", "05_fairness")["base_train_run"] == ""
    # a notebook opened by hand resolves its "auto" parameters the same way
    ns = {"model_runs": "auto", "zero_shot_runs": "base_ood", "marginals_runs": "auto"}
    plan.resolve_auto("default", "08_headroom", ns)
    assert ns == {"model_runs": "base_ood,sft_ood,sft_distribution_ood", "zero_shot_runs": "base_ood",
                  "marginals_runs": "base_ood_marginals,sft_ood_marginals,sft_distribution_ood_marginals"}


def _notebook_defaults(stem: str) -> dict:
    return reuse.notebook_defaults((REPO_ROOT / "notebooks" / f"{stem}.ipynb").read_text())


def test_the_plan_knows_notebook_3s_defaults_and_its_keys_never_reach_a_notebook():
    nb3 = _notebook_defaults("03_evaluate")
    assert {k: nb3[k] for k in plan.EVALUATION_DEFAULTS} == plan.EVALUATION_DEFAULTS
    assert reuse.PLAN_KEYS == plan.PLAN_KEYS
    for profile in runner.known_profiles():
        for name in yaml.safe_load((REPO_ROOT / "configs" / f"{profile}.yaml").read_text()).get("runs") or {}:
            r = plan.runs(profile)[name]
            p = runner.notebook_parameters(profile, r.notebook, run=name)
            assert not set(plan.PLAN_KEYS) & set(p), (profile, name)
    for stem in ("05_fairness", "07_paper_comparison", "08_headroom"):  # no run name typed in a notebook
        defaults = _notebook_defaults(stem)
        assert all(defaults[k] == plan.AUTO for k in plan.analysis_parameters("default")[stem]), stem


@pytest.mark.parametrize("entry, message", [
    ("  sft_x: {split: ood, adapter: build/smoke/adapters/x, after: nowhere}", "after 'nowhere' names no fine-tune"),
    ("  sft_x: {split: ood, adapter: build/smoke/adapters/sft}", "says which"),
    ("  ft_x: {notebook: 05_fairness}", "a run is made by 03_evaluate"),
    ("  sft_x: {split: ood, adapter: build/smoke/adapters/sft, after: sft, target: 'a b'}", "name of a make goal"),
])
def test_a_run_that_cannot_be_planned_says_what_to_change(tmp_path, entry, message):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "p.yaml").write_text(
        (REPO_ROOT / "configs" / "smoke.yaml").read_text().rstrip("\n") + "\n" + entry + "\n")
    with pytest.raises(plan.PlanError, match=message):
        plan.make_fragment("p", root=tmp_path)


def test_a_fine_tune_run_needs_its_recipe(tmp_path):
    (tmp_path / "configs").mkdir()
    text = (REPO_ROOT / "configs" / "smoke.yaml").read_text()
    (tmp_path / "configs" / "p.yaml").write_text(text.replace(
        "recipe: configs/sft/smoke_distribution.yaml", "seed: 1"))
    with pytest.raises(plan.PlanError, match="needs its recipe"):
        plan.make_fragment("p", root=tmp_path)


def test_separate_goals_come_from_the_runs_targets():
    assert plan.separate_targets("default") == {"distribution": (
        "04_finetune__sft_distribution", "03_evaluate__sft_distribution_ood",
        "03_evaluate__sft_distribution_ood_marginals")}
    assert plan.separate_targets("smoke") == {}
    assert json.dumps(plan.make_all("tur")) == json.dumps([
        "01_build_dataset.ipynb", "02_value_landscape.ipynb", "03_evaluate__base_ood.ipynb",
        "03_evaluate__base_train.ipynb", "03_evaluate__base_ood_generate.ipynb",
        "03_evaluate__base_ood_marginals.ipynb", "08_headroom.ipynb"])


def test_one_function_owns_the_results_layout():
    from pathlib import Path

    from subgroup_values.core import paths

    assert paths.run_dir("default", "base_ood") == Path("results/default/base_ood")
    assert paths.results_dir("tur", "headroom") == Path("results/tur/headroom")
    with pytest.raises(ValueError, match="one folder name"):
        paths.run_dir("default", "disjoint/sft_ood")
    # no notebook types a run's folder: each asks paths.run_dir
    for nb in sorted((REPO_ROOT / "notebooks").glob("*.ipynb")):
        code = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        assert not re.search(r"results/\{profile\}/\{\w+\}", code), nb.name


def test_a_section_that_says_auto_keeps_the_runs_as_prerequisites(tmp_path):
    (tmp_path / "configs").mkdir()
    text = (REPO_ROOT / "configs" / "default.yaml").read_text().replace(
        "  05_fairness:\n", "  05_fairness:\n    base_run: auto\n    sft_run: auto\n", 1)
    (tmp_path / "configs" / "default.yaml").write_text(text)
    assert {"base_ood", "sft_ood"} <= set(plan.reads("default", "05_fairness", root=tmp_path))
    # the paper profile's findings keep its (generate-mode) modal fine-tune first
    assert plan.analysis_parameters("paper")["07_paper_comparison"]["sft_runs"].split(",")[0] == "sft_ood"
