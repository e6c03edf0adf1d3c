"""A profile's runs, declared once: what ``make`` builds, in which order, and which runs each analysis step reads.

A profile (``configs/<profile>.yaml``) names its steps and declares its runs:

- ``steps:`` the notebooks of ``make all`` that are not runs (``01_build_dataset``, ``02_value_landscape``,
  ``04_finetune`` (the modal fine-tune, named ``sft``), ``05_fairness``, ``06_open_ended``, ``08_headroom``,
  ``07_paper_comparison``), in order;
- ``runs:`` one entry per run: its name and the parameters of the notebook that makes it (notebook 3's by
  default), and, besides them, what the plan needs (:data:`PLAN_KEYS`): ``notebook: 04_finetune`` for a
  fine-tune of its own (its ``recipe``), ``after: <fine-tune>`` for a run that evaluates a fine-tune's adapter
  (``sft``: step 4's modal fine-tune; any other name: that run of notebook 4), and ``target: <goal>`` for a run
  that is built by its own ``make <goal>`` instead of ``make all`` (the default profile's distribution chain).

From this one declaration :func:`make_fragment` writes the Makefile's lists (``build/plan.<profile>.mk``: the steps
of ``make all``, each run's prerequisites, the runs each analysis step reads) and :func:`analysis_parameters`
the run parameters of the analysis notebooks (5, 7 and 8) that the profile's ``notebooks:`` section leaves out:
the runs are recognised by what they are (split, scoring, template, adapter, questions), so adding a run is one
edit in the profile. The runner passes those parameters; a notebook opened by hand resolves its ``"auto"``
parameters with :func:`resolve_auto`.

    python -m subgroup_values.core.plan --profile default --out build/plan.default.mk
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .paths import run_dir

#: The keys of a run that are the plan's, not the notebook's (the runner strips them before the notebook runs).
PLAN_KEYS = ("notebook", "after", "target")
#: The steps a profile may list (the numbered notebooks; 3 is run through ``runs:`` only).
STEP_NOTEBOOKS = ("01_build_dataset", "02_value_landscape", "04_finetune", "05_fairness", "06_open_ended",
                  "08_headroom", "07_paper_comparison")
#: The modal fine-tune of step 4 (``04_finetune`` in ``steps:``), as ``after:`` names it.
MODAL = "sft"
#: The value of an analysis notebook's run parameter that asks for the plan's choice.
AUTO = "auto"
#: Notebook 3's defaults that decide what a run is (the notebook's own parameters cell holds the same values; a
#: test keeps them equal).
EVALUATION_DEFAULTS = {"split": "ood", "scoring": "logprob", "template": "persona_user", "limit": 0,
                       "sample_seed": 0, "qids": [], "adapter": "", "pairs_file": ""}


class PlanError(ValueError):
    """A profile whose runs or steps cannot be planned; the message names the file, the run and what to change."""


@dataclass
class Run:
    name: str
    notebook: str  # 03_evaluate or 04_finetune
    params: dict  # the notebook's parameters from the run's entry (the plan's keys removed)
    after: str | None = None  # the fine-tune it needs
    target: str | None = None  # its own make goal (None: make all)
    settings: dict = field(default_factory=dict)  # notebook 3's defaults, the profile's 03 section, the entry

    @property
    def make_target(self) -> str:
        return f"{self.notebook}__{self.name}.ipynb"


def _config(profile: str, root: Path | None = None) -> tuple[dict, Path]:
    import yaml

    from .paths import REPO_ROOT

    path = (root or REPO_ROOT) / "configs" / f"{profile}.yaml"
    if not path.is_file():
        raise PlanError(f"Unknown profile {profile!r}: no {path}.")
    return yaml.safe_load(path.read_text()) or {}, path


def profile_study(profile: str, root: Path | None = None) -> str:
    """The study a profile runs (its ``study:``; default sgp)."""
    cfg, _ = _config(profile, root)
    return str(cfg.get("study") or "sgp")


def run_parameters(entry: dict | None) -> dict:
    """A run entry's notebook parameters: the entry without the plan's keys."""
    return {k: v for k, v in (entry or {}).items() if k not in PLAN_KEYS}


def runs(profile: str, root: Path | None = None) -> dict[str, Run]:
    """The profile's runs in declared order, checked: a known notebook, an ``after`` that names a fine-tune of the
    profile, a ``target`` that is a make goal's name."""
    cfg, path = _config(profile, root)
    steps = steps_of(cfg, path)
    section = (cfg.get("notebooks") or {}).get("03_evaluate") or {}
    out: dict[str, Run] = {}
    for name, entry in (cfg.get("runs") or {}).items():
        entry = entry or {}
        if not isinstance(entry, dict):
            raise PlanError(f"{path}: runs: {name} must be a mapping of parameters, got {entry!r}.")
        notebook = entry.get("notebook", "03_evaluate")
        if notebook not in ("03_evaluate", "04_finetune"):
            raise PlanError(f"{path}: runs: {name}: notebook {notebook!r}; a run is made by 03_evaluate (the "
                            "default) or 04_finetune.")
        target = entry.get("target")
        if target is not None and (not isinstance(target, str) or not target.replace("-", "").isalnum()):
            raise PlanError(f"{path}: runs: {name}: target {target!r} must be the name of a make goal "
                            "(letters, digits, dashes), e.g. distribution.")
        params = run_parameters(entry)
        settings = (EVALUATION_DEFAULTS | section | params) if notebook == "03_evaluate" else params
        out[name] = Run(name, notebook, params, entry.get("after"), target, settings)
    fine_tunes = {r.name for r in out.values() if r.notebook == "04_finetune"} | (
        {MODAL} if "04_finetune" in steps else set())
    for r in out.values():
        if r.after is not None and r.after not in fine_tunes:
            raise PlanError(f"{path}: runs: {r.name}: after {r.after!r} names no fine-tune of this profile (its "
                            f"fine-tunes: {sorted(fine_tunes)}; {MODAL!r} is step 4, 04_finetune in steps:).")
        if r.notebook == "03_evaluate" and bool(r.settings.get("adapter")) != bool(r.after):
            raise PlanError(f"{path}: runs: {r.name}: a run with an adapter evaluates a fine-tune and says which "
                            f"(after: {MODAL} or a fine-tune run), and only such a run has an adapter; it has "
                            f"adapter {r.settings.get('adapter')!r} and after {r.after!r}.")
    return out


