"""The OpenAI-compatible backend against a local fake server: success, rate limits, server errors, bad replies."""

from __future__ import annotations

import numpy as np
import pytest

from fake_openai import FakeOpenAI
from subgroup_values.backends import make_backend
from subgroup_values.backends.base import GenerateRequest, RequestFailed, ScoreRequest
from subgroup_values.backends.openai_compat import ServerUnreachable

MSG = [{"role": "user", "content": "How important is family? Answer: <number>"}]


def backend(url, **kw):
    return make_backend("openai_compat", model="fake-model", base_url=url, backoff=0.01, **kw)


def test_success_generate_and_score(monkeypatch):
    monkeypatch.setenv("FAKE_KEY", "sk-test")
    with FakeOpenAI() as srv:
        be = backend(srv.url, api_key_env="FAKE_KEY", concurrency=3)
        assert be.generate([GenerateRequest(MSG, 5)] * 4) == ["Answer: 3"] * 4
        scores = be.score([ScoreRequest(MSG, ["1", "2", "3", "4"])])[0]
    assert scores.probs[0] == 0.0 and scores.probs[2] > scores.probs[1] > 0
    assert sum(scores.probs) == pytest.approx(1.0)
    body = srv.requests[0]
    assert body["temperature"] == 0 and body["model"] == "fake-model" and body["max_tokens"] == 5
    assert srv.requests[-1]["logprobs"] is True and srv.requests[-1]["top_logprobs"] == 20


def test_two_digit_codes_read_whole():
    with FakeOpenAI() as srv:
        s = backend(srv.url).score([ScoreRequest(MSG, [str(i) for i in range(1, 11)])])[0]
    assert s.probs[9] > 0 and s.probs[0] == 0.0  # "10" is its own token here, not counted as "1"


def test_rate_limit_then_success():
    with FakeOpenAI(["429", "429"]) as srv:
        assert backend(srv.url).generate([GenerateRequest(MSG)]) == ["Answer: 3"]
        assert len(srv.requests) == 3


def test_server_errors_exhaust_retries():
    with FakeOpenAI(["500"] * 10) as srv:
        [out] = backend(srv.url, max_retries=2).generate([GenerateRequest(MSG)])
        assert len(srv.requests) == 3
    assert isinstance(out, RequestFailed) and "failed 3 times; last: HTTP 500" in out.error


def test_malformed_reply_is_retried_then_reported():
    with FakeOpenAI(["malformed", "ok"]) as srv:
        assert backend(srv.url).generate([GenerateRequest(MSG)]) == ["Answer: 3"]
    with FakeOpenAI(["malformed"] * 5) as srv:
        [out] = backend(srv.url, max_retries=1).generate([GenerateRequest(MSG)])
    assert isinstance(out, RequestFailed) and "malformed reply" in out.error


def test_client_error_is_not_retried():
    with FakeOpenAI(["400"]) as srv:
        [out] = backend(srv.url).generate([GenerateRequest(MSG)])
        assert len(srv.requests) == 1
    assert isinstance(out, RequestFailed) and "HTTP 400" in out.error and "Check the model name" in out.error


def test_no_logprobs_says_use_generate():
    with FakeOpenAI(["nologprobs"]) as srv:
        [out] = backend(srv.url).score([ScoreRequest(MSG, ["1", "2"])])
    assert out.status == "failed" and out.probs is None and "use scoring='generate'" in out.error


def test_unreachable_server_times_out_cleanly():
    be = make_backend("openai_compat", model="m", base_url="http://127.0.0.1:9/v1", backoff=0.01, max_retries=1,
                      timeout=2)
    # nothing ever answered: the run stops at once with the cause (not a failed record per request, for hours)
    with pytest.raises(ServerUnreachable, match="failed 2 times.*No request has been answered.*running"):
        be.generate([GenerateRequest(MSG)] * 8)
    with pytest.raises(ValueError, match="needs base_url"):
        make_backend("openai_compat", model="m")


def test_no_option_among_top_logprobs_is_unanswered_not_uniform():
    """Options 5-7 are absent from the server's top log-probabilities: no made-up distribution, no choice."""
    with FakeOpenAI(["ok"]) as srv:
        scored = backend(srv.url).score([ScoreRequest(MSG, ["5", "6", "7"])])[0]
    assert scored.status == "no_option_logprob" and scored.probs is None and scored.option_mass == 0.0
    with FakeOpenAI(["ok"]) as srv:
        fine = backend(srv.url).score([ScoreRequest(MSG, ["2", "3"])])[0]
    assert fine.status == "ok" and fine.probs[1] > fine.probs[0]


