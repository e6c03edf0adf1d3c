"""Any OpenAI-compatible endpoint: OpenAI, a vLLM or llama.cpp server, other hosted APIs.

Temperature 0; retries with exponential backoff (honouring ``Retry-After``) on rate limits (429), server
errors (5xx), timeouts and broken connections; a limit on requests in flight; a timeout per request. The key
is read from an environment variable (never from a file in the repository).

``generate`` returns the reply text (chat endpoint). ``score`` has two paths:

- ``endpoint="completions"`` (a completions-capable server, e.g. vLLM; needs ``tokenizer``, the served model's
  folder or hub id): exact option scoring, as the local scorer does it. The chat prompt is written with the
  model's chat template, each option's tokens appended (" 1", " 1" "0", ...), and one request per pair sends every
  option's sequence (token ids) with ``echo`` and ``logprobs``: the server returns the log-probability of each
  prompt token, so ``log P(code tokens | prompt)`` is exact for codes of any number of tokens. The factor
  ``P(the number ends)`` (the next token is not a digit) is read from the top ``top_logprobs`` tokens after the
  code: a digit token not among them has at most the smallest shown probability (and all together at most the
  mass the shown ones leave); a prediction whose bound on the missed digit mass exceeds ``exact_tol`` (relative,
  on P(ends)) is flagged ``exact=False`` (it still has a distribution). With SmolLM2 (14 digit tokens) the top 20
  leave a bound of ~5e-3: raise the server's ``--max-logprobs`` and ``top_logprobs`` for exactness to 1e-4.
  With ``ends_from="digit_ids"`` (vLLM's own request fields) the factor is exact by construction instead: the
  request names every digit token of the tokenizer (``logprob_token_ids``) for the position after the code, and asks
  for no alternatives at the prompt positions (``prompt_logprobs=0``), so the reply carries one log-probability per
  prompt token instead of ``top_logprobs`` of them; tokens come back as ids (``return_tokens_as_token_ids``), so
  pieces that decode to the same text cannot merge. A server that ignores these fields is an error, never a guess.
  vLLM names at most 128 tokens per request: a tokenizer with more digit tokens (Llama 3.1: 1,208; Gemma 3: 337)
  gets one request per 128 of them, the first with the prompt's log-probabilities (``echo``), the others asking
  only for the named tokens after each option (vLLM's prefix cache keeps them cheap); the sum is still exact.
- ``endpoint="chat"`` (chat-only APIs): the top log-probabilities of the answer token, renormalised over the
  option codes. Exact only where the model's tokenizer writes every code as one token (OpenAI's, Llama-3's up to
  999); with ``tokenizer`` given, each prediction is flagged ``exact`` True or False from the codes' tokens (without
  it, unknown). When no option is among the top log-probabilities the prediction has status
  ``no_option_logprob`` and counts as unanswered (never a uniform distribution, which would pick the lowest code).
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

from .base import (
    Backend,
    GenerateRequest,
    OptionScores,
    Reply,
    RequestFailed,
    ScoreRequest,
    refuse_plain_text,
    render_prompt,
)

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
ENDPOINTS = ("chat", "completions")
ENDS_FROM = ("top_logprobs", "digit_ids")
MAX_LOGPROB_TOKEN_IDS = 128  # vLLM's bound on logprob_token_ids per request (vllm.sampling_params)


class OpenAICompatError(RuntimeError):
    """The endpoint failed in a way retries did not fix; the message says what came back."""


class ServerUnreachable(OpenAICompatError):
    """Every attempt of a request timed out or found no server: when nothing has been answered yet, the run
    stops at once instead of waiting out every request."""


#: A log-probability a server reports may exceed 0 by rounding only.
LOGPROB_TOL = 1e-4


def checked_logprob(value, where: str) -> float:
    """A log-probability from a reply, checked for meaning: a finite number <= 0 (a rounding excess is clipped).
    Anything else (NaN, +-inf, a positive value, not a number) fails the request with that reason."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OpenAICompatError(f"{where}: log-probability {value!r} is not a number (a malformed reply).")
    v = float(value)
    if not math.isfinite(v) or v > LOGPROB_TOL:
        raise OpenAICompatError(f"{where}: log-probability {v!r} is not a finite number <= 0, so it is no "
                                "log-probability; the server's reply cannot be scored (recorded as failed).")
    return min(v, 0.0)