def steps_of(cfg: dict, path: Path) -> list[str]:
    steps = cfg.get("steps")
    if steps is None:
        raise PlanError(f"{path} has no steps: (the notebooks of `make all` besides its runs, e.g. steps: "
                        "[01_build_dataset, 02_value_landscape, 08_headroom]): add it; an empty list [] runs only "
                        "the runs.")
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise PlanError(f"{path}: steps: must be a list of notebook names, got {steps!r}.")
    bad = [s for s in steps if s not in STEP_NOTEBOOKS]
    if bad:
        raise PlanError(f"{path}: steps: {bad} are not steps; a profile's steps are some of {list(STEP_NOTEBOOKS)} "
                        "(notebook 3 runs through runs:).")
    return steps


def fine_tune_target(name: str) -> str:
    """The executed notebook of a fine-tune: step 4's for the modal one, else the notebook-4 run's."""
    return "04_finetune.ipynb" if name == MODAL else f"04_finetune__{name}.ipynb"


def _is(r: Run, **want) -> bool:
    s = r.settings
    return r.notebook == "03_evaluate" and all(
        (bool(s.get(k)) == v if isinstance(v, bool) else s.get(k) == v) for k, v in want.items())


def analysis_parameters(profile: str, root: Path | None = None) -> dict[str, dict[str, str]]:
    """The run parameters of notebooks 5, 7 and 8 as the runs make them (the profile's ``notebooks:`` section
    still decides where it sets one):

    - 5 and 7: ``base_run`` the first zero-shot OOD logprob run on every question (no adapter, not the
      marginals template), ``sft_run`` the first such run after the modal fine-tune; 5 also the training-split
      (``*_train_run``), generate-mode (``*_generate_run``: every question) and refusal (``*_refusal_run``: the
      runs asked only some questions) runs of each; empty where the profile has none;
    - 8: ``model_runs`` every OOD logprob run on the pairs of the first one (same sample), not the marginals
      template, ``zero_shot_runs`` those without an adapter, ``marginals_runs`` the marginals template's OOD
      logprob runs.
    """
    rs = [r for r in runs(profile, root).values() if r.notebook == "03_evaluate"]
    cfg, _ = _config(profile, root)
    template = ((cfg.get("notebooks") or {}).get("03_evaluate") or {}).get("template",
                                                                          EVALUATION_DEFAULTS["template"])

    def size(r: Run) -> float:  # a run on every pair before any sample; a larger sample before a smaller one
        return float("inf") if not r.settings.get("limit") else float(r.settings["limit"])

    def best(cands) -> Run | None:
        cands = list(cands)
        return max(cands, key=size) if cands else None  # max keeps the first declared among equals

    def name(r: Run | None) -> str:
        return r.name if r else ""

    # the persona runs: the profile's own template (an ablation with another template is no base or model run)
    persona = [r for r in rs if r.settings.get("template") == template]
    out5, anchor = {}, None
    for who, tuned in (("base", False), ("sft", True)):
        pool = [r for r in persona if ((r.after == MODAL) if tuned else not r.after)]
        # the OOD run on every question: logprob scoring where the profile has it, else generate (the paper's)
        main = best(r for r in pool if _is(r, split="ood", scoring="logprob", qids=False)) or \
            best(r for r in pool if _is(r, split="ood", scoring="generate", qids=False))
        anchor = anchor or main
        out5[f"{who}_run"] = name(main)
        out5[f"{who}_train_run"] = name(best(r for r in pool if _is(r, split="train", qids=False)))
        out5[f"{who}_generate_run"] = name(best(r for r in pool if r is not main and
                                                _is(r, split="ood", scoring="generate", qids=False)))
        out5[f"{who}_refusal_run"] = name(best(r for r in pool if _is(r, split="ood", scoring="generate", qids=True)))
    # step 8 scores distributions: the logprob OOD runs on the pairs of the base run (same sample)
    models = [r for r in persona if _is(r, split="ood", scoring="logprob", qids=False)]
    if models:
        ref = anchor if anchor in models else models[0]
        same = {k: ref.settings.get(k) for k in ("limit", "sample_seed", "pairs_file")}
        models = [r for r in models if all(r.settings.get(k) == v for k, v in same.items())]
    marginals = [r for r in rs if _is(r, split="ood", scoring="logprob", template="marginals", qids=False)]
    tuned_models = [n for n in dict.fromkeys([out5["sft_run"], *(r.name for r in models if r.after)]) if n]
    return {"05_fairness": out5,
            "07_paper_comparison": {"base_run": out5["base_run"], "sft_run": out5["sft_run"],
                                    # the findings' runs: the fine-tunes on the base run's pairs, generate and refusals
                                    "sft_runs": ",".join(tuned_models),
                                    "generate_runs": ",".join(x for x in (out5["base_generate_run"],
                                                                          out5["sft_generate_run"]) if x),
                                    "refusal_runs": ",".join(x for x in (out5["base_refusal_run"],
                                                                         out5["sft_refusal_run"]) if x)},
            "08_headroom": {"model_runs": ",".join(r.name for r in models),
                            "zero_shot_runs": ",".join(r.name for r in models if not r.after),
                            "marginals_runs": ",".join(r.name for r in marginals)}}


