"""The packed trainer: a question's shared prompt computed once per step for all of its subgroups.

Every training example of this study is ``<question, its options, the instructions> + <a subgroup's persona> +
Answer: <code>``. With the default template the first part (~145 tokens) is identical for the 50 training
subgroups of a question, the persona is ~12 tokens and the completion ~5. TRL's SFTTrainer computes every example
whole, pads a batch to its longest example and sends every position through the 49k-word output layer.

:class:`PackedSFTTrainer` (a subclass of TRL's ``SFTTrainer``) trains on *question chunks*: the examples of one
question (a chunk of ``subgroups_per_chunk`` of its subgroups), split into their longest common token prefix and
one short suffix per example. A step runs

1. one row per chunk: the prefix once, then every example's suffix (prompt end and completion), with a
   tree-shaped 4-D attention mask (a suffix sees the prefix and itself, never another suffix) and position ids
   that continue the prefix in every suffix: a tree of depth one, as the scorer's option tree;
2. one forward pass over the rows, the output layer on the positions that predict completion tokens only.

The arithmetic is that of the unpacked example: the same tokens at the same positions attend to the same keys,
and the loss is TRL's completion-only loss (the sum of the completion tokens' negative log-likelihoods divided by
their number in the batch, or by ``num_items_in_batch`` across gradient accumulation). ``tests/test_packing.py``
checks the loss and every LoRA gradient against TRL's own ``compute_loss`` on the same examples (tiny model and
the embedded one, fp32, within 1e-5). What differs is which examples share a step: a step holds
``per_device_train_batch_size`` chunks, i.e. a few questions with many of their subgroups each, rather than a
uniform sample of pairs; chunks are shuffled by the Trainer's sampler every epoch. LoRA dropout (when set) draws
one mask for a chunk's shared prefix rather than one per example.

The collator's batches are plain tensors, so ``accelerate`` launches (DDP, FSDP, ZeRO-3) work as with TRL: each
rank gets whole chunks. Mixed precision is the recipe's ``bf16`` switch (Trainer's autocast, on CPUs with
AVX-512 bf16 and on GPUs).
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict

import numpy as np
import torch

from ..backends.options import common_prefix_len
from ..core.choices import LOSSES

IGNORE = -100
#: modal: TRL's completion-only loss on "Answer: <modal code>"; distribution: cross-entropy between the subgroup's
#: weighted answer distribution and the model's exact option distribution after "Answer:".


def split_point(sequences: list[list[int]], labels: list[list[int]]) -> int:
    """Length of the prefix shared by ``sequences``, short enough that every example keeps the token before its
    first completion token in its own suffix (that position predicts the first completion token)."""
    n = common_prefix_len(sequences)
    first_label = min(next(i for i, lab in enumerate(lb) if lab != IGNORE) for lb in labels)
    return max(0, min(n, first_label - 1))


def balanced_parts(members: dict[str, list[int]], subgroups_per_chunk: int = 0, seed: int = 0):
    """(group, rows) for each group (question) in sorted order, its rows drawn in a seeded order and dealt into
    chunks of at most ``subgroups_per_chunk`` (0: the whole group) whose sizes differ by at most one."""
    rng = random.Random(seed)
    for g in sorted(members):
        rows = members[g][:]
        rng.shuffle(rows)
        size = subgroups_per_chunk if subgroups_per_chunk > 0 else len(rows)
        n_chunks = -(-len(rows) // size)
        for c in range(n_chunks):
            yield g, rows[c::n_chunks]


def question_chunks(input_ids: list[list[int]], labels: list[list[int]], groups: list[str],
                    subgroups_per_chunk: int = 0, seed: int = 0) -> list[dict]:
    """Examples of one group (question) in chunks of at most ``subgroups_per_chunk`` (0: the whole group),
    balanced in size, members drawn in a seeded order. Each chunk: ``prefix`` (token ids), ``suffixes`` and
    ``suffix_labels`` (one list per example, labels aligned with the tokens, -100 where no loss) and ``rows`` (the
    examples' indices in the input)."""
    if not (len(input_ids) == len(labels) == len(groups)):
        raise ValueError("input_ids, labels and groups must have one entry per example.")
    members: dict[str, list[int]] = defaultdict(list)
    for i, (g, lab) in enumerate(zip(groups, labels)):
        if not any(x != IGNORE for x in lab):
            raise ValueError(f"Example {i} (group {g}) has no completion token to train on: was it truncated by "
                             f"max_length? Raise max_length in the recipe.")
        members[g].append(i)
    chunks = []
    for g, part in balanced_parts(members, subgroups_per_chunk, seed):
        seqs, labs = [input_ids[i] for i in part], [labels[i] for i in part]
        p = split_point(seqs, labs)
        chunks.append({"group": g, "rows": part, "prefix": list(seqs[0][:p]),
                       "suffixes": [list(s[p:]) for s in seqs], "suffix_labels": [list(lb[p:]) for lb in labs]})
    return chunks


class PackedCollator:
    """Question chunks to tensors, one row per chunk: its prefix, then each example's suffix, then padding.

    ``input_ids``, ``labels`` (-100 where no loss; a label sits at its token's place), ``position_ids`` (each suffix
    continues its prefix: the positions the token has in its own unpacked example) and ``attention_mask``: a 4-D
    boolean mask [rows, 1, L, L], True where a token may attend: the prefix causally, a suffix token the whole
    prefix and the earlier tokens of its own suffix, never another suffix; padding attends to itself only."""

    def __init__(self, pad_token_id: int):
        self.pad = int(pad_token_id)

    def __call__(self, chunks: list[dict]) -> dict[str, torch.Tensor]:
        lengths = [len(c["prefix"]) + sum(len(x) for x in c["suffixes"]) for c in chunks]
        width = max(lengths)
        k = len(chunks)
        ids = torch.full((k, width), self.pad, dtype=torch.long)
        labels = torch.full((k, width), IGNORE, dtype=torch.long)
        positions = torch.zeros((k, width), dtype=torch.long)
        allowed = torch.zeros((k, 1, width, width), dtype=torch.bool)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        for r, c in enumerate(chunks):
            p = len(c["prefix"])
            ids[r, :p] = torch.tensor(c["prefix"], dtype=torch.long)
            positions[r, :p] = torch.arange(p)
            allowed[r, 0, :p, :p] = causal[:p, :p]
            start = p
            for suffix, lab in zip(c["suffixes"], c["suffix_labels"]):
                n = len(suffix)
                end = start + n
                ids[r, start:end] = torch.tensor(suffix, dtype=torch.long)
                labels[r, start:end] = torch.tensor(lab, dtype=torch.long)
                positions[r, start:end] = p + torch.arange(n)
                allowed[r, 0, start:end, :p] = True
                allowed[r, 0, start:end, start:end] = causal[:n, :n]
                start = end
            pad = torch.arange(start, width)
            allowed[r, 0, pad, pad] = True
        return {"input_ids": ids, "labels": labels, "position_ids": positions, "attention_mask": allowed,
                "real_tokens": torch.tensor(sum(lengths))}


def _masks(model, inputs: dict):
    """The packed rows' 4-D mask as the model's layers need it (sliding-window layers get the window applied by the
    tokens' own positions: see :func:`subgroup_values.backends.options.layer_masks`)."""
    from ..backends.options import layer_masks

    pos = inputs["position_ids"]
    inner = model
    while not hasattr(inner, "config") and hasattr(inner, "module"):  # DDP / FSDP wrap the model
        inner = inner.module
    return layer_masks(inner.config, inputs["attention_mask"], pos, pos)


def completion_logits(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict completion tokens, and those tokens: ``(logits [rows, K, V], labels
    [rows, K])``, -100 where a row has no completion token there. One forward pass through ``model`` with the
    packed rows' 4-D mask; the output layer sees only the positions just before completion tokens (their union
    over the rows of the batch)."""
    labels = inputs["labels"]
    targets = (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)  # predictor t predicts token t + 1
    out = model(input_ids=inputs["input_ids"], attention_mask=_masks(model, inputs),
                position_ids=inputs["position_ids"], use_cache=False, logits_to_keep=targets)
    return out.logits, labels[:, targets + 1]


# ---- the distribution loss ------------------------------------------------------------------------------------

def distribution_chunks(prompt_ids: list[list[int]], option_ids: list[list[list[int]]], targets: list[list[float]],
                        groups: list[str], subgroups_per_chunk: int = 0, seed: int = 0) -> list[dict]:
    """Chunks for the distribution loss: per example its prompt (ending in ``Answer:``), the token sequences of its
    options (as the evaluation scores them) and its target distribution over the options."""
    if not (len(prompt_ids) == len(option_ids) == len(targets) == len(groups)):
        raise ValueError("prompt_ids, option_ids, targets and groups must have one entry per example.")
    members: dict[str, list[int]] = defaultdict(list)
    for i, (g, t, opts) in enumerate(zip(groups, targets, option_ids)):
        t = np.asarray(t, float)
        if len(t) != len(opts) or t.sum() <= 0 or (t < 0).any():
            raise ValueError(f"Example {i} (group {g}): the target needs one non-negative weight per option and a "
                             f"positive total, got {list(t)} for {len(opts)} options.")
        members[g].append(i)
    chunks = []
    for g, part in balanced_parts(members, subgroups_per_chunk, seed):
        seqs = [prompt_ids[i] for i in part]
        # each suffix keeps at least its last token (it predicts the first option token)
        k = min(common_prefix_len(seqs), min(len(x) for x in seqs) - 1)
        chunks.append({"group": g, "rows": part, "prefix": list(seqs[0][:k]), "suffixes": [x[k:] for x in seqs],
                       "options": [option_ids[i] for i in part],
                       "targets": [(np.asarray(targets[i], float) / np.sum(targets[i])).tolist() for i in part]})
    return chunks


class DistributionCollator:
    """Rows as :class:`PackedCollator`'s, each example's suffix followed by its option tree (the scorer's: a node
    sees the prefix, its example's suffix and its own ancestors). ``readout`` lists, per row, the positions whose
    next-token distribution the loss reads (each suffix's last token and every tree node); ``examples`` describes
    how to turn them into option log-probabilities; ``labels`` marks one position per example (so that the
    Trainer's count of items is the number of examples)."""

    def __init__(self, pad_token_id: int):
        self.pad = int(pad_token_id)

    def __call__(self, chunks: list[dict]) -> dict:
        from ..backends.options import option_tree

        layouts = []
        for c in chunks:
            trees = [option_tree([list(o) for o in opts]) for opts in c["options"]]
            length = len(c["prefix"]) + sum(len(s) + len(t.tokens) for s, t in zip(c["suffixes"], trees))
            layouts.append((c, trees, length))
        width = max(n for _, _, n in layouts)
        k = len(chunks)
        ids = torch.full((k, width), self.pad, dtype=torch.long)
        positions = torch.zeros((k, width), dtype=torch.long)
        labels = torch.full((k, width), IGNORE, dtype=torch.long)
        allowed = torch.zeros((k, 1, width, width), dtype=torch.bool)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        readout, examples = [], []
        for r, (c, trees, _) in enumerate(layouts):
            p = len(c["prefix"])
            ids[r, :p] = torch.tensor(c["prefix"], dtype=torch.long)
            positions[r, :p] = torch.arange(p)
            allowed[r, 0, :p, :p] = causal[:p, :p]
            start, row_read = p, []
            for suffix, tree, target in zip(c["suffixes"], trees, c["targets"]):
                n, m = len(suffix), len(tree.tokens)
                s_end, t_end = start + n, start + n + m
                ids[r, start:s_end] = torch.tensor(suffix, dtype=torch.long)
                ids[r, s_end:t_end] = tree.token_tensor
                positions[r, start:s_end] = p + torch.arange(n)
                positions[r, s_end:t_end] = p + n + tree.depth_tensor
                allowed[r, 0, start:t_end, :p] = True
                allowed[r, 0, start:s_end, start:s_end] = causal[:n, :n]
                allowed[r, 0, s_end:t_end, start:s_end] = True
                allowed[r, 0, s_end:t_end, s_end:t_end] = tree.visible
                labels[r, s_end] = 0  # one marker per example (never read as a token)
                first = len(row_read)
                row_read += [s_end - 1] + list(range(s_end, t_end))  # the prompt's end, then each node
                examples.append({"row": r, "first": first, "tree": tree, "target": target})
                start = t_end
            pad = torch.arange(start, width)
            allowed[r, 0, pad, pad] = True
            readout.append(row_read)
        return {"input_ids": ids, "position_ids": positions, "attention_mask": allowed, "labels": labels,
                "readout": readout, "examples": examples, "real_tokens": torch.tensor(sum(n for *_, n in layouts))}


def option_log_probs(model, inputs: dict, digit_mask: torch.Tensor) -> list[torch.Tensor]:
    """Each example's exact option log-probabilities, renormalised over its options (the evaluation's scoring:
    log P(code tokens) + log P(the number ends), then a log-softmax over the options)."""
    union = sorted({i for row in inputs["readout"] for i in row})
    where = {pos: j for j, pos in enumerate(union)}
    keep = torch.tensor(union, dtype=torch.long, device=inputs["input_ids"].device)
    out = model(input_ids=inputs["input_ids"], attention_mask=_masks(model, inputs),
                position_ids=inputs["position_ids"], use_cache=False, logits_to_keep=keep)
    logits = out.logits
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    mask = digit_mask.to(logp.device)
    log_end = torch.log1p(-(logp.exp()[..., mask].sum(-1)).clamp(max=1 - 1e-12))  # [rows, K]
    result = []
    for ex in inputs["examples"]:
        row, tree = ex["row"], ex["tree"]
        cols = torch.tensor([where[pos] for pos in inputs["readout"][row][ex["first"]:ex["first"] + 1 +
                                                                           len(tree.tokens)]], device=logp.device)
        # readout j = 0: the prompt's end; j = node + 1: after that node
        node_lp = logp[row, cols[tree.parent_tensor.to(logp.device)], tree.token_tensor.to(logp.device)]
        paths = torch.as_tensor(tree.paths, dtype=node_lp.dtype, device=logp.device)
        last = torch.as_tensor(tree.last_node + 1, device=logp.device)
        option_lp = paths @ node_lp + log_end[row, cols[last]]
        result.append(torch.log_softmax(option_lp, dim=0))
    return result


@functools.cache
def _trainer_class():
    from trl import SFTTrainer

    class PackedSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer on question chunks (see the module docstring). Extra arguments: ``groups`` (one question
        id per training example, in the dataset's order), ``subgroups_per_chunk`` (0: a whole question), and
        ``chunk_seed``. ``per_device_train_batch_size`` counts chunks."""

        def __init__(self, *args, groups: list[str], subgroups_per_chunk: int = 0, chunk_seed: int = 0,
                     loss: str = "modal", distribution_examples: dict | None = None, **kwargs):
            if loss not in LOSSES:
                raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
            if loss == "distribution" and distribution_examples is None:
                raise ValueError("The distribution loss needs distribution_examples (prompt_ids, option_ids, "
                                 "targets).")
            cfg = kwargs.get("args")
            if cfg is not None and (cfg.packing or cfg.padding_free or cfg.shuffle_dataset):
                raise ValueError("The packed trainer packs and shuffles by question itself: set packing, padding_free "
                                 "and shuffle_dataset to false.")
            super().__init__(*args, **kwargs)
            data = self.train_dataset
            if len(groups) != len(data):
                raise ValueError(f"groups has {len(groups)} entries for {len(data)} training examples (did TRL drop "
                                 f"or pack examples?).")
            ids, labs = data["input_ids"], data["labels"]
            self.example_tokens = int(sum(len(x) for x in ids))
            self.chunks = question_chunks(ids, labs, groups, subgroups_per_chunk, chunk_seed)
            self.train_dataset = self.chunks
            self.data_collator = PackedCollator(self.processing_class.pad_token_id)
            self.packed_tokens = int(sum(len(c["prefix"]) + sum(map(len, c["suffixes"])) for c in self.chunks))
            self.loss_kind = loss
            if loss == "distribution":
                from ..backends.options import digit_token_mask

                self.chunks = distribution_chunks(groups=groups, subgroups_per_chunk=subgroups_per_chunk,
                                                  seed=chunk_seed, **distribution_examples)
                self.train_dataset = self.chunks
                self.data_collator = DistributionCollator(self.processing_class.pad_token_id)
                n_out = self.model.get_output_embeddings().weight.shape[0]
                self.digit_mask = digit_token_mask(self.processing_class, n_out)

        def _get_collator_with_removed_columns(self, data_collator, description=None):
            return data_collator  # chunks are not model inputs: the collator builds those

        def _prepare_inputs(self, inputs):
            if "examples" in inputs:  # the distribution collator's read-out plan stays on the CPU
                plan = {k: inputs[k] for k in ("readout", "examples")}
                rest = super()._prepare_inputs({k: v for k, v in inputs.items() if k not in plan})
                return rest | plan
            return super()._prepare_inputs(inputs)

        def distribution_loss(self, model, inputs, num_items_in_batch=None):
            """Mean over examples of the cross-entropy between the target distribution and the model's option
            distribution; the KL (cross-entropy minus the target's entropy) is logged beside it."""
            mode = "train" if self.model.training else "eval"
            logq = option_log_probs(model, inputs, self.digit_mask)
            targets = [torch.as_tensor(ex["target"], dtype=q.dtype, device=q.device)
                       for ex, q in zip(inputs["examples"], logq)]
            ce = torch.stack([-(t * q).sum() for t, q in zip(targets, logq)])
            n = len(ce) if num_items_in_batch is None else num_items_in_batch
            loss = ce.sum() / torch.as_tensor(n).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():
                ent = torch.stack([-(t[t > 0] * t[t > 0].log()).sum() for t in targets])
                self._metrics[mode]["kl"].append(float((ce - ent).mean()))
                self._metrics[mode]["target_prob"].append(
                    float(torch.stack([(t * q.exp()).sum() for t, q in zip(targets, logq)]).mean()))
                if mode == "train":
                    self._total_train_tokens += int(inputs["real_tokens"])
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
            if self.loss_kind == "distribution":
                loss = self.distribution_loss(model, inputs, num_items_in_batch)
                return (loss, {}) if return_outputs else loss
            logits, labels = completion_logits(model, inputs)
            valid = labels != IGNORE
            logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
            token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(~valid, 0.0)
            n = valid.sum() if num_items_in_batch is None else num_items_in_batch
            loss = -token_logp.sum() / torch.as_tensor(n).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            with torch.no_grad():
                n_valid = self.accelerator.gather_for_metrics(valid.sum()).sum()
                correct = self.accelerator.gather_for_metrics(((logits.argmax(-1) == labels) & valid).sum()).sum()
                self._metrics[mode]["mean_token_accuracy"].append((correct / n_valid.clamp(min=1)).item())
                if mode == "train":
                    real = inputs["real_tokens"]
                    self._total_train_tokens += int(self.accelerator.gather_for_metrics(real).sum().item())
                self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, {"logits": logits}) if return_outputs else loss

    return PackedSFTTrainer


def __getattr__(name: str):
    # TRL is imported only when the trainer is asked for (the rest of the package does not need it)
    if name == "PackedSFTTrainer":
        return _trainer_class()
    raise AttributeError(name)