# ---- exact option scoring through a completions endpoint (echo + logprobs, as vLLM answers) -------------------

def _real_pairs(n=12):
    from subgroup_values.survey.dataset import load_pairs, sample_pairs

    return sample_pairs(load_pairs(split="ood"), n, 3)


@pytest.mark.parametrize("model", ["tiny_model", "smollm2"])
def test_completions_path_is_exact_against_the_local_scorer(model, request):
    from subgroup_values.backends.cache import NullCache
    from subgroup_values.evaluation.evaluate import predict

    path = request.getfixturevalue(model)
    pairs = _real_pairs(12 if model == "tiny_model" else 5)
    local = predict(make_backend("hf", model=str(path), dtype="float32"), pairs, cache=NullCache(),
                    progress=False)
    with FakeOpenAI(model_path=path) as srv:
        # the tiny model's 512 tokens all come back (its byte pieces decode to colliding strings, so the flag stays
        # conservative); SmolLM2 gets the default top 20, as from a vLLM server
        k = 1000 if model == "tiny_model" else 20
        remote = predict(backend(srv.url, endpoint="completions", tokenizer=str(path), top_logprobs=k,
                                 concurrency=1, timeout=600), pairs, cache=NullCache(), progress=False)
        # one request per pair, carrying every option's sequence
        assert sorted(len(r["prompt"]) for r in srv.requests) == sorted(len(p) for p in remote.probs)
        assert srv.requests[0]["echo"] is True and srv.requests[0]["max_tokens"] == 1
    assert (remote.status == "ok").all() and (remote.choice == local.choice).all()
    gaps = np.array([max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(remote.probs, local.probs)])
    if model == "tiny_model":  # every token shown: exact, and flagged so
        assert remote["exact"].all() and gaps.max() < 1e-5, gaps.max()
        assert remote.option_mass.to_numpy() == pytest.approx(local.option_mass.to_numpy(), rel=1e-4)
    else:  # the top 20 bound the missed digit mass to ~5e-3: never flagged exact while off by more than 1e-4
        assert gaps.max() < 5e-3 and not (remote["exact"].to_numpy() & (gaps > 1e-4)).any()


def test_completions_path_flags_what_the_top_tokens_cannot_bound(tiny_model):
    with FakeOpenAI(model_path=tiny_model) as srv:
        be = backend(srv.url, endpoint="completions", tokenizer=str(tiny_model), top_logprobs=3)
        s = be.score([ScoreRequest(MSG, [str(i) for i in range(1, 11)])])[0]
    # a random 512-token model leaves most mass outside the top 3: a distribution, flagged as an approximation
    assert s.status == "ok" and s.exact is False and sum(s.probs) == pytest.approx(1.0)


def test_completions_path_refuses_a_server_without_prompt_logprobs(tiny_model):
    with FakeOpenAI(["nologprobs"], model_path=tiny_model) as srv:
        be = backend(srv.url, endpoint="completions", tokenizer=str(tiny_model))
        [s] = be.score([ScoreRequest(MSG, ["1", "2", "3", "4"])])
    assert s.status == "failed" and s.probs is None and "cannot score options exactly" in s.error
    with pytest.raises(ValueError, match="give tokenizer="):
        backend("http://127.0.0.1:9/v1", endpoint="completions")