def checked_mass(probs, where: str) -> None:
    """The probabilities of distinct tokens at one position add up to at most 1."""
    total = sum(probs)
    if total > 1 + 1e-3:
        raise OpenAICompatError(f"{where}: the top log-probabilities add up to a probability of {total:.3g}, more "
                                "than 1: the reply is no distribution (recorded as failed).")


def same_model(asked: str, answered: str) -> bool:
    """Whether a reply's ``model`` is the one asked for: the same name, a dated snapshot of it (gpt-4o ->
    gpt-4o-2024-08-06) or the same folder name (a server started on a path)."""
    a, b = asked.strip().rstrip("/"), answered.strip().rstrip("/")
    return a == b or b.startswith(a + "-") or a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


def endpoint_url(base_url: str, route: str) -> str:
    """``route`` joined to the path of ``base_url``, before its query (Azure's ``.../v1?api-version=...`` becomes
    ``.../v1/chat/completions?api-version=...``, not ``...?api-version=.../chat/completions``)."""
    base, sep, query = base_url.partition("?")
    base = base.split("#", 1)[0]
    return base.rstrip("/") + route + sep + query


class OpenAICompatBackend(Backend):
    kind = "openai_compat"
    supports_logprob = True

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 4,
                 timeout: float = 60.0, max_retries: int = 5, backoff: float = 1.0, top_logprobs: int = 20,
                 extra_body: dict | None = None, endpoint: str = "chat", tokenizer: str | None = None,
                 exact_tol: float = 1e-4, ends_from: str = "top_logprobs", check_model: bool = True):
        from ..core.provenance import redact_url, url_secrets

        if url_secrets(base_url):
            raise ValueError(f"base_url {redact_url(base_url)} carries {' and '.join(url_secrets(base_url))}: a "
                             "credential there would be recorded with the results (and urllib does not send "
                             "user:password@). Put the API key in an environment variable and name it with "
                             "api_key_env; a token the URL itself must hold is written as ${NAME} (filled from the "
                             "environment variable NAME when a request is sent, never recorded).")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
            raise ValueError(f"timeout must be a number of seconds > 0 and <= 3600, got {timeout!r}.")
        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}.")
        if ends_from not in ENDS_FROM:
            raise ValueError(f"ends_from must be one of {ENDS_FROM}, got {ends_from!r}.")
        if ends_from == "digit_ids" and endpoint != "completions":
            raise ValueError("ends_from='digit_ids' reads P(the number ends) on the completions path: give "
                             "endpoint='completions' (and tokenizer=), or leave ends_from at 'top_logprobs'.")
        if endpoint == "completions" and not tokenizer:
            raise ValueError("endpoint='completions' scores options exactly from the prompt's token log-probabilities: "
                             "give tokenizer= the served model's folder or hub id (the chat template and the options' "
                             "tokens must be the server's).")
        import re

        unset = [n for n in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", base_url) if n not in os.environ]
        if unset:
            raise ValueError(f"base_url names ${{{unset[0]}}}, but the environment variable {unset[0]} is not set: "
                             "set it (its value fills the URL when a request is sent), or give the URL without it.")
        self.base_url = base_url.rstrip("/")  # as given: ${NAME} placeholders stay unexpanded (recorded, shown)
        self.endpoint = endpoint
        self.url = endpoint_url(self.base_url, "/chat/completions")
        self.completions_url = endpoint_url(self.base_url, "/completions")
        self.check_model = bool(check_model)
        self._answered = 0  # requests answered so far (a server that answered once is not "unreachable")
        self._stop = False
        self.tokenizer_name = tokenizer
        self.tokenizer = None
        if tokenizer:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.exact_tol = float(exact_tol)
        self.model = model
        self.api_key = os.environ.get(api_key_env, "")
        self.api_key_env = api_key_env
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.top_logprobs = int(top_logprobs)
        self.extra_body = extra_body or {}
        self.ends_from = ends_from

    def identity(self) -> dict:
        ident = {"backend": self.kind, "base_url": self.url, "model": self.model, "temperature": 0}
        if self.endpoint == "chat" and self.top_logprobs != 20:  # the default stays out: earlier keys hold
            ident["top_logprobs"] = self.top_logprobs
        if self.endpoint == "completions":  # another scoring rule: other cache entries
            from .hf import files_digest

            ident |= {"endpoint": "completions", "tokenizer": self.tokenizer_name, "top_logprobs": self.top_logprobs,
                      "tokenizer_files": files_digest(self.tokenizer_name)}  # its template and tokens, by content
            if self.ends_from != "top_logprobs":  # the default stays out: earlier caches keep their keys
                ident["ends_from"] = self.ends_from
        return ident

    # ---- one request with retries -------------------------------------------------------------------------------
    def _post(self, body: dict, url: str | None = None) -> dict:
        url = url or self.url
        shown = url  # what messages say: the URL as given (placeholders unexpanded, so no secret)
        url = self._expand(url)
        data = json.dumps({"model": self.model, "temperature": 0, **body, **self.extra_body}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last, unreachable = "", True
        for attempt in range(self.max_retries + 1):
            if self._stop:
                raise ServerUnreachable(f"{shown}: not sent (the server stopped answering other requests).")
            wait = self.backoff * (2 ** attempt) * (0.5 + random.random() / 2)
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    payload = resp.read()
                unreachable = False
                try:
                    reply = json.loads(payload)
                    reply["choices"][0]["message" if shown == self.url else "index"]
                except (ValueError, KeyError, IndexError, TypeError):
                    last = f"malformed reply: {self._redact(repr(payload[:200]))}"
                else:
                    self._answered += 1
                    answered = reply.get("model") if isinstance(reply, dict) else None
                    if self.check_model and isinstance(answered, str) and answered and not same_model(self.model, answered):
                        raise OpenAICompatError(f"{shown} answered as model {answered!r}, not the {self.model!r} "
                                                "asked for: check the model name and the server (its answers would "
                                                "be recorded as another model's).")
                    return reply
            except urllib.error.HTTPError as err:
                unreachable = False
                detail = self._redact(err.read()[:300].decode(errors="replace"))
                if err.code not in RETRY_STATUS:
                    raise OpenAICompatError(f"{shown} answered HTTP {err.code}: {detail}. Check the model name, "
                                            f"the key in ${self.api_key_env} and the request.") from None
                last = f"HTTP {err.code}: {detail}"
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if retry_after:
                    try:
                        wait = max(wait, float(retry_after))
                    except ValueError:
                        pass
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                reason = getattr(err, "reason", err)
                last = self._redact(f"{err.__class__.__name__}: {reason}")
                if "timed out" in str(reason) or isinstance(reason, TimeoutError):
                    last += f" (no answer within the timeout of {self.timeout:g} s: raise timeout for a slow server)"
            if attempt < self.max_retries:
                time.sleep(wait)
        error = ServerUnreachable if unreachable else OpenAICompatError
        raise error(f"{shown} failed {self.max_retries + 1} times; last: {last}. The run can be "
                    f"resumed later: finished answers are cached.")

    def _expand(self, url: str) -> str:
        """The URL with its ``${NAME}`` placeholders filled from the environment (a missing one is an error)."""
        import re

        def value(m):
            if m.group(1) not in os.environ:
                raise OpenAICompatError(f"base_url names ${{{m.group(1)}}}, but the environment variable "
                                        f"{m.group(1)} is not set: set it (or give the URL without it).")
            return os.environ[m.group(1)]

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value, url)

    def _redact(self, text: str) -> str:
        from ..core.provenance import redact

        extra = [self.api_key, *(os.environ.get(n, "") for n in
                                 __import__("re").findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", self.base_url))]
        return redact(text, [e for e in extra if e])

    def _map(self, fn, items, on_failure):
        """``fn`` over ``items`` with ``concurrency`` requests in flight; a request that fails for good becomes
        ``on_failure(message)`` instead of aborting the others (they finish and are kept)."""
        def safe(item):
            try:
                return fn(item)
            except ServerUnreachable as exc:
                if self._answered == 0:  # nothing ever came back: stop the run, do not wait out every request
                    if not self._stop:
                        self._stop, self._stop_reason = True, str(exc)
                    raise
                return on_failure(str(exc))
            except OpenAICompatError as exc:
                return on_failure(str(exc))
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
                return on_failure(f"malformed reply from {self.base_url} ({exc.__class__.__name__}: "
                                  f"{self._redact(str(exc))}): recorded as failed.")

        pool = ThreadPoolExecutor(max_workers=self.concurrency)
        try:
            return list(pool.map(safe, items))
        except ServerUnreachable as exc:
            raise ServerUnreachable(f"{getattr(self, '_stop_reason', '') or exc} No request has been answered: is the server at {self.base_url} "
                                    f"running and serving {self.model!r}? (timeout {self.timeout:g} s per request; "
                                    "give a larger timeout for a slow server.)") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            self._stop, self._stop_reason = False, ""

    # ---- the Backend interface ---------------------------------------------------------------------------------
    def generate(self, requests: list[GenerateRequest]) -> list[str | RequestFailed]:
        refuse_plain_text(requests, f"{self.kind} generation (the chat endpoint)")

        def one(r: GenerateRequest) -> Reply:
            reply = self._post({"messages": r.messages, "max_tokens": r.max_new_tokens})
            choice = reply["choices"][0]
            reason = choice.get("finish_reason")  # "length": the token budget ended the reply
            return Reply((choice["message"].get("content") or "").strip(),
                         cut=None if reason is None else reason == "length")

        return self._map(one, requests, RequestFailed)

    def score(self, requests: list[ScoreRequest]) -> list[OptionScores]:
        failed = lambda msg: OptionScores(None, float("nan"), status="failed", error=msg)  # noqa: E731
        if self.endpoint == "completions":
            return self._map(self._score_completions, requests, failed)
        refuse_plain_text(requests, f"{self.kind} scoring on the chat endpoint")

        def one(r: ScoreRequest) -> OptionScores:
            reply = self._post({"messages": r.messages, "max_tokens": 8, "logprobs": True,
                                "top_logprobs": self.top_logprobs})
            content = ((reply["choices"][0].get("logprobs") or {}).get("content")) or []
            if not content:
                raise OpenAICompatError(f"{self.url} returned no logprobs for model {self.model}: this server "
                                        f"cannot do logprob scoring; use scoring='generate'.")
            # the answer token: the first generated token that starts with a digit
            position = next((t for t in content if t.get("token", "").strip()[:1].isdigit()), content[0])
            where = f"{self.url} (chat, answer token {position.get('token')!r})"
            top = {}
            for t in position.get("top_logprobs") or []:
                lp = checked_logprob(t["logprob"], where)
                key = str(t["token"]).strip()
                top[key] = max(top.get(key, -math.inf), lp)
            checked_mass([math.exp(checked_logprob(t["logprob"], where)) for t in position.get("top_logprobs") or []],
                         where)
            logps = [top.get(code, -math.inf) for code in r.options]
            mass = sum(math.exp(lp) for lp in logps if lp > -math.inf)
            if mass <= 0:  # no option among the top log-probabilities: no distribution, never a made-up one
                return OptionScores(probs=None, option_mass=0.0, logprobs=logps, status="no_option_logprob")
            probs = [math.exp(lp) / mass if lp > -math.inf else 0.0 for lp in logps]
            return OptionScores(probs=probs, option_mass=mass, logprobs=logps, exact=self._codes_single(r))

        return self._map(one, requests, failed)

    def _codes_single(self, r: ScoreRequest) -> bool | None:
        """Whether the chat path is exact for this request: every code one token (unknown without a tokenizer)."""
        if self.tokenizer is None:
            return None
        from .options import option_token_ids

        def digits(code: str) -> list[int]:  # the code's tokens from its first digit (the path reads that one)
            ids = option_token_ids(self.tokenizer, code, r.prefix)
            while ids and not self.tokenizer.decode(ids[:1]).strip():
                ids = ids[1:]  # a separate space token (SmolLM2 writes " 1" as " " "1")
            return ids

        return all(len(digits(c)) == 1 for c in r.options)

    def _digit_strings(self) -> set[str]:
        """The text of every token of the served model that starts with a digit (the number would go on)."""
        if not hasattr(self, "_digits"):
            self._digits = {self.tokenizer.decode([i]) for i in self._digit_ids()}
        return self._digits

    def _digit_ids(self) -> list[int]:
        """The id of every token of the served model whose text starts with a digit (the number would go on)."""
        if not hasattr(self, "_digit_id_list"):
            tok = self.tokenizer
            self._digit_id_list = [i for i in range(len(tok)) if tok.decode([i])[:1].isdigit()]
        return self._digit_id_list

    def _choices(self, body: dict, n: int) -> list[dict]:
        """The completions endpoint's choices for ``n`` prompts, in the prompts' order."""
        reply = self._post(body, self.completions_url)
        choices = sorted(reply["choices"], key=lambda c: c["index"])
        if len(choices) != n:
            raise OpenAICompatError(f"{self.completions_url} answered {len(choices)} choices for {n} prompts: "
                                    "it does not take a batch of token-id prompts; use endpoint='chat'.")
        return choices

    def _score_completions(self, r: ScoreRequest) -> OptionScores:
        """Exact option scores from the prompt log-probabilities of prompt + each option (one request per pair)."""
        from .options import option_token_ids

        tok = self.tokenizer
        text = render_prompt(tok, r.messages, r.prefix, model=f"The tokenizer {self.tokenizer_name}")
        prompt = tok(text, add_special_tokens=False)["input_ids"]
        options = [option_token_ids(tok, c, r.prefix) for c in r.options]
        seqs = [prompt + o for o in options]
        body = {"prompt": seqs, "max_tokens": 1, "echo": True, "logprobs": self.top_logprobs}
        chunks = [self._digit_ids()[i:i + MAX_LOGPROB_TOKEN_IDS]
                  for i in range(0, len(self._digit_ids()), MAX_LOGPROB_TOKEN_IDS)]
        if self.ends_from == "digit_ids":
            body |= {"logprobs": len(chunks[0]), "logprob_token_ids": chunks[0], "prompt_logprobs": 0,
                     "return_tokens_as_token_ids": True}
        choices = self._choices(body, len(seqs))
        more = []  # the other chunks of digit tokens: their log-probabilities after each option only
        if self.ends_from == "digit_ids":
            more = [self._choices({"prompt": seqs, "max_tokens": 1, "logprobs": len(c), "logprob_token_ids": c,
                                   "return_tokens_as_token_ids": True}, len(seqs)) for c in chunks[1:]]
        logps, exact = [], True
        for o, (seq, ch) in enumerate(zip(seqs, choices)):
            lp = ch.get("logprobs") or {}
            values, tops = lp.get("token_logprobs") or [], lp.get("top_logprobs") or []
            if len(values) < len(seq) + 1 or len(tops) < len(seq) + 1:
                raise OpenAICompatError(f"{self.completions_url} returned no log-probabilities of the prompt tokens "
                                        f"(echo with logprobs) for model {self.model}: it cannot score options "
                                        "exactly; use endpoint='chat' or scoring='generate'.")
            where = f"{self.completions_url} (option {r.options[len(logps)]!r})"
            code = sum(checked_logprob(v, where) for v in values[len(prompt):len(seq)])  # log P(code | prompt)
            after = {t: checked_logprob(v, where) for t, v in (tops[len(seq)] or {}).items()}  # after the code
            checked_mass([math.exp(v) for v in after.values()], where)
            if self.ends_from == "digit_ids":
                named = [after.get(f"token_id:{i}") for i in chunks[0]]
                for c, replies in zip(chunks[1:], more):
                    tops_c = (replies[o].get("logprobs") or {}).get("top_logprobs") or []
                    named += [(tops_c[-1] or {}).get(f"token_id:{i}") if tops_c else None for i in c]
                if any(v is None for v in named):
                    raise OpenAICompatError(
                        f"{self.completions_url} did not return the log-probabilities of the {len(named)} digit "
                        f"tokens it was asked for (logprob_token_ids, return_tokens_as_token_ids; it returned "
                        f"{len(after)} tokens): this server does not take vLLM's fields; use "
                        f"ends_from='top_logprobs'.")
                p_digit = min(sum(math.exp(v) for v in named), 1 - 1e-12)  # every digit token: exact
                logps.append(code + math.log1p(-p_digit))
                continue
            shown = [math.exp(v) for v in after.values()]
            p_digit = min(sum(math.exp(v) for t, v in after.items() if t[:1].isdigit()), 1 - 1e-12)
            # a digit token not among the shown ones has at most the smallest shown probability, and all of them
            # together at most the mass the shown ones leave
            hidden = len(self._digit_strings() - set(after))
            bound = min(max(0.0, 1.0 - sum(shown)), hidden * (min(shown) if shown else 1.0))
            exact &= bound <= self.exact_tol * (1 - p_digit)
            logps.append(code + math.log1p(-p_digit))
        top = max(logps)
        weights = [math.exp(v - top) for v in logps]
        return OptionScores(probs=[w / sum(weights) for w in weights], option_mass=sum(math.exp(v) for v in logps),
                            logprobs=logps, exact=bool(exact))
