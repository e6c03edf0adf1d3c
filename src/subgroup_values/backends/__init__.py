"""Backends that answer persona prompts: local transformers models and OpenAI-compatible endpoints."""

from __future__ import annotations

from ..core.choices import BACKENDS
from .base import Backend, GenerateRequest, OptionScores, RequestFailed, ScoreRequest


def make_backend(kind: str, model: str, adapter: str | None = None, dtype: str = "auto", device: str | None = None,
                 batch_size: int = 16, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 4, endpoint: str = "chat", tokenizer: str | None = None,
                 ends_from: str = "top_logprobs", timeout: float = 60.0, **kwargs) -> Backend:
    """Build a backend by name (``hf`` or ``openai_compat``).

    ``endpoint`` and ``tokenizer`` are the server's scoring path (see :mod:`.openai_compat`): ``completions`` with
    the served model's folder as ``tokenizer`` scores options exactly; ``chat`` reads the top log-probabilities.
    ``ends_from="digit_ids"`` (a vLLM server) reads P(the number ends) from every digit token, exactly.
    ``timeout``: seconds a server request may take (openai_compat; the local backend has no requests).
    """
    if kind == "hf":
        if endpoint != "chat" or tokenizer or ends_from != "top_logprobs":
            raise ValueError("endpoint, tokenizer and ends_from belong to backend 'openai_compat' (a server); the hf "
                             "backend scores with its own model's tokenizer: leave them at their defaults.")
        from .hf import HFBackend

        return HFBackend(model, adapter=adapter, dtype=dtype, device=device, batch_size=batch_size, **kwargs)
    if kind == "openai_compat":
        from .openai_compat import OpenAICompatBackend

        if not base_url:
            raise ValueError("openai_compat needs base_url (e.g. http://localhost:8000/v1 for a vLLM server).")
        return OpenAICompatBackend(base_url=base_url, model=model, api_key_env=api_key_env,
                                   concurrency=concurrency, endpoint=endpoint, tokenizer=tokenizer,
                                   ends_from=ends_from, timeout=timeout, **kwargs)
    raise ValueError(f"Unknown backend {kind!r}; expected one of {BACKENDS}.")


__all__ = ["Backend", "GenerateRequest", "OptionScores", "RequestFailed", "ScoreRequest", "make_backend", "BACKENDS"]
