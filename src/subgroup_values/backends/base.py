"""What every backend offers: option scoring and/or generation, and an identity for the response cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..survey.prompts import ANSWER_PREFIX, PLAIN_ROLE, plain_text


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


class NoChatTemplateError(ValueError):
    """Chat messages for a model whose tokenizer has no chat template (a base model)."""


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer, messages: list[dict], answer_prefix: str | None = ANSWER_PREFIX,
                  model: str = "the model") -> str:
    """The text a model reads for ``messages``, then ``answer_prefix``: a plain-text prompt (template
    ``base_completion``) as it is written, after the tokenizer's BOS token when its encoding starts with one (as
    the model was trained); chat messages through the tokenizer's chat template. Chat messages for a tokenizer
    without a chat template (a base model) are refused."""
    text = plain_text(messages)
    if text is not None:
        bos = tokenizer.bos_token if tokenizer.bos_token_id is not None and \
            tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id] else ""
        return (bos or "") + text + (answer_prefix or "")
    if not has_chat_template(tokenizer):
        raise NoChatTemplateError(
            f"{model} has no chat template (a base model, not instruction-tuned): the chat prompt templates cannot "
            f"be written for it. Use the plain-text template base_completion (`template: base_completion` in the "
            f"profile's run, or --template base_completion), or a model with a chat template.")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + (answer_prefix or "")


def refuse_plain_text(requests: list, where: str) -> None:
    """A backend that sends chat messages cannot send a plain-text prompt (role ``PLAIN_ROLE``)."""
    if any(plain_text(r.messages) is not None for r in requests):
        raise ValueError(f"{where} sends chat messages; a base_completion prompt (role {PLAIN_ROLE!r}) is plain text "
                         f"for a base model: score it locally (backend hf) or on a server's completions endpoint "
                         f"(endpoint completions with tokenizer=).")


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
