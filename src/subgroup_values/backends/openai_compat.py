"""Any OpenAI-compatible chat-completions endpoint: OpenAI, a vLLM or llama.cpp server, other hosted APIs.

Temperature 0; retries with exponential backoff (honouring ``Retry-After``) on rate limits (429), server
errors (5xx), timeouts and broken connections; a limit on requests in flight; a timeout per request. The key
is read from an environment variable (never from a file in the repository).

``generate`` returns the reply text. ``score`` asks for the top log-probabilities of the answer token and
renormalises them over the option codes; it needs a server that returns ``logprobs`` (OpenAI and vLLM do).
When no option is among the top log-probabilities the prediction has status ``no_option_logprob`` and counts as
unanswered (never a uniform distribution, which would pick the lowest code).
With tokenisers that write numbers up to 999 as one token (OpenAI's, Llama-3's) this is exact; where a code
is split over several tokens only its first token is seen, so prefer a local ``hf`` backend for such models.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from .base import Backend, GenerateRequest, OptionScores, RequestFailed, ScoreRequest

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class OpenAICompatError(RuntimeError):
    """The endpoint failed in a way retries did not fix; the message says what came back."""


class OpenAICompatBackend(Backend):
    kind = "openai_compat"
    supports_logprob = True

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 1.0, top_logprobs: int = 20,
                 extra_body: dict | None = None):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = os.environ.get(api_key_env, "")
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.extra_body = extra_body or {}

    def identity(self) -> dict:
        return {"backend": self.kind, "base_url": self.url, "model": self.model, "temperature": 0}

    # ---- one request with retries -------------------------------------------------------------------------------
    def _post(self, body: dict) -> dict:
        data = json.dumps({"model": self.model, "temperature": 0, **body, **self.extra_body}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                try:
                    reply = json.loads(payload)
                    reply["choices"][0]["message"]
                    return reply
                except (ValueError, KeyError, IndexError, TypeError):
                    last = f"malformed reply: {payload[:200]!r}"
            except urllib.error.HTTPError as err:
                detail = err.read()[:300].decode(errors="replace")
                if err.code not in RETRY_STATUS:
                    raise OpenAICompatError(f"{self.url} answered HTTP {err.code}: {detail}. Check the model name, "
                                            f"the key in ${self.api_key_env} and the request.") from None
                last = f"HTTP {err.code}: {detail}"
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if retry_after:
                    try:
                        wait = max(wait, float(retry_after))
                    except ValueError:
                        pass
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                last = f"{err.__class__.__name__}: {getattr(err, 'reason', err)}"
            if attempt < self.max_retries:
                time.sleep(wait)
        raise OpenAICompatError(f"{self.url} failed {self.max_retries + 1} times; last: {last}. The run can be "
                                f"resumed later: finished answers are cached.")

    def _map(self, fn, items, on_failure):
        """``fn`` over ``items`` with ``concurrency`` requests in flight; a request that fails for good becomes
        ``on_failure(message)`` instead of aborting the others (they finish and are kept)."""
        def safe(item):
            try:
                return fn(item)
            except OpenAICompatError as exc:
                return on_failure(str(exc))

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(safe, items))

    # ---- the Backend interface ---------------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[str | RequestFailed]:
        def one(r: GenerateRequest) -> str:
            reply = self._post({"messages": r.messages, "max_tokens": r.max_new_tokens})
            return (reply["choices"][0]["message"].get("content") or "").strip()

        return self._map(one, requests, RequestFailed)

    def score(self, requests: list[ScoreRequest]) -> list[OptionScores]:
        def one(r: ScoreRequest) -> OptionScores:
            reply = self._post({"messages": r.messages, "max_tokens": 8, "logprobs": True,
                                "top_logprobs": self.top_logprobs})
            content = ((reply["choices"][0].get("logprobs") or {}).get("content")) or []
            if not content:
                raise OpenAICompatError(f"{self.url} returned no logprobs for model {self.model}: this server "
                                        f"cannot do logprob scoring; use scoring='generate'.")
            # the answer token: the first generated token that starts with a digit
            position = next((t for t in content if t.get("token", "").strip()[:1].isdigit()), content[0])
            top = {t["token"].strip(): t["logprob"] for t in position.get("top_logprobs", [])}
            logps = [top.get(code, -math.inf) for code in r.options]
            mass = sum(math.exp(lp) for lp in logps if lp > -math.inf)
            if mass <= 0:  # no option among the top log-probabilities: no distribution, never a made-up one
                return OptionScores(probs=None, option_mass=0.0, logprobs=logps, status="no_option_logprob")
            probs = [math.exp(lp) / mass if lp > -math.inf else 0.0 for lp in logps]
            return OptionScores(probs=probs, option_mass=mass, logprobs=logps)

        return self._map(one, requests, lambda msg: OptionScores(None, float("nan"), status="failed", error=msg))
