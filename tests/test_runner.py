"""The notebook runner: profile parameters, named runs, and typos caught before anything runs."""

from __future__ import annotations

import nbformat
import pytest

from subgroup_values.core.paths import REPO_ROOT
from subgroup_values.pipeline.runner import notebook_parameters, run_notebook
from subgroup_values.reporting.report import markdown_table

NOTEBOOKS = ["01_build_dataset", "02_value_landscape", "03_evaluate", "04_finetune", "05_fairness", "06_open_ended",
             "07_paper_comparison"]


def test_profile_and_run_parameters_merge():
    p = notebook_parameters("default", "03_evaluate", {"batch_size": 4}, run="sft_ood")
    assert p["profile"] == "default" and p["run_name"] == "sft_ood" and p["batch_size"] == 4
    assert p["adapter"].endswith("adapters/sft") and p["split"] == "ood"
    with pytest.raises(SystemExit, match="Run 'nope' is not defined"):
        notebook_parameters("default", "03_evaluate", run="nope")
    with pytest.raises(SystemExit, match="Unknown profile 'fast'"):
        notebook_parameters("fast", "03_evaluate")


def test_unknown_parameter_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match=r"parameter\(s\) \['batchsize'\] are not in its parameters cell"):
        run_notebook("notebooks/03_evaluate.ipynb", "smoke", {"batchsize": 3}, out_dir=tmp_path)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_sources_are_clean_and_parameterised(name):
    nb = nbformat.read(f"notebooks/{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs from notebook sources"
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    assert "google.colab" in code[0].source  # the Colab setup cell comes first
    assert nb.cells[1].cell_type == "markdown" and nb.cells[1].source.startswith("# ")


def test_markdown_table():
    import pandas as pd

    t = markdown_table(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x|y", "z"]}))
    assert t.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x\\|y |", "|  | z |"]


def test_reference_profile_refuses_a_dirty_tree(tmp_path, monkeypatch):
    from subgroup_values.core import provenance
    from subgroup_values.pipeline import runner

    monkeypatch.delenv("ALLOW_DIRTY", raising=False)
    monkeypatch.setattr(provenance, "git_revision", lambda *a, **k: "abc123-dirty")
    with pytest.raises(SystemExit, match="commit \\(or stash\\) first"):
        runner.run_notebook(REPO_ROOT / "notebooks" / "07_paper_comparison.ipynb", "default", out_dir=tmp_path)


def test_executed_notebooks_show_no_progress_bars_or_known_warnings():
    """The kernel a step runs in, with the runner's environment: the libraries' progress bars and the two known
    harmless warnings stay out of the notebook; another warning still shows (nothing else is silenced)."""
    import os

    from nbclient import NotebookClient

    from subgroup_values.pipeline.runner import quiet_kernel_environment

    env = quiet_kernel_environment({"PYTHONWARNINGS": "default::DeprecationWarning"})
    assert env["PYTHONWARNINGS"].startswith("default::DeprecationWarning,") and env["TQDM_DISABLE"] == "1"
    assert quiet_kernel_environment(dict(env)) == env  # idempotent
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import warnings\nfrom tqdm.auto import tqdm\nfrom huggingface_hub.utils import tqdm as hub_tqdm\n"
        "for _ in tqdm(range(3), desc='pairs'): pass\nfor _ in hub_tqdm(range(3), desc='Loading weights'): pass\n"
        "warnings.warn('IProgress not found. Please update jupyter and ipywidgets.', UserWarning)\n"
        "warnings.warn('`is_gradient_checkpointing` is deprecated and will be removed in v6.', FutureWarning)\n"
        "warnings.warn('something else', FutureWarning)")]
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    stderr = "".join(o.get("text", "") for o in nb.cells[0].outputs if o.get("name") == "stderr")
    assert "something else" in stderr  # the check can see a warning
    for hidden in ("pairs", "Loading weights", "IProgress", "is_gradient_checkpointing", "it/s"):
        assert hidden not in stderr, (hidden, stderr)
