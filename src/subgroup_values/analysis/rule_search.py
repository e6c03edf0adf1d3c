"""Which question rule did the paper use? A search over rules that reproduce its counts and landscape.

The paper keeps 214 of the 233 asked ordinal items and does not say which 19 it dropped. A rule must reproduce
the counts (214 questions; 10,700 training and 10,177 OOD pairs, with pairs of fewer than 30 answers dropped):
since 50 x 214 = 10,700 and 48 x 233 - 10,177 = 912 + the OOD pairs lost to the answer threshold in kept items,
every dropped item must have all 48 OOD pairs. Among rules that do, we compare the two landscape numbers the
paper reports (mean MDS of Religious Values and of Social Capital & Trust).

Candidates: (1) the principled rule we adopt (drop the zero-based three-point items); (2) unions of whole
questionnaire batteries (runs of consecutive items with the same answer options) of 19 droppable items, enumerated
in questionnaire order up to ``limit`` (their total number is counted exactly). Fitting two numbers with hundreds of thousands of candidates is easy, so a close fit by an arbitrary
union of batteries identifies nothing; the search reports how many fit.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..survey.questions import Question
from .landscape import question_landscape

TARGET_CATEGORIES = ("Religious Values", "Social Capital & Trust")


def batteries(questions: list[Question]) -> list[list[str]]:
    """Runs of consecutively numbered items with identical answer options, in questionnaire order."""
    order = sorted(questions, key=lambda q: int(q.qid[1:]))
    out: list[list[Question]] = []
    for q in order:
        if out and out[-1][-1].options == q.options and int(q.qid[1:]) == int(out[-1][-1].qid[1:]) + 1:
            out[-1].append(q)
        else:
            out.append([q])
    return [[q.qid for q in b] for b in out]


def search(pairs_all: pd.DataFrame, questions: list[Question], targets: dict[str, float], n_drop: int = 19,
           n_ood_subgroups: int = 48, limit: int = 200_000, tolerance: float = 0.005) -> tuple[pd.DataFrame, dict]:
    """Candidate rules with their landscape numbers; returns (table of the principled rule and the best battery
    unions, summary). ``pairs_all`` is the pairs table built with every asked ordinal item (rule "all")."""
    pairs_all = pairs_all.copy()
    for col in ("modal_answers", "weighted_counts", "modal_answers_unweighted", "counts"):
        if col in pairs_all and isinstance(pairs_all[col].iloc[0], str):
            pairs_all[col] = pairs_all[col].map(json.loads)
    land = question_landscape(pairs_all)
    per_q = land.groupby(["qid", "category"]).mds.agg(["sum", "count"]).reset_index()
    ood = pairs_all[pairs_all.split == "ood"].groupby("qid").size()
    droppable = set(ood[ood == n_ood_subgroups].index)

    def landscape_of(drop: list[str]) -> dict[str, float]:
        kept = per_q[~per_q.qid.isin(drop)].groupby("category")[["sum", "count"]].sum()
        return {c: float(kept.loc[c, "sum"] / kept.loc[c, "count"]) if c in kept.index else np.nan for c in targets}

    def row(name: str, drop: list[str]) -> dict:
        vals = landscape_of(drop)
        return {"rule": name, "dropped": " ".join(drop), "counts_match": set(drop) <= droppable and len(drop) == n_drop,
                **{f"mds {c}": v for c, v in vals.items()},
                "distance": float(sum(abs(vals[c] - t) for c, t in targets.items()))}

    zero = [q.qid for q in questions if q.scale_min == 0]
    rows = [row("adopted: drop the zero-based three-point items", zero)]
    usable = [b for b in batteries(questions) if set(b) <= droppable and len(b) <= n_drop]
    # per battery: its MDS sum and (question, stratum) count in each target category, so that a union's
    # landscape numbers are running sums (the enumeration touches no table)
    cats = list(targets)
    by_q = per_q.set_index("qid")
    total = np.array([[per_q.loc[per_q.category == c, "sum"].sum(), per_q.loc[per_q.category == c, "count"].sum()]
                      for c in cats])
    part = np.zeros((len(usable), len(cats), 2))
    for i, b in enumerate(usable):
        for j, c in enumerate(cats):
            sel = by_q.loc[[q for q in b if by_q.loc[q, "category"] == c]] if any(
                by_q.loc[q, "category"] == c for q in b) else None
            if sel is not None:
                part[i, j] = sel["sum"].sum(), sel["count"].sum()
    goal = np.array([targets[c] for c in cats])
    found: list[tuple[float, tuple[int, ...]]] = []
    fits = 0
    enumerated = 0

    def rec(i: int, chosen: tuple[int, ...], n: int, dropped: np.ndarray) -> None:
        nonlocal fits, enumerated
        if enumerated >= limit:
            return
        if n == n_drop:
            enumerated += 1
            kept = total - dropped
            vals = kept[:, 0] / kept[:, 1]
            fits += bool(np.all(np.abs(vals - goal) <= tolerance))
            found.append((float(np.abs(vals - goal).sum()), chosen))
            if len(found) > 200:
                found.sort()
                del found[50:]
            return
        if i >= len(usable):
            return
        if n + len(usable[i]) <= n_drop:
            rec(i + 1, chosen + (i,), n + len(usable[i]), dropped + part[i])
        rec(i + 1, chosen, n, dropped)

    rec(0, (), 0, np.zeros((len(cats), 2)))
    found.sort()
    rows += [row("union of whole batteries", [q for i in chosen for q in usable[i]]) for _, chosen in found[:5]]
    ways = [1] + [0] * n_drop  # how many unions of whole batteries have exactly n_drop items (subset-sum count)
    for b in usable:
        for k in range(n_drop, len(b) - 1, -1):
            ways[k] += ways[k - len(b)]
    summary = {"droppable_items": len(droppable), "batteries_usable": len(usable), "unions_total": ways[n_drop],
               "unions_enumerated": enumerated,
               "enumeration_capped": enumerated >= limit, "unions_fitting_both_within": tolerance,
               "unions_fitting_both": int(fits)}
    return pd.DataFrame(rows), summary