def test_digit_ids_make_the_completions_path_exact_with_one_logprob_per_prompt_token(tiny_model):
    from subgroup_values.backends.cache import NullCache
    from subgroup_values.evaluation.evaluate import predict

    pairs = _real_pairs(8)
    local = predict(make_backend("hf", model=str(tiny_model), dtype="float32"), pairs, cache=NullCache(),
                    progress=False)
    with FakeOpenAI(model_path=tiny_model) as srv:
        be = backend(srv.url, endpoint="completions", tokenizer=str(tiny_model), ends_from="digit_ids",
                     concurrency=1, timeout=600)
        remote = predict(be, pairs, cache=NullCache(), progress=False)
        req = srv.requests[0]
    # every digit token named (the tiny tokenizer has 11: "0"-"9" and "10"), no alternatives at prompt positions
    assert req["logprob_token_ids"] == be._digit_ids() and req["logprobs"] == len(be._digit_ids()) == 11
    assert req["prompt_logprobs"] == 0 and req["return_tokens_as_token_ids"] is True
    assert be.identity()["ends_from"] == "digit_ids"  # its own cache entries
    # with the default top 20 the tiny model's flat distribution left most of the digit mass unbounded; named ids
    # make P(the number ends) exact, and flagged so
    assert (remote.status == "ok").all() and remote["exact"].all() and (remote.choice == local.choice).all()
    gaps = np.array([max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(remote.probs, local.probs)])
    assert gaps.max() < 1e-5, gaps.max()


def test_digit_ids_refuse_a_server_that_ignores_them(tiny_model):
    with FakeOpenAI(["generic"], model_path=tiny_model) as srv:
        be = backend(srv.url, endpoint="completions", tokenizer=str(tiny_model), ends_from="digit_ids")
        [s] = be.score([ScoreRequest(MSG, ["1", "2", "3", "4"])])
    assert s.status == "failed" and s.probs is None and "does not take vLLM's fields" in s.error
    with pytest.raises(ValueError, match="endpoint='completions'"):
        backend("http://127.0.0.1:9/v1", ends_from="digit_ids")
    with pytest.raises(ValueError, match="ends_from must be one of"):
        backend("http://127.0.0.1:9/v1", endpoint="completions", tokenizer=str(tiny_model), ends_from="top20")


def test_chat_path_says_per_prediction_whether_it_is_exact(smollm2):
    with FakeOpenAI() as srv:
        be = backend(srv.url, tokenizer=str(smollm2))
        four, ten = be.score([ScoreRequest(MSG, ["1", "2", "3", "4"]),
                              ScoreRequest(MSG, [str(i) for i in range(1, 11)])])
        unknown = backend(srv.url).score([ScoreRequest(MSG, ["1", "2", "3", "4"])])[0]
    # SmolLM2 writes "10" as "1" "0": the first answer token cannot tell 1 from 10
    assert four.exact is True and ten.exact is False and unknown.exact is None


def test_server_options_are_refused_by_the_local_backend(smollm2):
    with pytest.raises(ValueError, match="openai_compat"):
        make_backend("hf", model=str(smollm2), endpoint="completions", tokenizer=str(smollm2))
    with pytest.raises(ValueError, match="tokenizer"):
        make_backend("openai_compat", model="m", base_url="http://127.0.0.1:9/v1", endpoint="completions")


def test_digit_ids_in_chunks_for_a_tokenizer_with_1208_digit_tokens():
    """Llama 3.1's tokenizer (the tiny Llama of `make model-families`): vLLM names at most 128 tokens a request (the
    fake answers more with HTTP 400, as vLLM does), so the digit tokens go in 10 chunks; the scores equal the
    local scorer's and are flagged exact."""
    from conftest import REPO

    from subgroup_values.backends.hf import HFBackend
    from subgroup_values.pipeline.local_models import build_family_model

    try:
        model = build_family_model("llama3", REPO / "models" / "families" / "llama3")
    except SystemExit as exc:
        pytest.skip(f"no tiny Llama 3 model ({exc}): run `make model-families`.")
    req = ScoreRequest(MSG, [str(i) for i in range(0, 11)])
    local = HFBackend(model, dtype="float32").score([req])[0]
    with FakeOpenAI(model_path=model) as srv:
        be = backend(srv.url, endpoint="completions", tokenizer=str(model), ends_from="digit_ids", concurrency=1)
        [s] = be.score([req])
        sent = [r for r in srv.requests if "logprob_token_ids" in r]
    digits = be._digit_ids()
    assert len(digits) == 1208 and len(sent) == 10 and all(len(r["logprob_token_ids"]) <= 128 for r in sent)
    assert sorted(i for r in sent for i in r["logprob_token_ids"]) == sorted(digits)
    assert sum(bool(r.get("echo")) for r in sent) == 1  # the prompt's log-probabilities are asked for once
    assert s.status == "ok" and s.exact is True
    assert s.probs == pytest.approx(local.probs, abs=1e-5)
