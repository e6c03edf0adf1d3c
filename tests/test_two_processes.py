"""Two processes, one model: the packed trainer as two data-parallel processes on the CPU (torchrun, gloo; the
Trainer's accelerate backend) gives the loss curve and the LoRA weights of one process with the same global batch,
and a two-process run resumed from a checkpoint continues the same curve. On the tiny model.

`accelerate launch --cpu --num_processes 2` is not the way: with --cpu accelerate's launcher starts one process
(its simple launcher), which then trains alone with the per-device batch. torchrun starts two."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(model, out: Path, processes: int, per_device: int, log: Path, extra: tuple = ()) -> dict:
    args = ["-m", "subgroup_values.training.finetune", "--config", "configs/sft/smoke.yaml", "--model_name_or_path", str(model),
            "--output_dir", str(out), "--per_device_train_batch_size", str(per_device), "--max_steps", "4",
            "--subgroups_per_chunk", "4", "--train_limit", "96", "--logging_steps", "1", "--save_steps", "2",
            "--learning_rate", "5e-3", "--warmup_steps", "0", "--dataloader_num_workers", "0", *extra]
    if processes == 1:
        cmd = [sys.executable, *args]
    else:
        # torchrun: `accelerate launch --cpu --num_processes 2` starts one process (accelerate's simple launcher)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
               "127.0.0.1", "--master_port", str(_port()), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    with log.open("w") as f:
        r = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=900)
    assert r.returncode == 0, log.read_text()[-4000:]
    return json.loads((out / "provenance.json").read_text())


def _curve(record: dict) -> list[float]:
    return [h["loss"] for h in record["loss_history"]]


def _weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "adapter_model.safetensors")


def test_two_processes_train_as_one_and_resume_on_the_same_curve(tiny_model, tmp_path):
    one = _train(tiny_model, tmp_path / "one", 1, 8, tmp_path / "one.log")
    two = _train(tiny_model, tmp_path / "two", 2, 4, tmp_path / "two.log")
    assert two["training"]["global_step"] == one["training"]["global_step"] == 4
    c1, c2 = _curve(one), _curve(two)
    w1, w2 = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    dw = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    moved = max(float(w1[k].abs().max()) for k in w1 if "lora_B" in k)
    print(f"loss, one process {c1}; two {c2}; max |dw| {dw:.1e} (lora_B moved to {moved:.1e})")
    assert len(c1) == len(c2) == 4 and max(abs(a - b) for a, b in zip(c1, c2)) < 1e-5
    # the weights moved, and alike: the two processes' all-reduce sums the gradients in another float32 order than
    # one process, and Adam's normalised steps carry last-bit differences into the weights (1.4e-5 seen on one
    # machine after 4 steps, against 1.3e-2 moved): a difference of 1% of the movement would be another training
    assert set(w1) == set(w2) and moved > 1e-3 and dw < 0.01 * moved

    # resume: the run loses its last two steps and is started again under two processes from checkpoint-2
    shutil.rmtree(tmp_path / "two" / "checkpoint-4")
    (tmp_path / "two" / "adapter_model.safetensors").unlink()
    again = _train(tiny_model, tmp_path / "two", 2, 4, tmp_path / "resume.log")
    assert again["training"]["resumed_from"].endswith("checkpoint-2")
    c3 = _curve(again)
    dw3 = max(float((w2[k] - _weights(tmp_path / "two")[k]).abs().max()) for k in w2)
    print(f"resumed: {c3}; max |dw| against the uninterrupted run {dw3:.1e}")
    assert len(c3) == 4 and max(abs(a - b) for a, b in zip(c2, c3)) < 1e-5 and dw3 < 1e-5
