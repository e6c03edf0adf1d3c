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

import torch

IGNORE = -100


def split_point(sequences: list[list[int]], labels: list[list[int]]) -> int:
    """Length of the prefix shared by ``sequences``, short enough that every example keeps the token before its
    first completion token in its own suffix (that position predicts the first completion token)."""
    first = sequences[0]
    n = min(len(s) for s in sequences)
    for s in sequences[1:]:
        k = 0
        while k < n and s[k] == first[k]:
            k += 1
        n = k
    first_label = min(next(i for i, lab in enumerate(lb) if lab != IGNORE) for lb in labels)
    return max(0, min(n, first_label - 1))


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
    rng = random.Random(seed)
    chunks = []
    for g in sorted(members):
        rows = members[g][:]
        rng.shuffle(rows)
        size = subgroups_per_chunk if subgroups_per_chunk > 0 else len(rows)
        n_chunks = -(-len(rows) // size)
        for c in range(n_chunks):
            part = rows[c::n_chunks]  # balanced: sizes differ by at most one
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


def completion_logits(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the positions that predict completion tokens, and those tokens: ``(logits [rows, K, V], labels
    [rows, K])``, -100 where a row has no completion token there. One forward pass through ``model`` with the
    packed rows' 4-D mask; the output layer sees only the positions just before completion tokens (their union
    over the rows of the batch)."""
    labels = inputs["labels"]
    targets = (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)  # predictor t predicts token t + 1
    out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"], use_cache=False, logits_to_keep=targets)
    return out.logits, labels[:, targets + 1]


@functools.cache
def _trainer_class():
    from trl import SFTTrainer

    class PackedSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer on question chunks (see the module docstring). Extra arguments: ``groups`` (one question
        id per training example, in the dataset's order), ``subgroups_per_chunk`` (0: a whole question), and
        ``chunk_seed``. ``per_device_train_batch_size`` counts chunks."""

        def __init__(self, *args, groups: list[str], subgroups_per_chunk: int = 0, chunk_seed: int = 0, **kwargs):
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

        def _get_collator_with_removed_columns(self, data_collator, description=None):
            return data_collator  # chunks are not model inputs: the collator builds those

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            mode = "train" if self.model.training else "eval"
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
