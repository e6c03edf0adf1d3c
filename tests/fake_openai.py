"""A small OpenAI-compatible server on 127.0.0.1 for fault injection in tests (loopback only, bounded).

``behaviour`` is a list consumed one request at a time: "ok", "429", "500", "malformed", "400", "nologprobs";
when it runs out, requests succeed. Every request body is recorded in ``requests``.

``/v1/completions`` answers as vLLM does for token-id prompts with ``echo`` and ``logprobs`` (one choice per
prompt: ``tokens``, ``token_logprobs`` with None first, ``top_logprobs`` per position, then one greedy token),
computed with a real local model (``model_path``), so that faults can be injected into an exact scoring path.
It honours vLLM's own fields as vLLM does: ``prompt_logprobs`` (alternatives at the prompt positions; 0: the prompt
token only), ``logprob_token_ids`` (exactly these tokens after the prompt) and ``return_tokens_as_token_ids``
("token_id:N" keys); behaviour "generic" answers as a server that ignores them.

``mutate(reply, path)`` (optional) rewrites every successful reply before it is sent (fault injection: NaN
log-probabilities, another model's name ...); behaviour "hang" waits ``hang_seconds`` before answering.
"""

from __future__ import annotations

import functools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, behaviour: list[str] | None = None, answer: str = "Answer: 3", model_path=None,
                 mutate=None, hang_seconds: float = 5.0):
        self.behaviour = list(behaviour or [])
        self.mutate = mutate
        self.hang_seconds = hang_seconds
        self.lm = None
        if model_path is not None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.lm = (AutoTokenizer.from_pretrained(model_path),
                       AutoModelForCausalLM.from_pretrained(model_path, dtype="float32").eval())
        self.answer = answer
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer.lock:
                    outer.requests.append(body)
                    what = outer.behaviour.pop(0) if outer.behaviour else "ok"
                if what in ("429", "500", "400"):
                    self.send_response(int(what))
                    if what == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    auth = self.headers.get("Authorization", "")  # echoed, as some servers do with a bad key
                    self.wfile.write(json.dumps({"error": {"message": f"fake {what} ({auth})"}}).encode())
                    return
                if what == "hang":
                    import time

                    time.sleep(outer.hang_seconds)
                if what == "malformed":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b'{"choices": [')
                    return
                if self.path.endswith("/completions") and not self.path.endswith("/chat/completions"):
                    try:
                        reply = outer.completions(body, with_logprobs=what != "nologprobs",
                                                  vllm_fields=what != "generic")
                    except ValueError as exc:  # what vLLM refuses, it answers with HTTP 400
                        self.send_response(400)
                        self.end_headers()
                        self.wfile.write(json.dumps({"error": {"message": str(exc)}}).encode())
                        return
                    if outer.mutate is not None:
                        reply = outer.mutate(reply, self.path)
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(json.dumps(reply).encode())
                    return
                reply = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": outer.answer}}]}
                if body.get("logprobs") and what != "nologprobs":
                    top = [{"token": "3", "logprob": -0.4}, {"token": "2", "logprob": -1.6},
                           {"token": "10", "logprob": -2.5}, {"token": " Answer", "logprob": -5.0}]
                    reply["choices"][0]["logprobs"] = {"content": [
                        {"token": "Answer", "logprob": -0.01, "top_logprobs": []},
                        {"token": ":", "logprob": -0.01, "top_logprobs": []},
                        {"token": " 3", "logprob": -0.4, "top_logprobs": top}]}
                if outer.mutate is not None:
                    reply = outer.mutate(reply, self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(json.dumps(reply).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def completions(self, body: dict, with_logprobs: bool = True, vllm_fields: bool = True) -> dict:
        import torch

        tok, model = self.lm
        k = int(body.get("logprobs") or 0)
        k_prompt = body.get("prompt_logprobs") if vllm_fields and body.get("prompt_logprobs") is not None else k
        named = body.get("logprob_token_ids") if vllm_fields else None
        if named and len(named) > 128:  # vLLM's bound (MAX_LOGPROB_TOKEN_IDS), answered as vLLM does: HTTP 400
            raise ValueError(f"Too many logprob_token_ids: {len(named)}. The max is 128.")
        as_ids = bool(vllm_fields and body.get("return_tokens_as_token_ids"))
        # each token's text decoded once per request (the tiny model's 1000-wide lists ask often)
        name = functools.cache((lambda t: f"token_id:{t}") if as_ids else (lambda t: tok.decode([t])))
        choices = []
        for i, ids in enumerate(body["prompt"]):
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            nxt = int(logp[-1].argmax())
            seq = list(ids) + [nxt]
            text = [name(t) for t in seq]
            # plain floats in bulk: reading a tensor element by element is the slow part
            values = [None] + logp[torch.arange(len(seq) - 1), torch.tensor(seq[1:])].tolist()
            tops = [None]
            for j in range(1, len(seq)):
                generated = j == len(seq) - 1
                if generated and named:
                    shown = [int(t) for t in named] + [seq[j]]  # the named tokens and the sampled one
                else:
                    top = torch.topk(logp[j - 1], min(k if generated else k_prompt, logp.shape[-1]))
                    shown = top.indices.tolist() + [seq[j]]  # vLLM adds the actual token
                tops.append(dict(zip(map(name, shown), logp[j - 1, shown].tolist())))
            lp = {"tokens": text, "token_logprobs": values, "top_logprobs": tops,
                  "text_offset": [sum(len(x) for x in text[:j]) for j in range(len(text))]}
            choices.append({"index": i, "text": "".join(text), "finish_reason": "length",
                            "logprobs": lp if with_logprobs else None})
        return {"id": "c", "object": "text_completion", "model": body.get("model"), "choices": choices}

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
