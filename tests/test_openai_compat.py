"""The OpenAI-compatible backend against a local fake server: success, rate limits, server errors, bad replies."""

from __future__ import annotations

import pytest

from fake_openai import FakeOpenAI
from subgroup_values.backends import make_backend
from subgroup_values.backends.base import GenerateRequest, RequestFailed, ScoreRequest

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
    [out] = be.generate([GenerateRequest(MSG)])
    assert isinstance(out, RequestFailed) and "failed 2 times" in out.error
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
