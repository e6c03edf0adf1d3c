"""Option scoring through a real vLLM CPU server against the local scorer, on the same real persona prompts.

    python benchmarks/bench_server.py [--questions 2] [--concurrency 8]

Starts vLLM's CPU build (``make vllm-env``) on 127.0.0.1 with the embedded SmolLM2 folder (fp32, eager), then
scores every OOD subgroup of a few seeded questions (one on a 1-10 scale) four ways: the local ``hf`` scorer
(exact, prefix reuse, option tree), the server's completions endpoint (exact P(code) from the prompt tokens'
log-probabilities, one request per pair with every option) with P(the number ends) read from the top 20
log-probabilities (any server: bounded) or from every digit token named (vLLM's ``logprob_token_ids``, with no
alternatives at the prompt positions: exact), and its chat endpoint (top-20 log-probabilities of the answer token;
inexact for "10"). Prints prompts/s, the agreement with the local scorer (top answer, largest
probability difference), the server's start-up time, and one ``speedup: <X>x over <anchor>`` line per server path
(the local scorer's rate over the server's).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_scoring import seeded_questions  # same folder: the same workload

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from subgroup_values.backends import make_backend  # noqa: E402
from subgroup_values.backends.cache import NullCache  # noqa: E402
from subgroup_values.backends.vllm_server import VLLMServer  # noqa: E402
from subgroup_values.evaluation.evaluate import predict  # noqa: E402
from subgroup_values.survey.dataset import load_pairs  # noqa: E402
from subgroup_values.survey.questions import load_questions  # noqa: E402

MODEL = Path("models/SmolLM2-135M-Instruct")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    questions = {q.qid: q for q in load_questions(rule="all")}
    ood = load_pairs(split="ood")
    chosen = seeded_questions(ood, questions, args.questions)
    pairs = ood[ood.qid.isin(chosen)].reset_index(drop=True)
    print(f"{len(pairs)} OOD prompts of {len(chosen)} questions ({', '.join(chosen)}; options "
          f"{[questions[q].n_options for q in chosen]}); server concurrency {args.concurrency}")

    local = make_backend("hf", model=str(MODEL), dtype="float32")
    predict(local, pairs.head(8), cache=NullCache(), progress=False)  # warm-up
    t0 = time.perf_counter()
    ref = predict(local, pairs, cache=NullCache(), progress=False)
    t_local = time.perf_counter() - t0
    results = {"local hf scorer (exact, prefix reuse, option tree)": (t_local, ref)}

    with tempfile.TemporaryDirectory() as tmp, VLLMServer(MODEL, Path(tmp) / "server.log") as server:
        print(f"vLLM server ready in {server.ready_s:.0f} s (eager, fp32)")
        paths = {"vLLM completions, top-20 ends (echo + logprobs)": dict(endpoint="completions",
                                                                         tokenizer=str(MODEL)),
                 "vLLM completions, digit-id ends (logprob_token_ids)": dict(endpoint="completions",
                                                                             tokenizer=str(MODEL),
                                                                             ends_from="digit_ids"),
                 "vLLM chat (top-20 logprobs of the answer token)": dict(endpoint="chat")}
        for name, kw in paths.items():
            be = make_backend("openai_compat", model=server.served_name, base_url=server.url,
                              concurrency=args.concurrency, timeout=600, **kw)
            predict(be, pairs.head(4), cache=NullCache(), progress=False)  # warm-up
            t0 = time.perf_counter()
            got = predict(be, pairs, cache=NullCache(), progress=False)
            results[name] = (time.perf_counter() - t0, got)

    print(f"\n{'method':52s} {'prompts/s':>9s} {'top agree':>9s} {'max |dp|':>9s} {'flagged exact':>13s}")
    for name, (t, got) in results.items():
        ok = got.status == "ok"
        top = float((got.choice[ok] == ref.choice[ok]).mean())
        dp = max(max(abs(a - b) for a, b in zip(p, q)) for p, q in zip(got.probs[ok], ref.probs[ok]))
        exact = f"{int(got['exact'].fillna(False).sum())}/{len(got)}" if "exact" in got else "-"
        print(f"{name:52s} {len(pairs) / t:9.2f} {top:9.3f} {dp:9.1e} {exact:>13s}  ({int(ok.sum())}/{len(got)} answered)")
    for name, (t, _) in list(results.items())[1:]:
        print(f"speedup: {t / t_local:.1f}x over {name.split(' (')[0]}")


if __name__ == "__main__":
    main()
