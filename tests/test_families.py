"""The paper's model families (Llama 3.1, Qwen 2.5, Gemma 3) with their real tokenizers and chat templates, on tiny
random models of their architectures (`make model-families`): exact option scoring, generation and parsing, with the
chat templates and with the plain-text base_completion template (Gemma 3 270M, a base model, is scored with it; the
tiny Gemma 3 model's tokenizer is the same token for token, tests/test_gemma.py)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from subgroup_values.backends.base import GenerateRequest, ScoreRequest
from subgroup_values.backends.hf import HFBackend
from subgroup_values.survey.prompts import build_messages, prefix_group

PERSONAS = [{"sex": "Female", "age": "25-34"}, {"ethnicity": "Malay", "religion": "Muslim"}]
SCALES = {"1-4": "Q1", "1-5": "Q33", "1-10": "Q48"}  # 0-10: Q48's text with an eleventh option, 0
#: The chat template a family's models use and the plain-text one of a base model
TEMPLATES = ("persona_user", "base_completion")


def scale_questions(questions) -> dict:
    out = {name: questions[qid] for name, qid in SCALES.items()}
    q = questions["Q48"]
    out["0-10"] = dataclasses.replace(q, qid="Q48_0to10", options=((0, "None at all"),) + tuple(q.options))
    return out


def requests_for(questions, template="persona_user"):
    return [ScoreRequest(build_messages(q, p, template), [str(v) for v, _ in q.options],
                         f"{template}:{prefix_group(template, q.qid, str(i))}")
            for i, p in enumerate(PERSONAS) for q in scale_questions(questions).values()]


def continues_number(tok, code_text: str, n_out: int) -> torch.Tensor:
    """True for each token that, written after ``code_text``, puts a digit right after the code (the decoded text
    of the code's tokens and that token: an independent reading of the scorer's digit mask)."""
    opt = tok(code_text, add_special_tokens=False)["input_ids"]
    base = len(tok.decode(opt))
    texts = tok.batch_decode([opt + [i] for i in range(len(tok))])
    goes_on = torch.zeros(n_out, dtype=torch.bool)
    goes_on[:len(tok)] = torch.tensor([t[base:base + 1].isdigit() for t in texts])
    return goes_on


def brute_force(be: HFBackend, req: ScoreRequest, goes_on: torch.Tensor) -> list[float]:
    """Per option: its canonical tokenisation in the full text (the rendered prompt, then " <code>", tokenised as one
    string), the probability of those tokens from one full forward pass without cache or 4-D mask, times the
    probability that the next token does not put a digit right after the code."""
    tok = be.tokenizer
    prompt_text = be.render(req.messages)
    base = tok(prompt_text, add_special_tokens=False)["input_ids"]
    out = []
    for code in req.options:
        full = tok(f"{prompt_text} {code}", add_special_tokens=False)["input_ids"]
        assert full[:len(base)] == base, "the prompt's tokens change when the code follows"
        opt = full[len(base):]
        assert tok.decode(opt) == f" {code}"
        with torch.no_grad():  # the positions that predict the code's tokens and the one after it
            logits = be.model(torch.tensor([full]), logits_to_keep=len(opt) + 1).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        lp = sum(logp[k, t].item() for k, t in enumerate(opt))
        out.append(lp + math.log1p(-logp[-1].exp()[goes_on].sum().item()))
    return out


@pytest.fixture(scope="module")
def backend(family_model):
    return HFBackend(family_model, dtype="float32", batch_size=3)


@pytest.fixture(scope="module")
def reference(backend, questions):
    """The brute-force log-probabilities of every request (computed once per family)."""
    n_out = backend.model.get_output_embeddings().weight.shape[0]
    goes_on = continues_number(backend.tokenizer, " 1", n_out)
    # the scorer's digit mask is the decoded-text rule, also after a two-digit code
    assert torch.equal(goes_on, backend.digit_mask.cpu())
    assert torch.equal(continues_number(backend.tokenizer, " 10", n_out), goes_on)
    reqs = [r for t in TEMPLATES for r in requests_for(questions, t)]
    return reqs, [brute_force(backend, r, goes_on) for r in reqs]


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_scoring_equals_brute_force(backend, family_model, reference, prefix_cache):
    backend.prefix_cache = prefix_cache
    reqs, refs = reference
    got = backend.score(reqs)
    worst = 0.0
    for r, s, ref in zip(reqs, got, refs):
        p_ref = [math.exp(v) for v in ref]
        p_ref = [v / sum(p_ref) for v in p_ref]
        worst = max(worst, max(abs(a - b) for a, b in zip(s.probs, p_ref)))
        assert s.logprobs == pytest.approx(ref, abs=1e-4), (family_model.name, r.options)
        assert sum(s.probs) == pytest.approx(1.0) and 0 < s.option_mass <= 1.0 + 1e-9
    print(f"{family_model.name} prefix_cache={prefix_cache}: max |dp| {worst:.2e} over {len(reqs)} prompts")


def test_codes_tokenise_as_the_family_does(backend, family_model):
    """What differs between the families: Llama 3.1 writes "10" as one token after a separate space; Qwen and
    Gemma write digits one by one (Gemma's space is its own piece too)."""
    family = json.loads((family_model / "family.json").read_text())["family"]
    tok = backend.tokenizer
    pieces = {c: tok.convert_ids_to_tokens(backend.option_ids(c)) for c in ("1", "10")}
    expected = {"llama3": (["Ġ", "1"], ["Ġ", "10"], 1208), "qwen2": (["Ġ", "1"], ["Ġ", "1", "0"], 28),
                "gemma3": (["▁", "1"], ["▁", "1", "0"], 337)}[family]
    assert (pieces["1"], pieces["10"], int(backend.digit_mask.sum())) == expected


def test_generate_and_parse_on_the_family_chat_format(backend, family_model, questions):
    from subgroup_values.survey.prompts import parse_answer

    q = questions["Q1"]
    msgs = build_messages(q, PERSONAS[0])
    text = backend.render(msgs, answer_prefix=None)
    tok = backend.tokenizer
    assert text.count(tok.bos_token or "\0") <= 1 and "Respondent:" in text
    ids = backend.encode(text)
    assert ids.count(tok.bos_token_id) <= 1  # the template writes the BOS once, encode adds none
    replies = backend.generate([GenerateRequest(msgs, 4), GenerateRequest(build_messages(q, PERSONAS[1]), 4)])
    assert all(isinstance(r, str) for r in replies)
    # the reply parser on a reply in the family's own format: the model's turn closed by its end-of-turn token
    codes = [v for v, _ in q.options]
    turn = tok.apply_chat_template(msgs + [{"role": "assistant", "content": "Answer: 3"}], tokenize=False)
    reply = tok.decode(tok(turn[len(text):], add_special_tokens=False)["input_ids"], skip_special_tokens=True)
    assert parse_answer(reply, codes).choice == 3, reply
    # generation stops at the family's end-of-turn token and the reply carries no special token
    eos = backend.model.generation_config.eos_token_id
    assert tok.eos_token_id in (eos if isinstance(eos, list) else [eos])
    assert not any(s in r for r in replies for s in tok.all_special_tokens if s)


def test_generate_and_parse_on_the_base_completion_template(backend, family_model, questions):
    """The plain-text prompt (no chat template) ends on the persona's line; the model writes the "Answer:" line
    itself, and the parser reads such a completion (with what a base model writes after it) on the family's real
    tokens."""
    from subgroup_values.survey.prompts import parse_answer, plain_text

    q = questions["Q48"]  # a 1-10 scale: "Answer: 10" must not read as 1
    msgs = build_messages(q, PERSONAS[1], "base_completion")
    text = backend.render(msgs, answer_prefix=None)
    tok = backend.tokenizer
    assert text.endswith("Respondent: a Malay Muslim person\n") and text == (tok.bos_token or "") + plain_text(msgs)
    assert backend.render(msgs).endswith("Muslim person\nAnswer:")
    for s in tok.all_special_tokens:  # no chat markup: at most the BOS the tokenizer itself would add
        assert text.count(s) == (1 if s == tok.bos_token and tok("a")["input_ids"][:1] == [tok.bos_token_id] else 0)
    codes = [v for v, _ in q.options]
    prompt_ids = backend.encode(text)
    for written, choice in (("Answer: 3\n\nQuestion: Some people feel", 3), ("Answer: 10\nRespondent: a man", 10),
                            ("Answer: 7", 7)):
        ids = backend.encode(text + written)
        assert ids[:len(prompt_ids)] == prompt_ids
        reply = tok.decode(ids[len(prompt_ids):], skip_special_tokens=True).strip()
        assert parse_answer(reply, codes).choice == choice, reply
    replies = backend.generate([GenerateRequest(msgs, 6), GenerateRequest(build_messages(q, PERSONAS[0],
                                                                                        "base_completion"), 6)])
    assert all(isinstance(r, str) and r.tokens <= 6 for r in replies)


def test_packed_trainer_equals_trl_on_the_family(family_model, tmp_path):
    """The packed trainer's loss and every LoRA gradient equal TRL's SFTTrainer's on the same examples (fp32,
    1e-5): the tree mask and the position ids hold for the family's attention (Gemma 3's sliding-window layers
    included: the tiny model's window of 8 tokens is shorter than every prompt)."""
    from test_packing import check, compare, trainers

    trl_trainer, packed = trainers(family_model, "configs/sft/smoke.yaml", tmp_path, limit=200, per_chunk=3)
    d = compare(trl_trainer, packed, n_chunks=2, fp64=False)  # fp64 logits of a 262k vocabulary: gigabytes
    print(f"{family_model.name}: packed vs TRL |dloss| {d['fp32_loss']:.1e}, max |dgrad| {d['fp32_grad']:.1e} "
          f"over {d['examples']} examples")
    check(d)