def resolve_auto(profile: str, stem: str, namespace: dict, root: Path | None = None) -> dict:
    """Replace, in ``namespace`` (a notebook's ``globals()``), each run parameter of ``stem`` that is ``"auto"`` by
    the plan's choice (the profile's section first, then :func:`analysis_parameters`); returns the step's run
    parameters as they now stand. The runner passes them resolved; this serves a notebook opened by hand."""
    cfg, _ = _config(profile, root)
    section = (cfg.get("notebooks") or {}).get(stem) or {}
    derived = analysis_parameters(profile, root).get(stem, {})
    for k in derived:
        if namespace.get(k) == AUTO:
            namespace[k] = derived[k] if section.get(k, AUTO) == AUTO else section[k]
    return {k: namespace.get(k) for k in derived}


def reads(profile: str, stem: str, params: dict | None = None, root: Path | None = None) -> list[str]:
    """The runs an analysis step reads: its run parameters (``params``: the notebook's resolved parameters;
    default: the profile's section over :func:`analysis_parameters`), split at commas."""
    if params is None:
        cfg, _ = _config(profile, root)
        derived = analysis_parameters(profile, root).get(stem, {})
        params = derived | {k: v for k, v in ((cfg.get("notebooks") or {}).get(stem) or {}).items()
                            if k in derived and v != AUTO}
    names = []
    for v in params.values():
        names += [n for n in str(v or "").split(",") if n and n != AUTO]
    return list(dict.fromkeys(names))


def make_all(profile: str, root: Path | None = None) -> list[str]:
    """The executed notebooks of ``make all`` in order: the steps before notebook 3, then the runs as declared
    (each fine-tune just before the first run that needs it), then the remaining steps."""
    cfg, path = _config(profile, root)
    steps = steps_of(cfg, path)
    rs = runs(profile, root)
    order: list[str] = [f"{s}.ipynb" for s in steps if s < "03"]

    def add(t: str) -> None:
        if t not in order:
            order.append(t)

    for r in rs.values():
        if r.target:
            continue
        if r.after:
            if r.after != MODAL and rs[r.after].target:
                raise PlanError(f"{path}: runs: {r.name} is in make all but needs {r.after}, which is built by "
                                f"`make {rs[r.after].target}` only: give {r.name} target: {rs[r.after].target}.")
            if r.after == MODAL or r.after in rs:
                add(fine_tune_target(r.after))
        add(fine_tune_target(r.name) if r.notebook == "04_finetune" else r.make_target)
    for s in steps:
        if s >= "03":
            add(f"{s}.ipynb")
    return order


