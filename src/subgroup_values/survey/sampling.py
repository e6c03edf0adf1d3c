"""A quick look's sample: whole questions, every subgroup of each.

`subgroup-values evaluate --limit N` and `audit --limit N` draw seeded *questions* and score all their subgroups,
about N pairs in all, rather than N pairs spread over as many questions. Two reasons:

* the unit the intervals resample is the question (the bootstrap over questions of :mod:`..stats.bootstrap`), so a
  sample of whole questions is a sample of that unit, and every subgroup contrast is paired within each question;
* the scorer reuses a question's shared prompt prefix across its personas (:mod:`..backends.hf`), which a sample of
  pairs from many questions hardly uses (benchmarks/bench_quick_look.py measures both).

The price is that few questions carry the estimate (200 pairs are 4 of Singapore's 214 questions): its interval is
wide and says so; a quick look is a look, not the evaluation.
(Not in :mod:`.dataset`: a change there would make every committed model run out of date for make's reuse.)
"""

from __future__ import annotations

import hashlib

import pandas as pd


def whole_questions(pairs: pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """Seeded questions whose pairs (all of them) number at most ``n`` in all, at least one question: questions in
    the order of SHA-256(``seed:qid``) (independent of the table's order), taken until the next would not fit (not
    skipped for a smaller one: the sample does not favour questions with fewer subgroups)."""
    if n < 1:
        raise ValueError(f"A quick look needs n >= 1 pairs, got {n}.")
    sizes = pairs.groupby("qid").size()
    if sizes.empty:
        raise ValueError("There are no pairs to sample questions from.")
    order = sorted(sizes.index, key=lambda q: hashlib.sha256(f"{seed}:{q}".encode()).hexdigest())
    chosen, total = [], 0
    for q in order:
        if chosen and total + int(sizes[q]) > n:
            break
        chosen.append(q)
        total += int(sizes[q])
    return sorted(chosen)
