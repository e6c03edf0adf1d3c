"""How long the study's commands take: each step's recorded time, and the generated sentences (claims) about a
profile's `make all` and the budget it must stay within.

The runner appends one row per finished step to ``build/notebooks/<profile>/timings.tsv`` (its end, wall seconds,
peak memory, the machine's mean load, CPU seconds, the cores it could use); :func:`step_timings` turns those rows,
and the profile's committed ``results/<profile>/timings.csv``, into one table, each model step marked with whether
it computed its answers (its run record says); :func:`timing_claims` writes what the table supports and no more.

Only step 7 (which writes the claims) and the README generator read this module: the model steps' code does not
import it, so a change here does not make their committed runs out of date.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from ..core import claims
from ..core.paths import REPO_ROOT

#: The time `make all` of the default profile must stay within on the project's 2-core machines (minutes).
TIME_BUDGET_MINUTES = 90
#: The machines the budget is for.
BUDGET_CORES = 2
#: A step whose machine's mean 1-minute load exceeded this shared the 2 cores with other work (a step's own torch
#: threads load the machine to about 2).
QUIET_LOAD = 2.5
#: Steps recorded more than this many minutes apart (one's start after the previous one's end) may not be one run.
SESSION_GAP_MINUTES = 5.0
#: Step 7 writes the timing table: its own run is not in it (a row of it is an earlier run's).
UNTIMED_STEPS = ("07_paper_comparison",)
#: A model step: its time depends on whether it computed its answers (evaluations, fine-tunes, open-ended answers).
MODEL_STEPS = ("03_evaluate", "04_finetune", "06_open_ended")
#: A run record belongs to a row when it was written between the step's start and end (give or take this).
RECORD_SLACK_MINUTES = 2.0
#: The table's columns, in order.
COLUMNS = ["step", "minutes", "peak_mb", "load_mean", "cores", "finished", "from_cache", "note"]


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _local(date: str | None) -> datetime | None:
    """A record's ISO date as this machine's local time without a zone (as the runner writes ``finished``)."""
    try:
        d = datetime.fromisoformat(str(date))
    except (TypeError, ValueError):
        return None
    return d.astimezone().replace(tzinfo=None) if d.tzinfo else d


def _record_of(step: str, results_dir: Path, finetune_dir: Path | None) -> Path | None:
    if step.startswith("03_evaluate__"):
        return results_dir / step.split("__", 1)[1] / "metrics.json"
    if step == "06_open_ended":
        return results_dir / "open_ended" / "provenance.json"
    if step.startswith("04_finetune") and finetune_dir is not None:
        return Path(finetune_dir) / f"{step.split('__', 1)[1] if '__' in step else 'sft'}_run.json"
    return None


def _belongs(rec: dict, finished: str, minutes: float) -> bool:
    """Whether a run record was written by the run a timing row records (its date within the step's span)."""
    when, end = _local(rec.get("date")), pd.to_datetime(finished, errors="coerce")
    if when is None or pd.isna(end) or pd.isna(minutes):
        return False
    slack = pd.Timedelta(minutes=RECORD_SLACK_MINUTES)
    return end - pd.Timedelta(minutes=float(minutes)) - slack <= pd.Timestamp(when) <= end + slack


def _mark(step: str, rec: dict) -> tuple[bool | None, str]:
    """(from_cache, note) for a model step from its run record: True where it took answers from the response cache
    or resumed a checkpoint, False where it computed them all, None where the record does not say."""
    if step.startswith("03_evaluate__"):
        computed = (rec.get("timing") or {}).get("pairs_computed")
        needed = int(rec.get("pairs") or 0) or None
        if computed is None or needed is None:
            return None, "its record does not say how many pairs it computed"
        cached = int(computed) < needed
        return cached, (f"{int(computed):,} of {needed:,} pairs computed"
                        + (", the rest from the response cache" if cached else ""))
    if step == "06_open_ended":
        stages = rec.get("timings") or {}
        if not stages:
            return None, "its record does not say how many answers it computed"
        computed = int(sum(int(v[1]) for v in stages.values()))
        if computed == 0:
            return True, "no answer computed: every answer from the response cache"
        # how many each stage needed is not recorded: some may have come from the cache
        return None, f"{computed:,} answers computed (how many it needed is not recorded)"
    if step.startswith("04_finetune"):
        tr = rec.get("training") or {}
        loss = (rec.get("config") or {}).get("script", {}).get("loss", "modal")
        note = (f"{rec['data']['train_pairs']:,} training pairs, {loss} loss, {tr.get('trainer', 'trl')} trainer: "
                f"{tr['seconds'] / 60:.1f} min training, {tr.get('examples_per_second', 0):.1f} examples/s")
        if "resumed_from" not in tr:
            return None, note + " (whether it resumed a checkpoint is not recorded)"
        resumed = tr["resumed_from"] is not None
        return resumed, note + (", resumed from a checkpoint" if resumed else "")
    return None, ""


def step_timings(timings_file: str | Path, finetune_dir: str | Path | None = None,
                 previous: str | Path | None = None, results_dir: str | Path | None = None) -> pd.DataFrame:
    """The latest wall time and peak memory of every step of a profile (from the runner's ``timings.tsv``), in the
    order the steps last ran.

    ``previous`` (the profile's committed ``timings.csv``): the steps that did not run here keep their last
    recorded row (their ``finished`` date says when), so a single step run on its own never shortens the table
    (with no ``timings_file`` here, the table is the previous one, checked again).

    ``results_dir`` and ``finetune_dir`` (the profile's results and its fine-tunes' records): each model step's
    ``from_cache`` and note come from the record its row's run wrote (True: it took answers from the response cache,
    or the fine-tune resumed a checkpoint; False: it computed them all; empty: not known, e.g. a record written by
    another run than the row's), because only a step that computed everything took a fresh machine's time."""
    path = Path(timings_file)
    if not path.is_file() and not (previous is not None and Path(previous).is_file()):
        raise FileNotFoundError(f"No step timings at {path}: run `make all` for the profile first.")
    # four columns before the runner recorded the load; six since (load_mean: the machine's mean 1-minute load
    # average over the step; cpu_seconds: the step's own CPU time); seven since it records the cores it could use
    cols = ["finished", "step", "seconds", "peak_mb", "load_mean", "cpu_seconds", "cores"]
    rows = []
    for i, line in enumerate(path.read_text().splitlines() if path.is_file() else [], 1):
        if not line.strip():
            continue
        f = line.split("\t")
        if len(f) not in (4, 6, 7):
            raise ValueError(f"{path}, line {i}: {len(f)} columns; expected 4, 6 or 7 (the runner's timings).")
        rows.append(f + ["nan"] * (7 - len(f)))
    t = pd.DataFrame(rows, columns=cols)
    for c in ("seconds", "peak_mb", "load_mean", "cpu_seconds", "cores"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    t = t.drop_duplicates("step", keep="last")
    t["minutes"] = (t["seconds"] / 60).round(2)
    t["note"] = ""
    t["from_cache"] = pd.NA
    if previous is not None and Path(previous).is_file():
        old = pd.read_csv(previous, keep_default_na=False, dtype=str)
        old = old[~old["step"].isin(t["step"])].copy()
        for c in COLUMNS:
            if c not in old:
                old[c] = ""
        t = pd.concat([old[COLUMNS], t[COLUMNS]], ignore_index=True)
    t = t[COLUMNS].copy()
    for c in ("minutes", "peak_mb", "load_mean", "cores"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    t["peak_mb"] = t["peak_mb"].round().astype("Int64")
    t["cores"] = t["cores"].round().astype("Int64")
    t["from_cache"] = (t["from_cache"].astype(str).str.strip().str.lower()
                       .map({"true": True, "false": False}).astype("boolean"))
    t["note"] = t["note"].fillna("").astype(str)
    t = t.sort_values("finished", kind="stable").reset_index(drop=True)
    if results_dir is None and finetune_dir is None:
        return t
    res = Path(results_dir) if results_dir is not None else None
    for i, step in t["step"].items():
        step = str(step)
        if not step.startswith(MODEL_STEPS) or (res is None and not step.startswith("04_finetune")):
            continue
        record = _record_of(step, res if res is not None else Path("."), finetune_dir)
        if record is None or not record.is_file():
            t.loc[i, "from_cache"] = pd.NA
            continue
        rec = json.loads(record.read_text())
        if not _belongs(rec, t.loc[i, "finished"], t.loc[i, "minutes"]):
            t.loc[i, "from_cache"] = pd.NA
            t.loc[i, "note"] = f"its record ({record.name}, {rec.get('date')}) is not this row's run"
            continue
        cached, note = _mark(step, rec)
        t.loc[i, "from_cache"] = pd.NA if cached is None else cached
        t.loc[i, "note"] = note
    return t


def _sessions(t: pd.DataFrame) -> list[tuple[str, str]] | None:
    """The spans (first start, last end) in which the rows' steps ran: a new one where a step started more than
    SESSION_GAP_MINUTES after the previous steps ended (a step's start: its end less its minutes). None when a
    row's end or minutes cannot be read."""
    end = pd.to_datetime(t["finished"], errors="coerce", format="ISO8601")
    minutes = pd.to_numeric(t["minutes"], errors="coerce")
    if end.isna().any() or minutes.isna().any():
        return None
    spans: list[list] = []
    last = None
    for i in end.sort_values(kind="stable").index:
        start = end[i] - pd.Timedelta(minutes=float(minutes[i]))
        if last is None or (start - last) > pd.Timedelta(minutes=SESSION_GAP_MINUTES):
            spans.append([start, end[i]])
        else:
            spans[-1][1] = max(spans[-1][1], end[i])
        last = end[i] if last is None else max(last, end[i])
    return [(a.strftime("%Y-%m-%d %H:%M"), b.strftime("%Y-%m-%d %H:%M")) for a, b in spans]


def expected_steps(profile: str) -> set[str] | None:
    """The steps of the profile's `make all` that the table times (its plan's, less step 7 and the steps of the
    targets it leaves to their own command); None where the plan cannot be read."""
    from ..core import plan

    try:
        steps = {nb.removesuffix(".ipynb") for nb in plan.make_all(profile)}
        separate = plan.separate_targets(profile)
    except (FileNotFoundError, plan.PlanError, KeyError, ValueError):
        return None
    return steps - set(UNTIMED_STEPS) - {s for v in separate.values() for s in v}


def timing_claims(timings: pd.DataFrame, profile: str, source: str, budget: float = TIME_BUDGET_MINUTES,
                  expected: set[str] | None = None) -> list:
    """The time of a profile's `make all` and of each target it leaves to its own command (the runs with ``target:``
    in its config, :func:`subgroup_values.core.plan.separate_targets`): the sum of their steps' last recorded wall
    times (``timings``: a :func:`step_timings` table; step 7, which writes it, not counted), the longest step and
    the sessions the rows were recorded in.

    For the default profile's `make all` it says whether the sum stays within ``budget`` minutes, and only when
    that follows: every step of the plan (``expected``; by default :func:`expected_steps`) has a time, the steps
    were recorded in one session on the budget's machines (``BUDGET_CORES`` cores, recorded), every model step is
    known to have computed its answers itself (``from_cache`` False), and the sum is not within rounding of the
    budget. Otherwise the sum is reported with each reason it is not judged."""
    if timings.empty:
        return []
    from ..core.plan import separate_targets

    known = profile in {p.stem for p in (REPO_ROOT / "configs").glob("*.yaml")}
    separate = separate_targets(profile) if known else {}
    apart = {s for steps in separate.values() for s in steps}
    t_all = timings.reset_index(drop=True)
    t_all = t_all[~t_all["step"].isin(UNTIMED_STEPS)]
    t_all = (t_all.assign(_end=pd.to_datetime(t_all["finished"], errors="coerce", format="ISO8601"))
             .sort_values("_end", kind="stable").drop_duplicates("step", keep="last").drop(columns="_end"))
    plan_read = True
    if expected is None:
        expected = expected_steps(profile) if known else set()
        plan_read = expected is not None
    groups = [("all", t_all[~t_all["step"].isin(apart)], expected or set())] + \
        [(name, t_all[t_all["step"].isin(steps)], set(steps)) for name, steps in separate.items()]
    out = []
    for target, t, want in groups:
        if t.empty:
            continue
        command = f"make {target} PROFILE={profile}"
        judged = target == "all" and profile == "default"
        minutes = pd.to_numeric(t["minutes"], errors="coerce")
        total = float(minutes.sum())
        untimed = int(minutes.isna().sum())
        longest = t.loc[minutes.idxmax()] if minutes.notna().any() else None
        sessions = _sessions(t)
        missing = sorted(set(want) - set(t["step"]))
        model = t["step"].astype(str).str.startswith(MODEL_STEPS)
        flag = t["from_cache"].astype(str).str.strip().str.lower() if "from_cache" in t else pd.Series("", t.index)
        cached = model & flag.eq("true")
        resumed = cached & t["step"].astype(str).str.startswith("04_finetune")
        unknown_cache = model & ~flag.isin(["true", "false"])
        n_cached, n_resumed, n_unknown = int(cached.sum()), int(resumed.sum()), int(unknown_cache.sum())
        load = pd.to_numeric(t["load_mean"], errors="coerce") if "load_mean" in t else pd.Series(float("nan"), t.index)
        busy, no_load = int((load > QUIET_LOAD).sum()), int(load.isna().sum())
        cores = pd.to_numeric(t["cores"], errors="coerce") if "cores" in t else pd.Series(float("nan"), t.index)
        n_cores = sorted({int(c) for c in cores.dropna()})
        no_cores = int(cores.isna().sum())

        reasons = []
        if judged and not plan_read:
            reasons.append(f"the plan of profile {profile} could not be read, so a missing step cannot be seen")
        if missing:
            reasons.append(f"{_n(len(missing), 'step')} of the plan {'has' if len(missing) == 1 else 'have'} no "
                           f"recorded time ({', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''})")
        if untimed:
            reasons.append(f"{_n(untimed, 'step')} without a readable time")
        if sessions is None:
            reasons.append("some steps' finish times cannot be read, so whether they ran as one run is not known")
        elif len(sessions) > 1:
            reasons.append(f"steps more than {SESSION_GAP_MINUTES:g} min apart: the sum may not be one run's wall "
                           "time")
        if n_cached - n_resumed:
            served = float(minutes[cached & ~resumed].sum())
            reasons.append(f"{_n(n_cached - n_resumed, 'step')} ({served:.1f} min with cached answers) took "
                           "model answers from the response cache (`cache/responses.sqlite`), so this is not the "
                           "time of a fresh machine, which computes every answer")
        if n_resumed:
            reasons.append(f"{_n(n_resumed, 'fine-tune')} resumed from a checkpoint, so "
                           f"{'their times are' if n_resumed > 1 else 'its time is'} not a whole fine-tune's")
        if n_unknown:
            reasons.append(f"whether {_n(n_unknown, 'model step')} computed {'their' if n_unknown > 1 else 'its'} "
                           "answers itself (not from the response cache, not resumed) is not recorded")
        if judged and (no_cores or n_cores != [BUDGET_CORES]):
            reasons.append(f"the budget is for {BUDGET_CORES} CPU cores and " +
                           (f"{_n(no_cores, 'step')} did not record {'its' if no_cores == 1 else 'their'} cores"
                            if no_cores else f"the steps ran on {' or '.join(map(str, n_cores))}"))
        if judged and not reasons and abs(total - budget) <= 0.005 * len(t):
            reasons.append("the sum is within rounding of the budget")

        if no_load == len(t):
            shared = "no step's machine load was recorded, so whether other work shared the cores is not known"
        elif busy:
            shared = (f"{busy} of its {_n(len(t), 'step')} ({float(minutes[load > QUIET_LOAD].sum()):.1f} min) ran "
                      f"with the machine's mean load above {QUIET_LOAD:g}, so they shared the cores with other work")
        else:
            shared = f"no step with a recorded load ran above a mean load of {QUIET_LOAD:g}"
        if no_load and no_load < len(t):
            shared += f"; {_n(no_load, 'step')} without a recorded load"
        if model.any() and not n_cached and not n_unknown:
            shared = f"every model step computed its answers itself; {shared}"
        verdict = ("within the budget" if total <= budget else "over the budget") if judged and not reasons else ""
        why = "; ".join(reasons + [shared])
        tail = (f": within the budget of {budget:g} min ({why})." if verdict == "within the budget" else
                f": over the budget of {budget:g} min as measured ({why})." if verdict else
                f": not judged against the budget of {budget:g} min ({why})." if judged else f" ({why}).")
        on = (f" on {' or '.join(map(str, n_cores))} CPU cores" if n_cores else " (CPU cores not recorded)")
        if n_cores and no_cores:
            on += f" ({_n(no_cores, 'step')} without a recorded core count)"
        if sessions:
            a, b = sessions[0][0], sessions[-1][1]
            span = f"{a} to {b[11:] if a[:10] == b[:10] else b}"
            when = (f"recorded in one session ({span}" if len(sessions) == 1 else
                    f"recorded in {len(sessions)} sessions ({span}")
        else:
            when = "(finish times not readable"
        step_word = (f"; longest step {longest['step']}, {float(minutes[longest.name]):.1f} min)"
                     if longest is not None else ")")
        out.append(claims.Claim(
            id=f"timings.{profile}.make_{target}", topic="timings", statistic=f"minutes of {command}",
            estimate=round(total, 1), verdict=verdict, source=source,
            method=("sum of the steps' wall times (the runner's timings, the last recorded run of each step; step 7, "
                    "which writes this, and the page's rendering are not counted); sessions: steps more than "
                    f"{SESSION_GAP_MINUTES:g} min apart"),
            rule=(f"within the budget if the sum is at most {budget:g} minutes, every step of the plan has a time, the "
                  f"steps ran in one session on {BUDGET_CORES} cores and every model step computed its answers "
                  "itself") if judged else "",
            extra={"steps": int(len(t)), "first_finished": str(t["finished"].min()),
                   "last_finished": str(t["finished"].max()), "sessions": len(sessions) if sessions else None,
                   "steps_missing": missing, "steps_from_cache": n_cached, "steps_resumed": n_resumed,
                   "steps_cache_unknown": n_unknown, "steps_over_quiet_load": busy, "steps_without_load": no_load,
                   "cores": n_cores},
            sentence=(f"`{command}`: its {_n(len(t), 'step')}' recorded wall times sum to {total:.1f} min{on}, "
                      f"{when}{step_word}{tail}").replace("1 step' ", "1 step's ")))
    return out
