"""Local transformers models (optionally with a LoRA adapter): exact option log-probabilities and generation.

Option scoring, exactly. The probability that the model answers option code ``c`` after ``Answer:`` is

    P(c) = P(tokens of " c" | prompt) * P(the number ends | prompt, " c")

where "the number ends" means the next token does not start with a digit. Without the second factor "1" would
also collect the mass of "10", "11", ... (the single-first-token shortcut is wrong on 1-10 scales). The option
probabilities are renormalised; their total before renormalising is reported as ``option_mass``.

Speed, without changing the arithmetic (fp32 by default on CPU):
1. requests of one group share a prompt prefix (by default a question's text and options, shared by all its
   subgroups; with the persona-first template a subgroup's persona): its keys and values are computed once
   and reused for every request of the group;
2. suffixes are batched by length with right padding, and only the last real position goes through the
   output layer;
3. the option continuations ("<space>1", "<space>1" "0", ...) run as short branches on top of each prompt's cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.provenance import digest_files as _file_digest
from ..survey.prompts import ANSWER_PREFIX
from .base import Backend, GenerateRequest, OptionScores, Reply, ScoreRequest, render_prompt
from .options import OptionTree, common_prefix_len, digit_token_mask, layer_masks, option_token_ids, option_tree


def weights_digest(path: str | Path | None) -> str | None:
    """A short hash of a local model or adapter folder's weights (None for hub ids)."""
    if path is None:
        return None
    p = Path(path)
    if not p.is_dir():
        return None
    files = [f for f in p.iterdir() if f.suffix in (".safetensors", ".bin") and f.is_file() and f.name not in NOT_MODEL]
    return _file_digest(files) if files else None


#: Files of a model or adapter folder that do not change its answers (records written beside it, training state).
NOT_MODEL = ("provenance.json", "recipe.json", "conversion.json", "training_args.bin", "trainer_state.json",
             "README.md")


def files_digest(path: str | Path | None) -> str | None:
    """A short hash of everything else in a local model or adapter folder that changes an answer: its config,
    chat template, tokenizer and generation settings (``config.json``, ``chat_template.jinja``,
    ``adapter_config.json`` ...); None for hub ids. Goes into the response cache's key beside the weights."""
    if path is None or not Path(path).is_dir():
        return None
    files = [f for f in Path(path).iterdir() if f.is_file() and f.suffix not in (".safetensors", ".bin")
             and f.name not in NOT_MODEL and not f.name.startswith(".")]
    return _file_digest(files) if files else None


def pick_device(device: str | None = None) -> str:
    if device:
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"dtype must be auto, float32, bfloat16 or float16; got {dtype!r}.") from None


class ModelFolderError(ValueError):
    """A model or adapter folder that cannot be what was asked for (missing, damaged, for another model)."""


def adapter_base(adapter: str | Path) -> dict:
    """The base model an adapter was trained on, as its training recorded it (``provenance.json``: the base's
    path and weights hash) or as PEFT did (``adapter_config.json``: its path only)."""
    import json

    rec = Path(adapter) / "provenance.json"
    if rec.is_file():
        base = (json.loads(rec.read_text()).get("data") or {}).get("base_model")
        if base:
            return base
    cfg = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return {"path": cfg.get("base_model_name_or_path"), "weights": None}


def _load_adapter(net, model_name: str, adapter: str):
    """Merge a LoRA adapter into ``net`` after checking that it was trained on this base model."""
    from peft import PeftModel

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"No LoRA adapter at {adapter} (expected adapter_config.json).")
    base = adapter_base(adapter)
    have = weights_digest(model_name)
    if base.get("weights") and have and base["weights"] != have:
        raise ModelFolderError(f"The adapter at {adapter} was trained on the base model {base.get('path')} (weights "
                               f"{base['weights']}), not on {model_name} (weights {have}): give the base model it "
                               "was trained on, or train an adapter for this one.")
    try:
        return PeftModel.from_pretrained(net, adapter).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:
        raise ModelFolderError(f"The adapter at {adapter} does not fit the model {model_name} (it names "
                               f"{base.get('path')!r} as its base; {exc.__class__.__name__}: "
                               f"{str(exc).splitlines()[0][:200]}): give the base model it was trained on.") from None


