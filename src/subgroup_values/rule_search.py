"""Which question rule did the paper use? A search over rules that reproduce its counts and landscape.

The paper keeps 214 of the 233 asked ordinal items and does not say which 19 it dropped. A rule must reproduce
the counts (214 questions; 10,700 training and 10,177 OOD pairs, with pairs of fewer than 30 answers dropped):
since 50 x 214 = 10,700 and 48 x 233 - 10,177 = 912 + the OOD pairs lost to the answer threshold in kept items,
every dropped item must have all 48 OOD pairs. Among rules that do, we compare the two landscape numbers the
paper reports (mean MDS of Religious Values and of Social Capital & Trust).

Candidates: (1) the principled rule we adopt (drop the zero-based three-point items); (2) every union of whole
questionnaire batteries (runs of consecutive items with the same answer options) of 19 items, enumerated up to
``limit``. Fitting two numbers with hundreds of thousands of candidates is easy, so a close fit by an arbitrary
union of batteries identifies nothing; the search reports how many fit.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .landscape import question_landscape
from .questions import Question

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
    unions: list[list[str]] = []

    def rec(i: int, chosen: list[str], n: int) -> None:
        if len(unions) >= limit:
            return
        if n == n_drop:
            unions.append(chosen)
            return
        if i >= len(usable):
            return
        if n + len(usable[i]) <= n_drop:
            rec(i + 1, chosen + usable[i], n + len(usable[i]))
        rec(i + 1, chosen, n)

    rec(0, [], 0)
    scored = sorted((row("union of whole batteries", u) for u in unions), key=lambda r: r["distance"])
    fits = sum(all(abs(r[f"mds {c}"] - t) <= tolerance for c, t in targets.items()) for r in scored)
    rows += scored[:5]
    summary = {"droppable_items": len(droppable), "batteries_usable": len(usable), "unions_enumerated": len(unions),
               "enumeration_capped": len(unions) >= limit, "unions_fitting_both_within": tolerance,
               "unions_fitting_both": int(fits)}
    return pd.DataFrame(rows), summary
