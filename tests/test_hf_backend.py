"""Exact option scoring: equal to a brute-force full-sequence computation; batching and prefix reuse change nothing."""

from __future__ import annotations

import math

import pytest
import torch

from subgroup_values.backends.base import GenerateRequest, ScoreRequest
from subgroup_values.backends.hf import HFBackend
from subgroup_values.survey.prompts import build_messages, prefix_group

PERSONAS = [{"sex": "Female", "age": "25-34"}, {"ethnicity": "Malay", "religion": "Muslim"}, {"age": "65+"}]
QIDS = ["Q1", "Q182", "Q46", "Q241", "Q57", "Q171"]


def requests_for(questions, template="persona_user"):
    return [ScoreRequest(build_messages(questions[q], p, template), [str(v) for v, _ in questions[q].options],
                         prefix_group(template, q, str(i)))
            for i, p in enumerate(PERSONAS) for q in QIDS]


def brute_force(be: HFBackend, req: ScoreRequest) -> list[float]:
    """log P(code tokens) + log P(next token is not a digit), one full sequence per option, no cache."""
    base = be.encode(be.render(req.messages))
    out = []
    for code in req.options:
        opt = be.option_ids(code)
        with torch.no_grad():
            logp = torch.log_softmax(be.model(torch.tensor([base + opt])).logits[0].float(), -1)
        lp = sum(logp[len(base) - 1 + k, t].item() for k, t in enumerate(opt))
        p_digit = logp[-1].exp()[be.digit_mask].sum().item()
        out.append(lp + math.log1p(-p_digit))
    return out


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HFBackend(tiny_model, dtype="float32", batch_size=4)


@pytest.mark.parametrize("template", ["persona_user", "persona_system"])
def test_scoring_equals_brute_force_tiny(tiny, questions, template):
    reqs = requests_for(questions, template)
    got = tiny.score(reqs)
    for r, s in zip(reqs, got):
        assert s.logprobs == pytest.approx(brute_force(tiny, r), abs=1e-4)
        assert sum(s.probs) == pytest.approx(1.0) and 0 < s.option_mass <= 1.0 + 1e-9


def test_batched_equals_unbatched(tiny_model, questions):
    reqs = requests_for(questions)
    batched = HFBackend(tiny_model, dtype="float32", batch_size=8).score(reqs)
    single = HFBackend(tiny_model, dtype="float32", batch_size=1, prefix_cache=False).score(reqs)
    for a, b in zip(batched, single):
        assert a.probs == pytest.approx(b.probs, abs=1e-5)


def test_multi_token_codes_on_the_real_tokenizer(smollm2, questions):
    be = HFBackend(smollm2, dtype="float32", batch_size=4)
    assert be.option_ids("10") == [be.option_ids("1")[0], be.option_ids("1")[1], be.option_ids("0")[-1]]
    reqs = [r for r in requests_for(questions) if r.options[-1] == "10"][:3]
    got = be.score(reqs)
    for r, s in zip(reqs, got):
        ref = brute_force(be, r)
        assert s.logprobs == pytest.approx(ref, abs=2e-4)
        # "1" does not collect the mass of "10": P("1" then the number ends) < P("1" as a prefix)
        base, one = be.encode(be.render(r.messages)), be.option_ids("1")
        with torch.no_grad():
            logp = torch.log_softmax(be.model(torch.tensor([base + one])).logits[0].float(), -1)
        prefix_only = sum(logp[len(base) - 1 + k, t].item() for k, t in enumerate(one))
        assert s.logprobs[0] < prefix_only
    gen = be.generate([GenerateRequest(reqs[0].messages, 6)])
    assert isinstance(gen[0], str) and gen[0]


def test_adapter_and_errors(tiny_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="No LoRA adapter"):
        HFBackend(tiny_model, adapter=tmp_path)
    with pytest.raises(ValueError, match="dtype must be"):
        HFBackend(tiny_model, dtype="int3")


def test_a_model_without_chat_template_takes_the_base_template(tiny_model, questions, tmp_path):
    """A base model (no chat template) refuses the chat templates with a message naming base_completion, and
    scores and generates with base_completion; a model with a chat template scores a plain-text prompt as written."""
    import shutil

    from subgroup_values.backends.base import NoChatTemplateError

    base = tmp_path / "base-model"
    shutil.copytree(tiny_model, base)
    (base / "chat_template.jinja").unlink()
    be = HFBackend(base, dtype="float32", batch_size=4)
    assert not be.tokenizer.chat_template
    with pytest.raises(NoChatTemplateError, match=r"no chat template .*base_completion"):
        be.score(requests_for(questions)[:1])
    with pytest.raises(NoChatTemplateError, match="base_completion"):
        be.generate([GenerateRequest(build_messages(questions["Q1"], PERSONAS[0]), 4)])
    reqs = requests_for(questions, "base_completion")
    got = be.score(reqs)
    for r, s in zip(reqs, got):
        assert s.logprobs == pytest.approx(brute_force(be, r), abs=1e-4)
    # the same weights with their chat template read the plain-text prompt as written, not as a chat
    chat = HFBackend(tiny_model, dtype="float32", batch_size=4)
    assert chat.render(reqs[0].messages) == be.render(reqs[0].messages)
    assert [p for s in chat.score(reqs) for p in s.probs] == pytest.approx([p for s in got for p in s.probs], abs=1e-6)
    assert len(be.generate([GenerateRequest(reqs[0].messages, 4)])) == 1
