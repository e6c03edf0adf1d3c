"""Run a numbered notebook through papermill with a profile's parameters, then export it to HTML.

    python -m subgroup_values.pipeline.runner notebooks/01_build_dataset.ipynb --profile default [-p key value ...]

Parameters come from ``configs/<profile>.yaml`` (section ``notebooks: <notebook stem>:``), then ``-p``
overrides. Every parameter must exist in the notebook's ``parameters`` cell: a typo is an error, not a
silently ignored setting. The executed notebook goes to ``build/notebooks/<profile>/`` with an HTML copy.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import yaml

from ..core.choices import BACKENDS, SCORINGS, SPLITS, TEMPLATES, spoken
from ..core.paths import REPO_ROOT, settle_hub_mode
from ..core.provenance import KEY_PATTERN, url_secrets

#: The sections a profile may have. ``study``: the study it runs (a shipped study's name or a config path;
#: default sgp): the runner passes it to every notebook that declares a ``study`` parameter.
PROFILE_SECTIONS = ("profile", "study", "notebooks", "steps", "runs")

#: What an executed notebook must not show (the rendered study reads them; progress belongs on the terminal):
#: the libraries' progress bars (tqdm's default, the hub's and datasets' switches; the package's own bars, which
#: pass ``disable=`` themselves, are not reached by these: publish.py strips them from the page), and warnings
#: known to be harmless: tqdm's "IProgress not found" (no
#: ipywidgets in a papermill kernel) and transformers' deprecation of ``is_gradient_checkpointing`` (raised
#: inside transformers/peft, not by our calls). Filters are ``-W`` entries (message prefix, category).
QUIET_PROGRESS = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
QUIET_WARNINGS = ("ignore:IProgress not found:Warning",
                  "ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")


def quiet_kernel_environment(env: dict | None = None) -> dict:
    """Set (in ``env``, default ``os.environ``, which the notebook's kernel inherits) the switches that keep
    progress bars and the known harmless warnings out of executed notebooks; a ``PYTHONWARNINGS`` already set
    is kept, the filters are added to it. Returns ``env``."""
    env = os.environ if env is None else env
    env.update(QUIET_PROGRESS)
    have = [w for w in env.get("PYTHONWARNINGS", "").split(",") if w.strip()]
    env["PYTHONWARNINGS"] = ",".join(have + [w for w in QUIET_WARNINGS if w not in have])
    return env


#: Checks of parameters that every notebook shares the meaning of: (test, what is expected).
PARAMETER_RULES = {
    "batch_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "limit": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0 (0: every pair)"),
    "max_new_tokens": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "n_boot": (lambda v: isinstance(v, int) and v >= 10, "an integer >= 10 (1,000 for reported intervals)"),
    "n_sim": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "concurrency": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "timeout": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 3600,
                "seconds, a number > 0 and <= 3600 (how long a remote request may take)"),
    "n_pairs": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "min_group_size": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "min_answers": (lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
    "seed": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "sample_seed": (lambda v: isinstance(v, int) and v >= 0, "an integer >= 0"),
    "qids": (lambda v: isinstance(v, list) and all(isinstance(q, str) and re.fullmatch(r"Q\d+[A-Z]?", q) for q in v),
             "a list of question ids such as [Q22, Q36] (empty: every question)"),
    "split": (lambda v: v in SPLITS, spoken(SPLITS)),
    "scoring": (lambda v: v in SCORINGS, spoken(SCORINGS)),
    "template": (lambda v: v in TEMPLATES, f"one of {', '.join(TEMPLATES)}"),
    "backend": (lambda v: v in BACKENDS, spoken(BACKENDS)),
    "api_key_env": (lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None,
                    "the NAME of an environment variable that holds the key (e.g. OPENAI_API_KEY), never the key"),
}


def known_profiles(root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.stem for p in (root / "configs").glob("*.yaml"))


def load_profile(profile: str, root: Path = REPO_ROOT) -> dict:
    """Read ``configs/<profile>.yaml`` and check its sections and notebook names."""
    path = root / "configs" / f"{profile}.yaml"
    if not path.is_file():
        raise SystemExit(f"Unknown profile {profile!r}: no {path}. Known profiles: {known_profiles(root)}.")
    cfg = yaml.safe_load(path.read_text()) or {}
    if not isinstance(cfg, dict):
        raise SystemExit(f"{path} must be a mapping with sections {list(PROFILE_SECTIONS)}.")
    unknown = sorted(set(cfg) - set(PROFILE_SECTIONS))
    if unknown:
        raise SystemExit(f"{path}: unknown section(s) {unknown}; a profile has only {list(PROFILE_SECTIONS)}.")
    stems = sorted(p.stem for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    bad = sorted(set(cfg.get("notebooks") or {}) - set(stems))
    if bad:
        raise SystemExit(f"{path}: notebooks: {bad} name no notebook; known notebooks: {stems}.")
    return cfg


def check_parameters(params: dict, where: str) -> None:
    """Refuse values that cannot be right (a negative batch size, an unknown split) and anything that looks
    like a secret, before the notebook runs (and before its parameters are printed or stored)."""
    for name, value in params.items():
        if isinstance(value, str) and KEY_PATTERN.search(value):
            raise SystemExit(f"{where}: parameter {name!r} looks like an API key. Keys never go into parameters "
                             "(they would be written into the executed notebook): put the key in an environment "
                             "variable and pass its name as api_key_env.")
        if isinstance(value, str) and "://" in value and url_secrets(value):
            raise SystemExit(f"{where}: parameter {name!r} is a URL that carries {' and '.join(url_secrets(value))}; "
                             "it would be written into the executed notebook and its HTML. Give the URL without it: "
                             "the API key goes in an environment variable named by api_key_env, and a token the "
                             "URL itself must hold is written as ${NAME} (filled from the environment variable NAME "
                             "when the request is sent, never recorded).")
    for name, value in params.items():
        rule = PARAMETER_RULES.get(name)
        if rule and (isinstance(value, bool) or not rule[0](value)):  # true is no count, no name
            raise SystemExit(f"{where}: parameter {name!r} = {value!r} is invalid; expected {rule[1]}.")


def notebook_parameters(profile: str, stem: str, overrides: dict | None = None, run: str | None = None,
                        root: Path = REPO_ROOT) -> dict:
    """Parameters for one notebook run: profile defaults, then the named run's (``runs: <name>:``), then flags."""
    from ..core import plan

    cfg = load_profile(profile, root)
    params = {"profile": profile}
    params.update((cfg.get("notebooks") or {}).get(stem) or {})
    if run:
        runs = cfg.get("runs") or {}
        if run not in runs:
            raise SystemExit(f"Run {run!r} is not defined in configs/{profile}.yaml (runs: {sorted(runs)}).")
        params.update(plan.run_parameters(runs[run]))
        params["run_name"] = run
    # the runs an analysis step reads, as the profile's runs make them, where its section does not name them
    try:
        derived = plan.analysis_parameters(profile, root).get(stem, {})
    except plan.PlanError as exc:
        raise SystemExit(f"error: {exc}") from None
    params.update({k: v for k, v in derived.items() if params.get(k, plan.AUTO) == plan.AUTO})
    params.update(overrides or {})
    check_parameters(params, f"configs/{profile}.yaml + flags, notebook {stem}")
    return params


def run_notebook(src: str | Path, profile: str = "default", overrides: dict | None = None,
                 out_dir: str | Path | None = None, html: bool = True, run: str | None = None) -> Path:
    import papermill as pm

    src = Path(src)
    if not src.is_file():
        raise SystemExit(f"No notebook at {src}.")
    params = notebook_parameters(profile, src.stem, overrides, run)
    declared = pm.inspect_notebook(str(src))
    if "study" in declared and "study" not in params:
        # the profile's study, passed to the notebook as a parameter (never through the environment)
        from ..survey.study import load_study

        params["study"] = str(load_profile(profile).get("study") or "sgp")
        load_study(params["study"])  # a wrong study config fails here, before any notebook runs
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise SystemExit(f"{src.name}: parameter(s) {unknown} are not in its parameters cell; "
                         f"it takes {sorted(declared)}. Fix configs/{profile}.yaml or the -p flag.")
    if profile == "default" and os.environ.get("ALLOW_DIRTY") != "1":
        from ..core.provenance import git_revision

        rev = git_revision()
        if rev.endswith("-dirty"):
            raise SystemExit(f"The reference run (profile 'default') records the revision that made it, and the "
                             f"working tree differs from {rev[:-6]}: commit (or stash) first, or set ALLOW_DIRTY=1 "
                             "to run anyway (the run record will say '-dirty').")
    out_dir = Path(out_dir or REPO_ROOT / "build" / "notebooks" / profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / (f"{src.stem}__{run}.ipynb" if run else src.name)
    # papermill writes the output notebook while it runs: write it under another name and move it into place
    # only on success, so that a failed or killed step never leaves a target that `make` takes for done.
    partial = out.with_name(out.stem + ".partial.ipynb")
    failed = out.with_name(out.stem + ".failed.ipynb")
    for stale in (out, out.with_suffix(".html"), failed):
        stale.unlink(missing_ok=True)
    t0 = time.time()
    load = _LoadSampler().start()  # what else ran on the machine during the step (timings.tsv says it)
    cpu0 = _children_cpu()
    print(f"[{profile}] {out.stem}: running with {params}", flush=True)
    # the kernel inherits this process's environment: the hub setting reaches it explicitly ("1" or "0"), so
    # that the notebooks' own default (offline, for a notebook opened by hand) does not override it
    settle_hub_mode()
    # figures show in the executed notebook (the tutorial and the paper read them there) and are saved as files
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    quiet_kernel_environment()
    try:
        pm.execute_notebook(str(src), str(partial), parameters=params, cwd=str(REPO_ROOT), progress_bar=False,
                            log_output=False, kernel_name="python3",
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])  # no TCP warning per step
    except BaseException:
        load.stop()
        if partial.exists():
            scrub_notebook(partial)
            partial.replace(failed)
            print(f"[{profile}] {out.stem}: FAILED; the notebook as far as it ran is {failed}", file=sys.stderr)
        raise
    scrub_notebook(partial)  # before the HTML copy: neither holds a secret
    if html:
        import nbformat
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter().from_notebook_node(nbformat.read(partial, as_version=4))
        out.with_suffix(".html").write_text(body, encoding="utf-8")
    partial.replace(out)  # last: the target exists only when everything above succeeded
    print(f"[{profile}] {out.stem}: done in {time.time() - t0:.1f} s -> {out}", flush=True)
    _log_timing(out_dir, out.stem, time.time() - t0, load.stop(), _children_cpu() - cpu0)
    return out


def scrub_notebook(path: str | Path) -> bool:
    """Redact secrets (the environment's keys and tokens, credentials in URLs, anything that looks like an API
    key) from a notebook's sources and text outputs, in place; True when something was redacted."""
    import nbformat

    from ..core.provenance import redact

    nb = nbformat.read(str(path), as_version=4)
    changed = False

    def clean(text):
        nonlocal changed
        if isinstance(text, list):
            return [clean(t) for t in text]
        if not isinstance(text, str):
            return text
        new = redact(text)
        changed |= new != text
        return new

    for cell in nb.cells:
        cell.source = clean(cell.source)
        for out in cell.get("outputs", []):
            for key in ("text", "traceback", "evalue"):
                if key in out:
                    out[key] = clean(out[key])
            for mime, value in (out.get("data") or {}).items():
                if mime.startswith("text/") or mime.endswith("json"):
                    out["data"][mime] = clean(value) if isinstance(value, str | list) else value
    if changed:
        nbformat.write(nb, str(path))
    return changed


class _LoadSampler:
    """The machine's 1-minute load average, sampled every ``every`` seconds in a background thread while a step
    runs; :meth:`stop` returns the mean (NaN where the platform has no load average)."""

    def __init__(self, every: float = 15.0):
        import threading

        self.every, self.samples, self._stop = every, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            self.samples.append(os.getloadavg()[0])
        except (OSError, AttributeError):
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def start(self) -> _LoadSampler:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> float:
        if not self._stop.is_set():
            self._stop.set()
            self._sample()
        return float(sum(self.samples) / len(self.samples)) if self.samples else float("nan")


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children (the notebook's kernel, once it exits)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _log_timing(out_dir: Path, name: str, seconds: float, load_mean: float = float("nan"),
                cpu_seconds: float = float("nan")) -> None:
    """Append the step's wall time, the process tree's peak memory, the machine's mean 1-minute load average over
    the step, the step's own CPU seconds (its kernel's) and the CPU cores it could use to
    build/notebooks/<profile>/timings.tsv. With 2 cores a
    step that had the machine to itself shows a load near its own threads' (about 2); more is other work."""
    import resource

    peak_kb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    with open(out_dir / "timings.tsv", "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{name}\t{seconds:.1f}\t{peak_kb / 1024:.0f}\t"
                f"{load_mean:.2f}\t{cpu_seconds:.1f}\t{cores}\n")


def _parse_value(text: str):
    """A ``-p NAME VALUE`` flag's value as YAML reads it (``0`` an integer, ``[]`` a list, ``a b`` a string), except
    that an empty or blank value stays the string it is: YAML reads "" as null, and a notebook's string parameter
    (``-p marginals_runs ""``: none) would get None. ``null`` or ``~`` still give None when that is meant."""
    if text.strip() == "":
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook")
    ap.add_argument("--profile", default=os.environ.get("PROFILE", "default"))
    ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    ap.add_argument("--run", default=None, help="a named run of configs/<profile>.yaml (runs:)")
    ap.add_argument("--out-dir", default=None)
    ap.add_argument("--no-html", action="store_true")
    args = ap.parse_args(argv)
    from ..core.paths import check_own_checkout, require_checkout

    require_checkout("python -m subgroup_values.pipeline.runner")
    check_own_checkout()
    overrides = {k: _parse_value(v) for k, v in args.param}
    run_notebook(args.notebook, args.profile, overrides, args.out_dir, html=not args.no_html, run=args.run)


if __name__ == "__main__":
    main(sys.argv[1:])
