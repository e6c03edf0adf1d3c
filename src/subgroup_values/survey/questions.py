"""The question bank: WVS-7 value items put to models, with options in ordinal order.

``data/questions.csv`` (written by ``scripts/make_question_bank.py`` and committed) holds one row per item:
``qid, category, short_label, question, options, recode, scale, low_label, high_label``. ``options`` is a JSON
list of ``[value, label]`` in ordinal order; ``recode`` (JSON, empty when the codes are already monotonic) maps
a survey code to its value on that scale, ``null`` for answers that are not on it (treated as missing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: The question bank: ``data/questions.csv`` of the repository, shipped inside the package (``_data/`` links
#: to it) so that an installed package has it too.
DEFAULT_BANK = Path(__file__).resolve().parents[1] / "_data" / "questions.csv"

#: Question-selection rules. ``paper`` reproduces the paper's 214 questions: every asked ordinal value item
#: except the 19 items answered on a zero-based three-point scale (organisational membership Q94-Q104 and
#: the effects of immigration Q122-Q129). ``all`` keeps every asked ordinal item (233).
QUESTION_RULES = ("paper", "all")


@dataclass(frozen=True)
class Question:
    qid: str
    category: str
    short_label: str
    text: str
    options: tuple[tuple[int, str], ...]
    recode: dict[int, int | None]

    @property
    def values(self) -> np.ndarray:
        return np.array([v for v, _ in self.options])

    @property
    def scale_min(self) -> int:
        return self.options[0][0]

    @property
    def scale_max(self) -> int:
        return self.options[-1][0]

    @property
    def scale_range(self) -> int:
        return self.scale_max - self.scale_min

    @property
    def n_options(self) -> int:
        return len(self.options)

    def to_scale(self, codes: pd.Series) -> pd.Series:
        """Survey codes -> values on the ordinal scale (NA for missing and off-scale answers)."""
        if not self.recode:
            return codes.where(codes.isin(self.values))
        mapped = codes.map(lambda c: self.recode.get(int(c)) if pd.notna(c) else None)
        return pd.to_numeric(mapped, errors="coerce")


def load_questions(path: str | Path | None = None, rule: str = "paper") -> list[Question]:
    """Read the question bank and apply a selection rule (see :data:`QUESTION_RULES`)."""
    if rule not in QUESTION_RULES:
        raise ValueError(f"Unknown question rule {rule!r}; expected one of {QUESTION_RULES}.")
    path = Path(path or DEFAULT_BANK)
    if not path.is_file():
        raise FileNotFoundError(f"Question bank not found at {path}; expected data/questions.csv of this project.")
    bank = pd.read_csv(path, dtype=str, keep_default_na=False)
    need = {"qid", "category", "short_label", "question", "options", "recode"}
    if not need <= set(bank.columns):
        raise ValueError(f"{path} lacks columns {sorted(need - set(bank.columns))}.")
    out = []
    for row in bank.itertuples(index=False):
        options = tuple((int(v), str(lab)) for v, lab in json.loads(row.options))
        recode = {int(k): v for k, v in json.loads(row.recode).items()} if row.recode else {}
        q = Question(row.qid, row.category, row.short_label, row.question, options, recode)
        if rule == "paper" and q.scale_min == 0:
            continue
        out.append(q)
    return out


def questions_frame(questions: list[Question]) -> pd.DataFrame:
    """One row per question: id, category, label, number of options and scale ends."""
    return pd.DataFrame([{"qid": q.qid, "category": q.category, "short_label": q.short_label,
                          "n_options": q.n_options, "scale_min": q.scale_min, "scale_max": q.scale_max}
                         for q in questions])


def bank_summary(questions: list[Question]) -> pd.DataFrame:
    """Per category: how many items, and which answer scales they use."""
    df = questions_frame(questions).assign(scale=lambda d: d.scale_min.astype(str) + "-" + d.scale_max.astype(str))
    return df.groupby("category").agg(items=("qid", "size"), scales=("scale", lambda s: ", ".join(sorted(set(s)))))


#: Items on which refusals are most likely (sexuality, abortion, divorce, violence, religion).
SENSITIVE_ITEMS = {
    "Q22": "neighbours: homosexuals", "Q36": "homosexual couples as parents", "Q182": "homosexuality",
    "Q183": "prostitution", "Q184": "abortion", "Q185": "divorce", "Q186": "sex before marriage",
    "Q187": "suicide", "Q188": "euthanasia", "Q189": "a man beating his wife", "Q190": "parents beating children",
    "Q191": "violence against other people", "Q193": "casual sex", "Q6": "importance of religion",
    "Q164": "importance of God", "Q169": "science vs religion", "Q170": "the only acceptable religion",
}
