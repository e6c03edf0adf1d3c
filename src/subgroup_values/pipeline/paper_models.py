"""The paper's seven open models (``paper_models`` in configs/sft/paper.yaml) and the GPU check of the paper profile.

    python -m subgroup_values.pipeline.paper_models check-gpu    # `make check-gpu`: exit 1 with a message without a CUDA GPU
    python -m subgroup_values.pipeline.paper_models list         # the table: name, hub id, architecture, LoRA targets
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from ..core.paths import REPO_ROOT as REPO

RECIPE = REPO / "configs" / "sft" / "paper.yaml"
FIELDS = ("hub_id", "architecture", "family", "lora_target_modules", "chat_template")


def paper_models(recipe: Path = RECIPE) -> dict[str, dict]:
    """{name: {hub_id, architecture, family, lora_target_modules, chat_template}}, checked for completeness."""
    table = (yaml.safe_load(Path(recipe).read_text()) or {}).get("paper_models")
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{recipe}: no paper_models table (name: {{{', '.join(FIELDS)}}}).")
    for name, entry in table.items():
        missing = [f for f in FIELDS if f not in (entry or {})]
        if missing:
            raise ValueError(f"{recipe}: paper_models.{name} lacks {missing}; each entry needs {list(FIELDS)}.")
        targets = entry["lora_target_modules"]
        if not (isinstance(targets, list) and targets and all(isinstance(t, str) and t for t in targets)):
            raise ValueError(f"{recipe}: paper_models.{name}.lora_target_modules must be a list of module names, "
                             f"got {targets!r}.")
    return table


def check_gpu() -> str:
    """The name of the CUDA GPU; without one, SystemExit with a message saying what the profile needs."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("The paper profile runs 3B-8B models (configs/paper.yaml) and needs a CUDA GPU; this machine "
                         "has none (torch.cuda.is_available() is False). On a CPU run PROFILE=default (the embedded "
                         "SmolLM2-135M) or PROFILE=smoke.")
    return torch.cuda.get_device_name(0)


def main(argv: list[str]) -> None:
    what = argv[0] if argv else "list"
    if what == "check-gpu":
        print(f"GPU: {check_gpu()}")
    elif what == "list":
        for name, e in paper_models().items():
            print(f"{name:16s} {e['hub_id']:40s} {e['architecture']:18s} {','.join(e['lora_target_modules'])}")
    else:
        raise SystemExit(f"unknown command {what!r}: expected 'check-gpu' or 'list'")


if __name__ == "__main__":
    main(sys.argv[1:])
