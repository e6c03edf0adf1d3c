"""LoRA supervised fine-tuning with TRL on the training strata's modal answers.

A prompt-completion dataset: the prompt is exactly the evaluation's chat prompt for a training pair (same
template), the completion is ``Answer: <modal code>``; TRL puts the loss on the completion tokens only. With the
plain-text ``base_completion`` template (a base model, no chat template) the prompt and the completion are text:
the prompt ends on the persona's line and the completion is the line ``Answer: <modal code>`` (then the end of
sequence), so the model is trained on the text the evaluation scores. Ties
(rare: 2 of 10,700 training pairs with weighted modes) take the lowest tied code.

Use it like TRL's own scripts, from a recipe (``configs/sft/*.yaml``) or flags:

    python -m subgroup_values.training.finetune --config configs/sft/default.yaml
    accelerate launch --config_file configs/accelerate/ddp.yaml -m subgroup_values.training.finetune --config configs/sft/paper.yaml

or call :func:`main` with the three dataclasses (the notebook does).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from ..core.choices import LOSSES, TRAINERS
from ..core.paths import settle_hub_mode
from ..core.provenance import run_record, write_json
from ..survey.dataset import load_manifest, load_pairs, sample_pairs
from ..survey.prompts import ANSWER_PREFIX, DEFAULT_TEMPLATE, TEMPLATES, attributes_of, build_messages, plain_text
from ..survey.questions import load_questions


@dataclass
class SubgroupSFTArguments:
    """Data arguments of the study (TRL's own SFTConfig and ModelConfig hold the rest)."""

    pairs_file: str = field(default="", metadata={"help": "pairs table; empty: the study's committed table"})
    study: str = field(default="", metadata={
        "help": "the study of the pairs (a shipped name or a config path): empty, the one the table's manifest names "
                "(a table without a manifest needs it), or Singapore's committed table when pairs_file is empty too"})
    template: str = field(default=DEFAULT_TEMPLATE, metadata={"help": f"prompt template, one of {TEMPLATES}"})
    train_limit: int = field(default=0, metadata={"help": "train on a seeded sample of this many pairs; 0: all"})
    sample_seed: int = field(default=0, metadata={"help": "seed of that sample"})
    resume: bool = field(default=True, metadata={"help": "continue from the last checkpoint in output_dir"})
    trainer: str = field(default="packed", metadata={
        "help": "packed: a question's shared prompt computed once per step for its subgroups (exact, ~10x faster; "
                "per_device_train_batch_size counts question chunks); trl: TRL's SFTTrainer on one example per row"})
    loss: str = field(default="modal", metadata={
        "help": "modal: TRL's completion-only loss on 'Answer: <modal code>'; distribution: cross-entropy between the "
                "subgroup's weighted answer distribution and the model's exact option distribution (packed trainer)"})
    subgroups_per_chunk: int = field(default=0, metadata={
        "help": "packed trainer: subgroups of one question per chunk (0: all of the question's training subgroups)"})


def modal_completion(modes: list[int]) -> str:
    """The training target: the lowest of the (tied) modal answers."""
    return f"{ANSWER_PREFIX} {min(int(m) for m in modes)}"


def sft_records(pairs: pd.DataFrame, template: str = DEFAULT_TEMPLATE, study=None) -> list[dict]:
    """Prompt-completion records (conversational) for TRL's SFTTrainer (``study`` None: the pairs' own)."""
    from ..survey.study import study_of

    questions = {q.qid: q for q in load_questions(rule="all")}
    study = study_of(pairs, study)
    out = []
    for row in pairs.to_dict("records"):
        msgs = build_messages(questions[row["qid"]], attributes_of(row, study), template, study=study)
        text = plain_text(msgs)  # base_completion: plain text in, plain text out (TRL adds BOS and EOS)
        completion = modal_completion(row["modal_answers"])
        out.append({"prompt": msgs if text is None else text,
                    "completion": [{"role": "assistant", "content": completion}] if text is None else completion,
                    "qid": row["qid"], "subgroup_id": row["subgroup_id"]})
    return out




def distribution_examples(pairs: pd.DataFrame, tokenizer, template: str = DEFAULT_TEMPLATE, study=None) -> dict:
    """Per pair: the evaluation's prompt up to ``Answer:`` (token ids), each option code's tokens in context (as
    the scorer reads them) and the subgroup's weighted answer distribution (the target)."""
    from ..backends.base import render_prompt
    from ..backends.options import option_token_ids
    from ..survey.study import study_of

    questions = {q.qid: q for q in load_questions(rule="all")}
    study = study_of(pairs, study)
    prompt_ids, option_ids, targets = [], [], []
    codes: dict[str, list[list[int]]] = {}
    for row in pairs.to_dict("records"):
        q = questions[row["qid"]]
        text = render_prompt(tokenizer, build_messages(q, attributes_of(row, study), template, study=study), ANSWER_PREFIX)
        prompt_ids.append(tokenizer(text, add_special_tokens=False)["input_ids"])
        if q.qid not in codes:
            codes[q.qid] = [option_token_ids(tokenizer, str(v)) for v, _ in q.options]
        option_ids.append(codes[q.qid])
        counts = row["weighted_counts"]
        targets.append(json.loads(counts) if isinstance(counts, str) else list(counts))
    return {"prompt_ids": prompt_ids, "option_ids": option_ids, "targets": targets}


def training_pairs(args: SubgroupSFTArguments) -> pd.DataFrame:
    if args.trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {TRAINERS}, got {args.trainer!r}.")
    if args.loss not in LOSSES:
        raise ValueError(f"loss must be modal or distribution, got {args.loss!r}.")
    if args.loss == "distribution" and args.trainer != "packed":
        raise ValueError("The distribution loss runs on the packed trainer: set trainer: packed.")
    if args.template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {args.template!r}.")
    pairs = load_pairs(args.pairs_file or None, split="train", study=args.study or None)
    if "study" not in pairs.attrs:
        raise ValueError(f"{args.pairs_file} has no manifest.json beside it that names its study: set study: in the "
                         "recipe (sgp, tur or a study config's path), so that its personas are the right country's.")
    return sample_pairs(pairs, args.train_limit, args.sample_seed)


def last_checkpoint(output_dir: str | Path) -> str | None:
    ckpts = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(ckpts[-1]) if ckpts else None


def build_trainer(script_args: SubgroupSFTArguments, training_args, model_args):
    """TRL's SFTTrainer with a LoRA config on the (sampled) training pairs; returns (trainer, pairs)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTTrainer, get_peft_config

    settle_hub_mode()
    set_seed(training_args.seed)
    pairs = training_pairs(script_args)
    dataset = Dataset.from_list(sft_records(pairs, script_args.template)).remove_columns(["qid", "subgroup_id"])
    tok = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if script_args.template != "base_completion" and not tok.chat_template:
        from ..backends.base import NoChatTemplateError

        raise NoChatTemplateError(
            f"{model_args.model_name_or_path} has no chat template (a base model, not instruction-tuned): the "
            f"template {script_args.template!r} is a chat. Train it with template: base_completion (the plain-text "
            "prompt its evaluation uses).")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=dtype or "auto")
    peft_config = get_peft_config(model_args)
    if peft_config is None:
        raise ValueError("This study trains LoRA adapters: set use_peft: true in the recipe.")
    if script_args.trainer == "packed":
        from .packing import PackedSFTTrainer

        extra = ({"distribution_examples": distribution_examples(pairs, tok, script_args.template)}
                 if script_args.loss == "distribution" else {})
        trainer = PackedSFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tok,
                                   peft_config=peft_config, groups=list(pairs["qid"]),
                                   subgroups_per_chunk=script_args.subgroups_per_chunk, chunk_seed=training_args.seed,
                                   loss=script_args.loss, **extra)
    else:
        trainer = SFTTrainer(model=model, args=training_args, train_dataset=dataset, processing_class=tok,
                             peft_config=peft_config)
    return trainer, pairs


def loss_tokens(trainer, index: int = 0) -> tuple[str, str]:
    """(the whole training text, the part that carries loss) of one example, as the trainer's collator sees it."""
    import torch

    tok = trainer.processing_class
    if hasattr(trainer, "chunks"):  # the packed trainer: a question's prefix, then one subgroup's suffix
        chunk = trainer.chunks[index]
        if "targets" in chunk:  # the distribution loss: the prompt, then the target over the options' tokens
            target = ", ".join(f"{tok.decode(o)!r}: {p:.3f}" for o, p in zip(chunk["options"][0], chunk["targets"][0]))
            return tok.decode(chunk["prefix"] + chunk["suffixes"][0]), "target distribution {" + target + "}"
        ids = torch.tensor(chunk["prefix"] + chunk["suffixes"][0])
        labels = torch.tensor([-100] * len(chunk["prefix"]) + chunk["suffix_labels"][0])
        return tok.decode(ids), tok.decode(ids[labels != -100])
    batch = trainer.data_collator([trainer.train_dataset[index]])
    ids, labels = batch["input_ids"][0], batch["labels"][0]
    return tok.decode(ids), tok.decode(ids[labels != -100])


def train(trainer, pairs: pd.DataFrame, script_args: SubgroupSFTArguments, training_args, model_args,
          record_file: str | Path | None = None) -> dict:
    """Train (resuming from the last checkpoint when asked), save the adapter and its provenance record (in the
    adapter's folder, and at ``record_file`` when given: the reference run commits it with its results)."""
    import resource

    from ..core.provenance import check_writable

    check_writable(training_args.output_dir, 200, "adapter")  # before hours of training, not after
    if record_file:
        check_writable(Path(record_file).parent, 1, "results")
    inputs = training_inputs(pairs, model_args)
    settings = {"script": asdict(script_args), "model": asdict(model_args),
                "training": {k: v for k, v in training_args.to_dict().items()
                             if not k.startswith("_") and k not in ("logging_dir", "resume_from_checkpoint")},
                "inputs": inputs}
    settings = json.loads(json.dumps(settings, default=str))
    stamp = Path(training_args.output_dir) / "recipe.json"
    resume = last_checkpoint(training_args.output_dir) if script_args.resume else None
    why = resume_refusal(resume, stamp, settings) if resume else None
    if why:
        import shutil

        print(f"Not resuming from {resume}: {why}. Training afresh from the base model (the folder's old "
              f"checkpoints are removed).", flush=True)
        for old in Path(training_args.output_dir).glob("checkpoint-*"):
            shutil.rmtree(old)
        resume = None
    write_json(settings, stamp)
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.time() - t0
    trainer.save_model(training_args.output_dir)
    history = [h for h in trainer.state.log_history if "loss" in h]
    record = run_record(
        config={"script": asdict(script_args), "model": asdict(model_args),
                "training": {k: v for k, v in training_args.to_dict().items() if not k.startswith("_")}},
        data={"train_pairs": len(pairs), "pairs_sha256": inputs["pairs_sha256"],
              "pairs_file": pairs.attrs.get("path"), "train_pairs_digest": inputs["train_pairs_digest"],
              "manifest_pairs_sha256": _manifest_pairs_sha256(pairs), "base_model": inputs["base_model"],
              "code_digest": inputs["code_digest"]},
        training={"seconds": round(seconds, 1), "resumed_from": resume, "global_step": trainer.state.global_step,
                  "trainer": script_args.trainer, "examples_per_second": round(len(pairs) / seconds, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "tokens_as_examples": getattr(trainer, "example_tokens", None),
                  "tokens_packed": getattr(trainer, "packed_tokens", None),
                  "train_loss": result.training_loss, "first_loss": history[0]["loss"] if history else None,
                  "last_loss": history[-1]["loss"] if history else None,
                  "trainable_parameters": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)},
        loss_history=history)
    write_json(record, Path(training_args.output_dir) / "provenance.json")
    if record_file:
        write_json(record, record_file)
    return record


def training_inputs(pairs: pd.DataFrame, model_args) -> dict:
    """Everything besides the recipe that a training's result depends on, by content: the data read (its file's
    hash and the sampled pairs'), the base model (weights, config and template) and the package's code."""
    from ..backends.hf import files_digest, weights_digest
    from ..core.provenance import code_digest, frame_digest, sha256_of

    path = pairs.attrs.get("path")
    base = model_args.model_name_or_path
    return {"pairs_sha256": pairs.attrs.get("sha256") or (sha256_of(path) if path else None),
            "train_pairs_digest": frame_digest(pairs.drop(columns=[c for c in pairs.columns if c.startswith("_")])),
            "base_model": {"path": str(base), "weights": weights_digest(base), "files": files_digest(base)},
            "code_digest": code_digest()}


def resume_refusal(checkpoint: str, stamp: Path, settings: dict) -> str | None:
    """Why ``checkpoint`` must not be resumed by a training with ``settings`` (None: it may). A checkpoint is
    resumed only when its training is unfinished and every input (recipe, data, base model, code) matches."""
    if not stamp.is_file():
        return f"there is no {stamp.name} beside it to check it against this training"
    try:
        old = json.loads(stamp.read_text())
    except ValueError:
        return f"{stamp} is not readable JSON"
    differ = [k for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    if differ:
        detail = []
        for k in differ:
            a, b = old.get(k) or {}, settings.get(k) or {}
            sub = [x for x in sorted(set(a) | set(b)) if a.get(x) != b.get(x)] if isinstance(a, dict) and \
                isinstance(b, dict) else []
            detail.append(f"{k} ({', '.join(sub[:6])})" if sub else k)
        return f"it belongs to another training: its {'; '.join(detail)} differ from this one's"
    state = Path(checkpoint) / "trainer_state.json"
    if state.is_file():
        st = json.loads(state.read_text())
        if st.get("max_steps") and st.get("global_step", 0) >= st["max_steps"]:
            return f"that training finished (step {st['global_step']} of {st['max_steps']})"
    return None


def _manifest_pairs_sha256(pairs: pd.DataFrame) -> str | None:
    path = pairs.attrs.get("path")
    manifest = Path(path).parent / "manifest.json" if path else None
    if manifest is None or not manifest.is_file():
        return None
    return (load_manifest(manifest).get("files") or {}).get("pairs", {}).get("sha256")


def main(script_args: SubgroupSFTArguments, training_args, model_args) -> dict:
    """Train a LoRA adapter; save it with its recipe and a provenance record. Returns the record."""
    trainer, pairs = build_trainer(script_args, training_args, model_args)
    return train(trainer, pairs, script_args, training_args, model_args)


def parse(argv: list[str] | None = None):
    from trl import ModelConfig, SFTConfig, TrlParser

    parser = TrlParser((SubgroupSFTArguments, SFTConfig, ModelConfig))
    return parser.parse_args_and_config(args=argv)


def load_recipe(path: str | Path, **overrides):
    """The three argument dataclasses from a YAML recipe, with overrides (e.g. output_dir=...)."""
    import yaml

    cfg = yaml.safe_load(Path(path).read_text()) or {}
    cfg.pop("paper_models", None)  # the paper's models (a table for people and paper_models.py, no argument)
    cfg.update(overrides)
    argv = []
    for k, v in cfg.items():
        if isinstance(v, list):
            argv += [f"--{k}", *map(str, v)]
        elif isinstance(v, bool):
            argv += [f"--{k}", str(v).lower()]
        elif v is not None:
            argv += [f"--{k}", str(v)]
    return parse(argv)


if __name__ == "__main__":
    script_args, training_args, model_args = parse()
    print(json.dumps(main(script_args, training_args, model_args)["training"], indent=1))
