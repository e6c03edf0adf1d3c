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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .provenance import CSV_DIGITS, CSV_RTOL, atomic_write

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
        # Numbers at CSV_DIGITS significant digits, as every committed table holds them: a rerun on another machine
        # (another summation order, the last bits of a float) writes the same bytes.
        for name in ("estimate", "lo", "hi", "p_value"):
            object.__setattr__(self, name, _rounded(getattr(self, name)))
        object.__setattr__(self, "extra", _rounded(self.extra))


def _rounded(x):
    """Every float inside ``x`` (dicts and lists followed) at :data:`CSV_DIGITS` significant digits."""
    if isinstance(x, float):
        return float(f"{x:.{CSV_DIGITS}g}") if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_rounded(v) for v in x]
    return x


def _close(a, b, rtol: float = CSV_RTOL) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool) and not isinstance(b, bool):
        return a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rtol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, rtol) for x, y in zip(a, b))
    return a == b


def same_claims(a: list[Claim], b: list[Claim], rtol: float = CSV_RTOL) -> bool:
    """Whether two lists of claims say the same: every field equal, numbers within ``rtol`` relative (the
    tolerance of committed tables: a machine that sums in another order gives the same claims)."""
    return _close([asdict(c) for c in a], [asdict(c) for c in b], rtol)


def fmt(x: float | None, digits: int = 3) -> str:
    """A number as every claim prints it (fixed decimals; '' for None)."""
    return "" if x is None else f"{x:.{digits}f}"


def fmt_ci(estimate: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.123 [0.100, 0.150]``; an interval of zero width (every resample gave the same value: a degenerate
    statistic) is no interval: ``0.500 (uninformative: all resamples equal)``."""
    if lo is None or hi is None:
        return f"{fmt(estimate, digits)} (no interval)"
    if lo == hi:
        return f"{fmt(estimate, digits)} (uninformative: all resamples equal)"
    return f"{fmt(estimate, digits)} [{fmt(lo, digits)}, {fmt(hi, digits)}]"


def write_claims(claims: list[Claim], path: str | Path) -> Path:
    """Write claims as JSON (ids unique, order kept), atomically."""
    path = Path(path)
    ids = [c.id for c in claims]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"Claim ids must be unique; repeated: {dup}.")
    if path.is_file():  # the same claims (numbers within the tables' tolerance): the file is left as it is
        try:
            if same_claims(read_claims(path), claims):
                return path
        except ValueError:
            pass
    atomic_write(path, json.dumps([asdict(c) for c in claims], indent=2) + "\n")
    return path


#: The make step that writes each topic's claims (``results/<profile>/claims/<topic>.json``): a missing file's
#: error names it.
TOPIC_STEPS = {"data": "make report", "landscape": "make landscape", "evaluation": "make report",
               "finetune": "make report", "generate": "make report", "fairness": "make fairness",
               "open_ended": "make open-ended", "headroom": "make headroom", "timings": "make report",
               "models": "make all PROFILE=gemma, then make report"}


def step_for(topic: str) -> str:
    return TOPIC_STEPS.get(topic, "make all")


def claims_path(res_dir: str | Path, topic: str) -> Path:
    """Where a profile's claims of one topic live: ``<res_dir>/claims/<topic>.json``."""
    return Path(res_dir) / "claims" / f"{topic}.json"


def read_claims(path: str | Path) -> list[Claim]:
    path = Path(path)
    if not path.is_file():
        topic = path.stem
        raise FileNotFoundError(f"No claims at {path}: the {topic!r} claims are written by `{step_for(topic)}` "
                                "(or `make all`); run it first.")
    try:
        data = json.loads(path.read_text())
        return [Claim(**d) for d in data]
    except (json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{path} is not a list of claims ({exc}); rerun `{step_for(path.stem)}` to rewrite it."
                         ) from exc


def read_profile_claims(res_dir: str | Path, topics: list[str] | None = None) -> dict[str, Claim]:
    """Every claim of a profile by id: all ``claims/*.json`` of ``res_dir``, or the named ``topics`` (each must
    exist). Ids must be unique across topics."""
    res_dir = Path(res_dir)
    if topics is None:
        files = sorted((res_dir / "claims").glob("*.json"))
    else:
        files = [claims_path(res_dir, t) for t in topics]
    out: dict[str, Claim] = {}
    for f in files:
        for c in read_claims(f):
            if c.id in out:
                raise ValueError(f"Claim id {c.id!r} is in two files of {res_dir / 'claims'}: ids must be unique.")
            out[c.id] = c
    return out


def topic_of(claim_id: str) -> str:
    """The topic a claim id names by convention (``<topic>.<rest>``)."""
    return claim_id.split(".", 1)[0]


def select(claims: dict[str, Claim], ids: list[str], res_dir: str | Path = "results/<profile>") -> list[Claim]:
    """The claims ``ids`` in that order; a missing one is an error that names its topic file and make step.

    An id with ``*`` is a pattern (``fnmatch``: ``*`` also spans dots) that stands for every claim it matches, in
    the order the files hold them, so that a list asks for "every predictor's gap" without naming, or choosing,
    the predictors; a pattern that matches nothing is missing."""
    import fnmatch

    expanded = []
    for i in ids:
        if "*" in i:
            matched = [k for k in claims if fnmatch.fnmatchcase(k, i)]
            expanded += matched or [i]
        else:
            expanded.append(i)
    ids = expanded
    missing = [i for i in ids if i not in claims]
    if missing:
        where = "; ".join(sorted({f"{claims_path(res_dir, topic_of(i))} (`{step_for(topic_of(i))}`)"
                                  for i in missing}))
        raise KeyError(f"No claims {missing} among the {len(claims)} read: expected them in {where}. Run that step, "
                       "or drop the ids from the list that asks for them.")
    return [claims[i] for i in ids]


def by_id(claims: list[Claim]) -> dict[str, Claim]:
    return {c.id: c for c in claims}


def render(claims: list[Claim], bullet: bool = False) -> str:
    """The claims' sentences as Markdown: one paragraph, or one bullet each."""
    if bullet:
        return "\n".join(f"- {c.sentence}" for c in claims) + "\n"
    return " ".join(c.sentence for c in claims) + "\n"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- claims:{name}:begin -->", f"<!-- claims:{name}:end -->"


def block_content(text: str, name: str) -> str:
    """What stands between a generated block's markers (stripped)."""
    begin, end = _markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"Expected the markers {begin!r} and {end!r} once each.")
    return text.split(begin, 1)[1].split(end, 1)[0].strip()


