"""Findings as records: every sentence that states a number or a verdict is rendered here from the results.

A :class:`Claim` holds the statistic, its estimate and interval (or test and p-value), the method behind them,
the decision rule, the verdict the rule gives, and the sentence that states it. Analysis rooms (headroom,
fairness, ...) build claims from their tables; notebooks, README's generated blocks and the rendered paper print
the claims' sentences, never a hand-typed number or verdict.

Claims are written per profile to ``results/<profile>/claims/<topic>.json`` (:func:`write_claims`) and read back
by the report (:func:`read_claims`). A generated block in a Markdown file sits between
``<!-- claims:NAME:begin -->`` and ``<!-- claims:NAME:end -->`` (:func:`replace_block`).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The protocols a comparison can name (see ``design.md``): ``paper`` (the same respondents feed the predictor's
#: inputs and the targets) and ``disjoint`` (respondent-disjoint folds; inputs from the other folds).
PROTOCOLS = ("paper", "disjoint")


@dataclass(frozen=True)
class Claim:
    """One finding. ``sentence`` is what a reader sees; the other fields say where it comes from.

    ``estimate``, ``lo``, ``hi`` and ``p_value`` are ``None`` where they do not apply (a count, a verdict with no
    interval). ``verdict`` is a short machine-readable word or phrase (``"widen"``, ``"no clear difference"``,
    ``"uninformative"``, ...); ``rule`` says in words how the verdict follows from the numbers.
    """

    id: str
    topic: str
    statistic: str
    sentence: str
    verdict: str = ""
    estimate: float | None = None
    lo: float | None = None
    hi: float | None = None
    method: str = ""
    rule: str = ""
    p_value: float | None = None
    protocol: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z0-9_.:-]+", self.id):
            raise ValueError(f"A claim id is lower-case words joined by . _ : -; got {self.id!r}.")
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ValueError(f"Claim {self.id}: protocol {self.protocol!r} is not one of {PROTOCOLS}.")
        for name in ("estimate", "lo", "hi", "p_value"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"Claim {self.id}: {name} must be a finite number or None, got {v!r}.")
        if self.p_value is not None and not 0 <= self.p_value <= 1:
            raise ValueError(f"Claim {self.id}: p_value {self.p_value} is outside [0, 1].")
        if not self.sentence.strip():
            raise ValueError(f"Claim {self.id}: the sentence is empty.")


def fmt(x: float | None, digits: int = 3) -> str:
    """A number as every claim prints it (fixed decimals; '' for None)."""
    return "" if x is None else f"{x:.{digits}f}"


def fmt_ci(estimate: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.123 [0.100, 0.150]``."""
    return f"{fmt(estimate, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def _atomic_write(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_claims(claims: list[Claim], path: str | Path) -> Path:
    """Write claims as JSON (ids unique, order kept), atomically."""
    path = Path(path)
    ids = [c.id for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"Claim ids must be unique; repeated: {dup}.")
    _atomic_write(json.dumps([asdict(c) for c in claims], indent=2) + "\n", path)
    return path


def read_claims(path: str | Path) -> list[Claim]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No claims at {path}: run the step that writes them (make all) first.")
    return [Claim(**d) for d in json.loads(path.read_text())]


def by_id(claims: list[Claim]) -> dict[str, Claim]:
    return {c.id: c for c in claims}


def render(claims: list[Claim], bullet: bool = False) -> str:
    """The claims' sentences as Markdown: one paragraph, or one bullet each."""
    if bullet:
        return "\n".join(f"- {c.sentence}" for c in claims) + "\n"
    return " ".join(c.sentence for c in claims) + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- claims:{name}:begin -->", f"<!-- claims:{name}:end -->"


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the generated block ``name`` replaced by ``content`` (the markers must be there, once)."""
    begin, end = _markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"Expected the markers {begin!r} and {end!r} once each.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content.rstrip()}\n{end}{tail}"