def make_fragment(profile: str, root: Path | None = None) -> str:
    """The Makefile's lists for ``profile`` (included from build/plan.<profile>.mk)."""
    rs = runs(profile, root)
    cfg, _ = _config(profile, root)
    evals = [r for r in rs.values() if r.notebook == "03_evaluate"]
    tunes = [r for r in rs.values() if r.notebook == "04_finetune"]
    lines = [f"# Written by `python -m subgroup_values.core.plan --profile {profile}` from configs/{profile}.yaml: do not edit.",
             "PLAN_STEPS := " + " ".join(f"$(OUT)/{t}" for t in make_all(profile, root)),
             "PLAN_EVALUATIONS := " + " ".join(f"$(OUT)/{r.make_target}" for r in evals),
             "PLAN_FINE_TUNES := " + " ".join(f"$(OUT)/{fine_tune_target(r.name)}" for r in tunes)]
    goals: dict[str, list[str]] = {}
    for r in rs.values():
        if r.target:
            goals.setdefault(r.target, []).append(
                f"$(OUT)/{fine_tune_target(r.name) if r.notebook == '04_finetune' else r.make_target}")
    lines.append("PLAN_GOALS := " + " ".join(goals))
    for goal, targets in goals.items():
        lines.append(f"PLAN_GOAL_{goal.replace('-', '_')} := " + " ".join(targets))
    lines.append("PLAN_AFTER_FINE_TUNE := " + " ".join(f"$(OUT)/{r.make_target}" for r in evals if r.after))
    for r in evals:
        if r.after:
            lines.append(f"$(OUT)/{r.make_target}: $(OUT)/{fine_tune_target(r.after)}")
    recipes = []
    for r in tunes:
        recipe = r.params.get("recipe")
        if not recipe:
            raise PlanError(f"configs/{profile}.yaml: runs: {r.name} (notebook 04_finetune) needs its recipe "
                            f"(recipe: configs/sft/{profile}_{r.name.removeprefix('sft_')}.yaml, say).")
        lines.append(f"$(OUT)/{fine_tune_target(r.name)}: {recipe}")
        recipes.append(f"--recipe {fine_tune_target(r.name).removesuffix('.ipynb')}={recipe}")
    lines.append("PLAN_REUSE_RECIPES := " + " ".join(recipes))
    section = cfg.get("notebooks") or {}
    for stem in ("05_fairness", "07_paper_comparison", "08_headroom"):
        needed = [rs[n] for n in reads(profile, stem, root=root) if n in rs]
        built = [f"$(OUT)/{r.make_target}" for r in needed if not r.target]
        files = [(run_dir(profile, r.name) / "predictions.parquet").as_posix() for r in needed if r.target]
        files += other_predictions(section.get(stem) or {}, root)
        # a run built by its own goal is read as its committed predictions (when they are there)
        lines.append(f"PLAN_READS_{stem} := " + " ".join(built) +
                     (f" $(wildcard {' '.join(files)})" if files else ""))
    return "\n".join(lines) + "\n"


def other_predictions(section: dict, root: Path | None = None) -> list[str]:
    """The predictions of other profiles a step reads (their committed files): step 7's ``other_models`` (each
    profile's zero-shot and fine-tuned OOD runs) and step 8's ``disjoint_runs`` (``name=profile/run``)."""
    files = []
    for prof in [p for p in str(section.get("other_models") or "").split(",") if p]:
        d = analysis_parameters(prof, root)["07_paper_comparison"]
        files += [(run_dir(prof, d[k]) / "predictions.parquet").as_posix() for k in ("base_run", "sft_run") if d[k]]
    for item in [x for x in str(section.get("disjoint_runs") or "").split(",") if x]:
        prof, _, run = item.split("=", 1)[-1].partition("/")
        if not run:
            raise PlanError(f"disjoint_runs entry {item!r}: expected name=profile/run (e.g. sft_disjoint=disjoint/sft_ood).")
        files.append((run_dir(prof, run) / "predictions.parquet").as_posix())
    return files


def separate_targets(profile: str, root: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Per make goal other than ``all``: the steps (executed notebooks' stems) it builds."""
    out: dict[str, list[str]] = {}
    for r in runs(profile, root).values():
        if r.target:
            t = fine_tune_target(r.name) if r.notebook == "04_finetune" else r.make_target
            out.setdefault(r.target, []).append(t.removesuffix(".ipynb"))
    return {k: tuple(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m subgroup_values.core.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", required=True)
    ap.add_argument("--out", required=True, help="the Makefile fragment to write")
    args = ap.parse_args(argv)
    try:
        text = make_fragment(args.profile)
    except PlanError as exc:
        raise SystemExit(f"error: {exc}") from None
    from .provenance import atomic_write

    out = Path(args.out)
    if not out.is_file() or out.read_text() != text:  # rewritten only when it changes: make reads its time
        atomic_write(out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