class HFBackend(Backend):
    kind = "hf"
    supports_logprob = True

    def __init__(self, model: str | Path, adapter: str | Path | None = None, dtype: str = "auto",
                 device: str | None = None, batch_size: int = 16, prefix_cache: bool = True,
                 progress: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = str(model)
        if not Path(self.model_name).is_dir() and os.environ.get("HF_HUB_OFFLINE") == "1":
            from huggingface_hub import try_to_load_from_cache

            try:
                cached = try_to_load_from_cache(self.model_name, "config.json")
            except ValueError:  # not a valid hub id either (a path)
                cached = None
            if not isinstance(cached, str):
                raise FileNotFoundError(
                    f"No model folder at {self.model_name!r} (and, offline, no hub copy of it in the local cache: "
                    "HF_HUB_OFFLINE=0, or `make ... HUB=online`, downloads a hub id). "
                    f"For the embedded model run `make model`; for the tiny test model `make tiny-model`; for "
                    f"another model give the path of a local folder with config.json.")
        self.adapter = str(adapter) if adapter else None
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
        self.batch_size = int(batch_size)
        self.prefix_cache = bool(prefix_cache)
        self.progress = progress
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            net = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=self.dtype)
        except Exception as exc:  # a missing, truncated or foreign file: safetensors, json or transformers errors
            raise ModelFolderError(
                f"The model at {self.model_name} could not be loaded ({exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0][:300] if str(exc) else ''}): its weights or config are missing or "
                f"damaged. Rebuild it (`make model` for the embedded model, `make tiny-model` for the tiny one, "
                f"after removing the folder) or point to a complete model folder.") from None
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.adapter:
            net = _load_adapter(net, self.model_name, self.adapter)
        self.model = net.to(self.device).eval()
        n_out = self.model.get_output_embeddings().weight.shape[0]
        self.digit_mask = digit_token_mask(self.tokenizer, n_out).to(self.device)
        self._option_ids: dict[tuple[str, str], list[int]] = {}
        self._trees: dict[tuple, OptionTree] = {}
        self._identity = {"backend": "hf", "model": self.model_name, "model_weights": weights_digest(self.model_name),
                          "model_files": files_digest(self.model_name),
                          "adapter": self.adapter, "adapter_weights": weights_digest(self.adapter),
                          "adapter_files": files_digest(self.adapter),
                          "dtype": str(self.dtype).replace("torch.", "")}

    def identity(self) -> dict:
        return dict(self._identity)

    # ---- prompts ----------------------------------------------------------------------------------------------
    def render(self, messages: list[dict], answer_prefix: str | None = ANSWER_PREFIX) -> str:
        """The prompt's text: chat messages through the chat template, a base_completion prompt as written (a model
        without a chat template refuses chat messages: :func:`~subgroup_values.backends.base.render_prompt`)."""
        return render_prompt(self.tokenizer, messages, answer_prefix, model=f"The model at {self.model_name}")

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def option_ids(self, code: str, prefix: str = ANSWER_PREFIX) -> list[int]:
        """Tokens of ' <code>' as they follow ``prefix`` (computed in context, so merges are respected)."""
        key = (prefix, code)
        if key not in self._option_ids:
            self._option_ids[key] = option_token_ids(self.tokenizer, code, prefix)
        return self._option_ids[key]

    # ---- option scoring ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def score(self, requests: list[ScoreRequest]) -> list[OptionScores]:
        encoded = [self.encode(self.render(r.messages, r.prefix)) for r in requests]
        groups: dict[object, list[int]] = {}
        for i, r in enumerate(requests):
            key = r.group if (self.prefix_cache and r.group is not None) else ("__single__", i)
            groups.setdefault(key, []).append(i)
        results: list[OptionScores | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="scoring", disable=not self.progress, leave=False)
        for members in groups.values():
            prefix_len = common_prefix_len([encoded[i] for i in members]) if len(members) > 1 else 0
            prefix_len = min(prefix_len, min(len(encoded[i]) for i in members) - 1)
            prefix_kv = self._prefix(encoded[members[0]][:prefix_len]) if prefix_len > 0 else None
            order = sorted(members, key=lambda i: len(encoded[i]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                scores = self._score_chunk([encoded[i][prefix_len:] for i in chunk], prefix_kv, prefix_len,
                                           [[self.option_ids(c, requests[i].prefix) for c in requests[i].options]
                                            for i in chunk])
                for i, s in zip(chunk, scores):
                    results[i] = s
                bar.update(len(chunk))
        bar.close()
        return results  # type: ignore[return-value]

    def _prefix(self, ids: list[int]):
        from transformers import DynamicCache

        # a plain cache keeps every key, also for sliding-window layers (the suffix's mask applies the window)
        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True, logits_to_keep=1,
                         past_key_values=DynamicCache())
        return _cache_tensors(out.past_key_values)

    def _tree(self, option_tokens: list[list[int]]) -> OptionTree:
        key = tuple(tuple(t) for t in option_tokens)
        tree = self._trees.get(key)
        if tree is None:
            tree = self._trees[key] = option_tree([list(t) for t in option_tokens])
        return tree

    def _score_chunk(self, suffixes: list[list[int]], prefix_kv, prefix_len: int,
                     option_tokens: list[list[list[int]]]) -> list[OptionScores]:
        """One forward pass per chunk: each row holds its suffix, then its option tree (a 4-D attention mask lets
        every tree node see the prompt and its own ancestors only), so options cost one token per tree node. The
        mask and the read-out are tensor operations per row (a question's subgroups share one tree)."""
        from transformers import DynamicCache

        b = len(suffixes)
        trees = [self._tree(opts) for opts in option_tokens]
        lengths = torch.tensor([len(s) for s in suffixes])
        width = int(lengths.max())
        n_nodes = max(len(t.tokens) for t in trees)
        total = width + n_nodes
        ids = torch.full((b, total), self.tokenizer.pad_token_id, dtype=torch.long)
        positions = torch.zeros((b, total), dtype=torch.long)
        positions[:, :width] = prefix_len + torch.arange(width)
        allowed = torch.zeros((b, 1, total, prefix_len + total), dtype=torch.bool)
        allowed[:, :, :, :prefix_len] = True
        diag = torch.arange(total)
        allowed[:, 0, diag, prefix_len + diag] = True  # every position sees itself (padding sees nothing else)
        col = torch.arange(width)
        real = col[None, :] < lengths[:, None]  # [b, width]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed[:, 0, :width, prefix_len:prefix_len + width] = causal[None] & real[:, None, :] & real[:, :, None]
        allowed[:, 0, width:, prefix_len:prefix_len + width] = real[:, None, :]  # tree nodes see the whole suffix
        for row, (s, tree) in enumerate(zip(suffixes, trees)):
            n, k = len(s), len(tree.tokens)
            ids[row, :n] = torch.tensor(s)
            ids[row, width:width + k] = tree.token_tensor
            positions[row, width:width + k] = prefix_len + n + tree.depth_tensor
            allowed[row, 0, width:width + k, prefix_len + width:prefix_len + width + k] = tree.visible
        dev = self.device
        cache = None
        if prefix_kv is not None:
            cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1))
                                                 for k, v in prefix_kv])
        body = self.model.get_decoder()
        key_pos = torch.cat([torch.arange(prefix_len).expand(b, -1), positions], dim=1)
        mask = layer_masks(self.model.config, allowed.to(dev), positions.to(dev), key_pos.to(dev), self.dtype)
        out = body(input_ids=ids.to(dev), attention_mask=mask, position_ids=positions.to(dev),
                   past_key_values=cache, use_cache=False)
        hidden = out.last_hidden_state
        # only the positions we read go through the output layer: the suffix's last token and the tree nodes
        gather = torch.cat([(lengths - 1).unsqueeze(1), width + torch.arange(n_nodes).unsqueeze(0).expand(b, -1)],
                           dim=1)
        picked = hidden[torch.arange(b).unsqueeze(1), gather.to(dev)]
        logp = torch.log_softmax(self.model.get_output_embeddings()(picked).float(), dim=-1)
        # log P(the number ends) after each position: the next token is not a digit
        p_digit = logp.exp()[:, :, self.digit_mask].sum(-1)
        ends = torch.log1p(-p_digit.clamp(max=1 - 1e-12)).double().cpu().numpy()
        results = []
        for row, tree in enumerate(trees):
            # node k's token read at its parent's position (0: the prompt's end; node j sits at position j + 1)
            node_lp = logp[row, tree.parent_tensor, tree.token_tensor].double().cpu().numpy()
            lps = tree.paths @ node_lp + ends[row, tree.last_node + 1]
            t = lps - lps.max()
            probs = np.exp(t) / np.exp(t).sum()
            results.append(OptionScores(probs=probs.tolist(), option_mass=float(np.exp(lps).sum()),
                                        logprobs=lps.tolist()))
        return results

    # ---- generation -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate_ids(self, requests: list[GenerateRequest]) -> list[tuple[list[int], bool]]:
        """Greedy decoding: per request, the generated token ids before the end-of-sequence token and whether the
        model ended the reply within its ``max_new_tokens`` (False: the budget cut it)."""
        tok = self.tokenizer
        texts = [self.render(r.messages, answer_prefix=None) for r in requests]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[tuple[list[int], bool]] = [([], False)] * len(texts)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [tok.eos_token_id])
        side = tok.padding_side
        tok.padding_side = "left"
        try:
            for start in tqdm(range(0, len(order), self.batch_size), desc="generating", disable=not self.progress,
                              leave=False):
                chunk = order[start:start + self.batch_size]
                enc = tok([texts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                gen = self.model.generate(**enc, max_new_tokens=max(requests[i].max_new_tokens for i in chunk),
                                          do_sample=False, pad_token_id=tok.pad_token_id)
                for row, i in enumerate(chunk):
                    ids = gen[row, enc["input_ids"].shape[1]:].tolist()[:requests[i].max_new_tokens]
                    end = next((k for k, t in enumerate(ids) if t in eos), None)
                    out[i] = (ids[:end], True) if end is not None else (ids, False)
        finally:
            tok.padding_side = side
        return out

    def generate(self, requests: list[GenerateRequest]) -> list[Reply]:
        tok = self.tokenizer
        return [Reply(tok.decode(ids, skip_special_tokens=True).strip(), cut=not ended, tokens=len(ids))
                for ids, ended in self.generate_ids(requests)]


def _cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer from a transformers cache."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return [(k, v) for k, v in cache]
