"""Options as tokens, shared by the scorer (backends.hf, backends.openai_compat) and the trainers (training/): the
tokens of each option code in context, the tokens that would continue a number, the options' prefix tree, and the
attention masks of a tree-shaped layout."""

from __future__ import annotations

import numpy as np
import torch

from ..survey.prompts import ANSWER_PREFIX


def digit_token_mask(tokenizer, n_out: int) -> torch.Tensor:
    """True for every output token whose text starts with a digit (the number would go on)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    digit = [bool(t) and tokenizer.convert_tokens_to_string([t])[:1].isdigit() for t in vocab]
    mask = torch.zeros(n_out, dtype=torch.bool)
    mask[: len(digit)] = torch.tensor(digit[:n_out])
    return mask


def option_token_ids(tokenizer, code: str, prefix: str = ANSWER_PREFIX) -> list[int]:
    """Tokens of ' <code>' as they follow ``prefix`` (computed in context, so merges are respected)."""
    base = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    full = tokenizer(f"{prefix} {code}", add_special_tokens=False)["input_ids"]
    return full[len(base):] if full[: len(base)] == base else tokenizer(f" {code}", add_special_tokens=False)["input_ids"]


def layer_masks(config, allowed: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, dtype=None):
    """The 4-D attention mask(s) a model gets for a tree-shaped layout: ``allowed`` [b, 1, q, k] (True where a query
    may attend), ``q_pos`` [b, q] and ``k_pos`` [b, k] the tokens' positions in their own unpacked sequences.

    transformers uses a 4-D mask as given for every layer, so a model with sliding-window layers (Gemma 3; Qwen 2 with
    ``use_sliding_window``) would let those layers see the whole context: for such a model this returns
    ``{"full_attention": mask, "sliding_attention": mask}``, the second also hiding keys ``sliding_window`` or more
    positions back (the window of the unpacked sequence, as transformers builds it: q - k < window). ``dtype``:
    an additive float mask of that dtype (0 or the dtype's minimum) instead of a boolean one."""
    def form(m: torch.Tensor) -> torch.Tensor:
        if dtype is None:
            return m
        return torch.zeros(m.shape, dtype=dtype, device=m.device).masked_fill_(~m, torch.finfo(dtype).min)

    types = getattr(config, "layer_types", None) or []
    window = getattr(config, "sliding_window", None)
    if "sliding_attention" not in types or not window:
        return form(allowed)
    near = (q_pos[:, None, :, None] - k_pos[:, None, None, :]) < int(window)
    return {"full_attention": form(allowed), "sliding_attention": form(allowed & near)}


class OptionTree:
    """The options' token sequences as a prefix tree: shared tokens (the space, the '1' of '10') appear once.
    :meth:`freeze` adds the arrays the scorer reads: tokens, depths, parents' read-out positions, the ancestor-or-
    self mask, and a matrix that sums a path's token log-probabilities per option."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.depth: list[int] = []
        self.ancestors: list[list[int]] = []
        self.option_paths: list[list[int]] = []

    def freeze(self) -> OptionTree:
        k = len(self.tokens)
        self.token_tensor = torch.tensor(self.tokens, dtype=torch.long)
        self.depth_tensor = torch.tensor(self.depth, dtype=torch.long)
        self.parent_tensor = torch.tensor([a[-1] + 1 if a else 0 for a in self.ancestors], dtype=torch.long)
        self.visible = torch.eye(k, dtype=torch.bool)
        for node, anc in enumerate(self.ancestors):
            self.visible[node, anc] = True
        self.paths = np.zeros((len(self.option_paths), k))
        for o, path in enumerate(self.option_paths):
            self.paths[o, path] = 1.0
        self.last_node = np.array([path[-1] for path in self.option_paths])
        return self


def option_tree(sequences: list[list[int]]) -> OptionTree:
    """The prefix tree of the options' token sequences (one path per option, in order)."""
    tree = OptionTree()
    index: dict[tuple[int, ...], int] = {}
    for seq in sequences:
        path = []
        for d in range(len(seq)):
            key = tuple(seq[: d + 1])
            if key not in index:
                index[key] = len(tree.tokens)
                tree.tokens.append(seq[d])
                tree.depth.append(d)
                tree.ancestors.append(list(path))
            path.append(index[key])
        tree.option_paths.append(path)
    return tree.freeze()


def common_prefix_len(seqs: list[list[int]]) -> int:
    """The number of leading tokens every sequence of ``seqs`` shares."""
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    return n
