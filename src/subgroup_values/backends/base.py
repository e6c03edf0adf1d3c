"""What every backend offers: option scoring and/or generation, and an identity for the response cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..prompts import ANSWER_PREFIX


@dataclass
class ScoreRequest:
    """Score the options that may follow the assistant's ``Answer:`` after ``messages``."""

    messages: list[dict]
    options: list[str]
    group: str | None = None  # requests of one group share a prompt prefix (e.g. one question's text and options)
    prefix: str = ANSWER_PREFIX  # the assistant's reply starts with this; the options follow it after a space


@dataclass
class OptionScores:
    probs: list[float] | None  # renormalised over the options; None when the backend could not score them
    option_mass: float  # probability of all options before renormalising (the rest went elsewhere)
    logprobs: list[float] = field(default_factory=list)  # log P(code, then the number ends)
    status: str = "ok"  # "ok", or why there is no distribution ("no_option_logprob", "failed")
    error: str = ""  # what went wrong, for status "failed"
    exact: bool | None = None  # False: an approximation (see the backend); None: exact by construction or unknown


@dataclass
class RequestFailed:
    """A request that failed for good (retries exhausted, a client error): recorded, never cached."""

    error: str


@dataclass
class GenerateRequest:
    messages: list[dict]
    max_new_tokens: int = 12


class Reply(str):
    """A generated reply (a ``str``) that says how decoding ended: ``cut`` is True when it stopped at the token
    budget (``max_new_tokens``) before the model ended its reply, False when the model ended it, None when the
    backend cannot tell; ``tokens`` is the number of tokens generated (without the end-of-sequence token)."""

    cut: bool | None
    tokens: int | None

    def __new__(cls, text: str, cut: bool | None = None, tokens: int | None = None):
        obj = super().__new__(cls, text)
        obj.cut, obj.tokens = cut, tokens
        return obj


def reply_records(replies: list) -> list[dict]:
    """Records of generated replies for the response cache: a reply, or a failure (``failed``: the request's
    error; ``empty``: nothing came back) that is recorded but not stored."""
    out = []
    for r in replies:
        if isinstance(r, RequestFailed):
            out.append({"reply": None, "status": "failed", "error": r.error})
        elif not (r or "").strip():
            out.append({"reply": r or "", "status": "empty", "error": "empty reply (not stored)"})
        else:
            cut, tokens = getattr(r, "cut", None), getattr(r, "tokens", None)
            out.append({"reply": str(r)} | ({"cut": bool(cut)} if cut is not None else {})
                       | ({"tokens": int(tokens)} if tokens is not None else {}))
    return out


class Backend:
    """Base class; subclasses implement what they support."""

    kind = "base"
    supports_logprob = False

    def identity(self) -> dict:
        """Everything about the backend that changes an answer (goes into the cache key)."""
        raise NotImplementedError

    def score(self, requests: list[ScoreRequest]) -> list[OptionScores]:
        raise NotImplementedError(f"{self.kind} backend cannot score options; use scoring='generate'.")

    def generate(self, requests: list[GenerateRequest]) -> list[str]:
        raise NotImplementedError