def update_block(path: str | Path, name: str, content: str) -> bool:
    """Rewrite the generated block ``name`` of a file (atomically); True when the file changed."""
    path = Path(path)
    text = path.read_text()
    try:
        new = replace_block(text, name, content)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc} Add them where the block belongs.") from exc
    if new != text:
        atomic_write(path, new)
        return True
    return False


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the generated block ``name`` replaced by ``content`` (the markers must be there, once)."""
    begin, end = _markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"Expected the markers {begin!r} and {end!r} once each.")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{content.rstrip()}\n{end}{tail}"


# ---- prose that states findings by hand ----------------------------------------------------------------------

#: Words that state a verdict; outside a generated block they are typed findings.
VERDICT_WORDS = (r"widen\w*", r"narrow\w*", r"improv\w*", r"beats?", r"outperform\w*", r"at the (?:noise )?floor",
                 r"no headroom", r"near chance", r"not established", r"survives?", r"adds nothing")
_GENERATED = re.compile(r"<!--\s*[\w:-]*begin[^>]*-->.*?<!--\s*[\w:-]*end[^>]*-->", re.S)
#: Numbers that are not findings: versions, identifiers in citations, the level of an interval.
_NOT_FINDINGS = re.compile(r"Python \d+(?:\.\d+)+|[Vv]ersion \d+(?:\.\d+)*|doi:\S+|arXiv:\S+|"
                           r"\b\d+% (?:CI|BCa|interval|intervals|confidence|bootstrap)\b")
#: A stated quantity: a decimal, a percentage, a count with thousands separators, "N of M", a rank, or a count
#: of the study's units (questions, pairs, subgroups, ...). Digits glued to letters (Q94, 135M, bf16) are names.
_NUMBER = re.compile(
    r"(?<![\w.\-/])(?:"
    r"\d*\.\d+(?![\w.]*\w)"                              # 0.371, .5
    r"|\d+(?:\.\d+)?%"                                   # 49%, 6.66%
    r"|\d{1,3}(?:,\d{3})+(?![\w.]*\w)"                   # 10,700
    r"|\d+ of (?:the |its )?\d+"                         # 133 of 200, 2 of its 12
    r"|[+-]\d+(?:\.\d+)? points"                         # +24.6 points
    r"|\d+ (?:questions?|items?|pairs?|subgroups?|respondents?|people|points?|replies|answers|unions|categories|"
    r"strata|batteries)\b"                               # 95 OOD pairs is caught as "95 ..." below
    r"|\d+ (?:OOD|training|consensus|divergent|sensitive) (?:pairs?|subgroups?|items?)\b"
    r")|\brank \d+", re.I)


def strip_generated(text: str) -> str:
    """Markdown without its generated blocks, code fences, code spans and link targets: the hand-written prose."""
    text = _GENERATED.sub("", text)
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return text


def typed_findings(text: str) -> list[str]:
    """What hand-written Markdown states as a finding: stated quantities and verdict words outside generated blocks
    (see :data:`VERDICT_WORDS` and the number patterns above), each with a little context."""
    prose = _NOT_FINDINGS.sub("", strip_generated(text))
    out = []
    for m in _NUMBER.finditer(prose):
        out.append(f"number {m.group(0)!r} in ...{prose[max(0, m.start() - 40):m.end() + 20]!r}...")
    for m in re.finditer(r"\b(?:" + "|".join(VERDICT_WORDS) + r")\b", prose, re.I):
        out.append(f"verdict {m.group(0)!r} in ...{prose[max(0, m.start() - 40):m.end() + 20]!r}...")
    return out
