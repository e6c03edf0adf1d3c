"""A study is a config: the country, its demographic dimensions, the compositional split and the dataset rules.

The package ships two (``subgroup_values/_data/studies/``): ``sgp`` (Singapore, the paper's study: it reproduces
the committed dataset byte for byte) and ``tur`` (Turkey, from the official single-country file). Any WVS-7
country is one YAML file away: pass its path wherever a study name is accepted. A config holds

- ``study``, ``country`` (ISO alpha-3, as ``B_COUNTRY_ALPHA``), ``country_code`` (ISO numeric, ``B_COUNTRY``),
  ``country_name`` (fills the questionnaire's "[your country]" and names the country in the prompts);
- ``dimensions``: per dimension its survey ``column`` and its kept ``codes``, each with a ``label`` and how a
  persona says it: the ``noun`` ("a woman"), a word ``before`` the noun ("a Malay person") or a phrase ``after``
  it ("a person aged 25 to 34"). Codes not listed are in no subgroup. Country-specific codes (ethnic groups,
  regions) are numbered per country (Singapore's Chinese is 702004): they live here, never in the code;
- ``train_strata`` and ``ood_strata`` (lists of dimension lists): train on the first, test on the second;
- ``min_group_size``, ``min_answers``, ``question_rule``, ``expected_respondents`` (the documented sample: a file
  with more or fewer respondents is refused; ``null``: no check) and
  optionally ``budget_minutes`` (what ``make all`` for the study should take on the default profile) and
  ``absent_items`` (question-bank items the country did not ask, so its single-country file lacks them; any other
  item missing from the file is an error). The dataset
  goes to ``data/processed/<study>/`` (Singapore's: ``data/processed/``).

The study travels with the data: :func:`subgroup_values.survey.dataset.load_pairs` reads it from the table's manifest and
keeps it on the table (``pairs.attrs["study"]``, kept by pandas through filters and copies, set again by the
package's functions that merge two tables, whose attrs pandas drops when they differ, and written into prediction
files); every function that needs it takes ``study=`` or reads it from the frame it is given
(:func:`study_of`). No module reads it from the environment: the runner and the command line take it from the
profile or ``--study`` and pass it on.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

STUDIES_DIR = Path(__file__).resolve().parents[1] / "_data" / "studies"
DEFAULT_STUDY = "sgp"
POSITIONS = ("noun", "before", "after")
REQUIRED_KEYS = ("study", "country", "country_name", "dimensions", "train_strata", "ood_strata")
OPTIONAL_KEYS = ("country_code", "min_group_size", "min_answers", "question_rule", "expected_respondents",
                 "budget_minutes", "absent_items")

Stratum = tuple[str, ...]


class StudyConfigError(ValueError):
    """A study config that cannot be right; the message names the file, the key and what is expected."""


@dataclass(frozen=True)
class Dimension:
    name: str
    column: str
    categories: dict[int, str]  # survey code -> readable label, in display order
    phrases: dict[str, tuple[str, str]] = field(default_factory=dict)  # label -> (position, words)

    def label(self, code: int) -> str:
        return self.categories[int(code)]


@dataclass(frozen=True)
class Study:
    name: str
    country: str
    country_code: int | None
    country_name: str
    dimensions: dict[str, Dimension]
    train_strata: tuple[Stratum, ...]
    ood_strata: tuple[Stratum, ...]
    min_group_size: int = 30
    min_answers: int = 30
    question_rule: str = "paper"
    expected_respondents: int | None = None
    data_dir: str = "data/processed"
    budget_minutes: float | None = None
    source: str = ""
    absent_items: tuple[str, ...] = ()  # question-bank items the country did not ask (its file lacks them)

    @property
    def strata(self) -> list[Stratum]:
        return list(self.train_strata) + list(self.ood_strata)

    @property
    def columns(self) -> list[str]:
        """The survey columns the study's dimensions read."""
        return [d.column for d in self.dimensions.values()]

    def split_of(self, stratum: Stratum) -> str:
        return "train" if stratum in self.train_strata else ("ood" if stratum in self.ood_strata else "other")

    def without(self, dropped: list[str]) -> Study:
        """The study without some dimensions (and every stratum that uses them)."""
        from dataclasses import replace

        keep = {k: v for k, v in self.dimensions.items() if k not in dropped}
        return replace(self, dimensions=keep,
                       train_strata=tuple(s for s in self.train_strata if not set(s) & set(dropped)),
                       ood_strata=tuple(s for s in self.ood_strata if not set(s) & set(dropped)))

    def record(self) -> dict:
        """What the manifest keeps of the study (no respondent data)."""
        # a study that is not shipped is found again by its config's path (a shipped one by its name: the committed
        # manifests stay as they were)
        return {"study": self.name, **({"config": reference(self)} if reference(self) != self.name else {}),
                "country": self.country, "country_code": self.country_code, "country_name": self.country_name,
                "dimensions": {k: {"column": d.column, "codes": {str(c): lab for c, lab in d.categories.items()}}
                               for k, d in self.dimensions.items()}}


def _fail(where: str, msg: str):
    raise StudyConfigError(f"{where}: {msg}")


def _dimension(name: str, spec, where: str) -> Dimension:
    if not isinstance(spec, dict) or "column" not in spec or not isinstance(spec.get("codes"), dict):
        _fail(where, f"dimension {name!r} needs a 'column' and a mapping 'codes' (code: {{label: ..., noun|before|"
                     f"after: ...}}), got {spec!r}.")
    cats, phrases = {}, {}
    for code, c in spec["codes"].items():
        try:
            code = int(code)
        except (TypeError, ValueError):
            _fail(where, f"dimension {name!r}: code {code!r} is not an integer survey code.")
        if not isinstance(c, dict) or not isinstance(c.get("label"), str) or not c["label"]:
            _fail(where, f"dimension {name!r}, code {code}: needs a 'label', got {c!r}.")
        pos = [p for p in POSITIONS if p in c]
        if len(pos) != 1 or not isinstance(c[pos[0]], str):
            _fail(where, f"dimension {name!r}, code {code} ({c['label']}): say how a persona names it with exactly one "
                         f"of {list(POSITIONS)} (e.g. noun: woman, before: Malay, after: aged 25 to 34), got {c!r}.")
        if c["label"] in phrases:
            _fail(where, f"dimension {name!r}: label {c['label']!r} is used twice.")
        cats[code] = c["label"]
        phrases[c["label"]] = (pos[0], c[pos[0]])
    if len(cats) < 2:
        _fail(where, f"dimension {name!r} keeps {len(cats)} code(s): a dimension needs at least two groups.")
    return Dimension(name, str(spec["column"]), cats, phrases)


def _strata(value, dims: dict, key: str, where: str) -> tuple[Stratum, ...]:
    if not isinstance(value, list) or not value:
        _fail(where, f"{key} must be a non-empty list of dimension lists, e.g. [[sex], [sex, age]].")
    out = []
    for s in value:
        s = tuple(s) if isinstance(s, list) else None
        if not s or any(d not in dims for d in s) or len(set(s)) != len(s):
            _fail(where, f"{key}: {value!r} holds a stratum that is not a list of distinct dimensions of "
                         f"{sorted(dims)}.")
        if frozenset(s) in {frozenset(o) for o in out}:
            _fail(where, f"{key}: stratum {list(s)} is listed twice (a stratum is a set of dimensions: the order "
                         "of its dimensions does not make another one).")
        out.append(s)
    return tuple(out)


def parse_study(cfg: dict, where: str = "study config") -> Study:
    if not isinstance(cfg, dict):
        _fail(where, "a study config is a mapping (see subgroup_values/_data/studies/sgp.yaml).")
    missing = [k for k in REQUIRED_KEYS if k not in cfg]
    if missing:
        _fail(where, f"lacks {missing} (see subgroup_values/_data/studies/sgp.yaml for a complete one).")
    unknown = sorted(set(cfg) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        _fail(where, f"unknown key(s) {unknown}; a study config has {list(REQUIRED_KEYS + OPTIONAL_KEYS)}.")
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(cfg["study"])):
        _fail(where, f"study (its name: folders are named after it) must be letters, digits, _ or -, got "
                     f"{cfg['study']!r}.")
    country = str(cfg["country"]).strip().upper()
    if len(country) != 3 or not country.isalpha():
        _fail(where, f"country must be an ISO 3166 alpha-3 code such as SGP or TUR, got {cfg['country']!r}.")
    if not isinstance(cfg["dimensions"], dict) or len(cfg["dimensions"]) < 2:
        _fail(where, "dimensions must map at least two dimension names to their column and codes.")
    dims = {str(k): _dimension(str(k), v, where) for k, v in cfg["dimensions"].items()}
    columns: dict[str, str] = {}
    for name, dim in dims.items():
        if dim.column in columns:
            _fail(where, f"dimensions {columns[dim.column]!r} and {name!r} both read column {dim.column!r}: one "
                         "column per dimension (two names for one variable would make impossible subgroups).")
        columns[dim.column] = name
    from .questions import load_questions

    bank = {q.qid: q.short_label for q in load_questions(rule="all")}
    leaks = [(name, col, bank[col]) for col, name in columns.items() if col in bank]
    if leaks:
        name, col, label = leaks[0]
        _fail(where, f"dimension {name!r} reads column {col}, which is question {col} ({label!r}) of the question "
                     "bank: its subgroups would be defined by the very answer they are asked to predict (target "
                     "leakage). Define the dimension by a demographic column (e.g. Q289 for religious denomination), "
                     "not a value item.")
    train = _strata(cfg["train_strata"], dims, "train_strata", where)
    ood = _strata(cfg["ood_strata"], dims, "ood_strata", where)
    both = {tuple(s) for s in train if frozenset(s) in {frozenset(o) for o in ood}}  # strata are sets
    if both:
        _fail(where, f"strata {sorted(both)} are both training and OOD: the OOD strata must be unseen.")
    ints = {}
    for key, default in (("min_group_size", 30), ("min_answers", 30)):
        v = cfg.get(key, default)
        if not isinstance(v, int) or v < 1:
            _fail(where, f"{key} must be a positive integer, got {v!r}.")
        ints[key] = v
    expected = cfg.get("expected_respondents")
    if expected is not None and (not isinstance(expected, int) or expected < 1):
        _fail(where, f"expected_respondents must be a positive integer or null, got {expected!r}.")
    absent = cfg.get("absent_items") or []
    if not isinstance(absent, list) or not all(isinstance(q, str) and q in bank for q in absent):
        _fail(where, f"absent_items must list question-bank items (e.g. [Q245]) the country's file lacks, got "
                     f"{absent!r}.")
    code = cfg.get("country_code")
    if code is not None and (isinstance(code, bool) or not isinstance(code, int) or not 0 < code < 1000):
        _fail(where, f"country_code must be the ISO 3166 numeric code (B_COUNTRY, e.g. 702 for Singapore), got "
                     f"{code!r}.")
    known = known_countries().get(code)
    if known and (known[0] != country or known[1].casefold() != str(cfg["country_name"]).strip().casefold()):
        _fail(where, f"country_code {code} is {known[1]} ({known[0]}), but the config says country {country}, "
                     f"country_name {cfg['country_name']!r}: its prompts would name one country and its data another. "
                     f"Give the code, alpha-3 code and name of one country (for {known[1]}: country: {known[0]}, "
                     f"country_code: {code}, country_name: {known[1]}).")
    return Study(name=str(cfg["study"]), country=country, country_code=int(code) if code is not None else None,
                 country_name=str(cfg["country_name"]), dimensions=dims, train_strata=train, ood_strata=ood,
                 question_rule=str(cfg.get("question_rule", "paper")), expected_respondents=expected,
                 data_dir=default_data_dir(str(cfg["study"])),
                 budget_minutes=cfg.get("budget_minutes"), source=where, absent_items=tuple(absent), **ints)


def default_data_dir(name: str) -> str:
    """Singapore's dataset stays where the paper's reproduction has always kept it; any other study's goes to its
    own folder (the Makefile uses the same rule)."""
    return "data/processed" if name == DEFAULT_STUDY else f"data/processed/{name}"


@functools.cache
def known_countries() -> dict[int, tuple[str, str]]:
    """The countries the shipped studies name: ISO numeric code -> (alpha-3 code, name)."""
    out = {}
    for path in sorted(STUDIES_DIR.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text()) or {}
        if isinstance(cfg.get("country_code"), int):
            out[cfg["country_code"]] = (str(cfg.get("country", "")).upper(), str(cfg.get("country_name", "")))
    return out


def known_studies() -> list[str]:
    return sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))


@functools.cache
def load_study(name_or_path: str | Path = DEFAULT_STUDY) -> Study:
    """A shipped study by name (``sgp``, ``tur``) or a study config file by path."""
    text = str(name_or_path)
    path = Path(text) if (text.endswith((".yaml", ".yml")) or os.sep in text) else STUDIES_DIR / f"{text}.yaml"
    if not path.is_absolute() and not path.is_file():  # a path recorded relative to the repository root
        from ..core.paths import REPO_ROOT

        path = REPO_ROOT / path if (REPO_ROOT / path).is_file() else path
    if not path.is_file():
        raise StudyConfigError(f"Unknown study {text!r}: no {path}. Shipped studies: {known_studies()}; or pass the "
                               f"path of a study config (a copy of {STUDIES_DIR / 'sgp.yaml'} edited for your country).")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StudyConfigError(f"{path} is not valid YAML: {exc}") from None
    study = parse_study(cfg, str(path))
    shipped = STUDIES_DIR / f"{study.name}.yaml"
    if shipped.is_file() and shipped.resolve() != path.resolve() and parse_study(
            yaml.safe_load(shipped.read_text()), str(shipped)) != _as_shipped(study, shipped):
        raise StudyConfigError(
            f"{path} names itself {study.name!r} (its study: key), the name of the shipped study {shipped}, but "
            f"it differs from it: its dataset would go to that study's folder ({study.data_dir}/) and overwrite "
            f"it. Give the copy its own name (study: {study.name}_{path.stem if path.stem != study.name else 'mine'}"
            ", say); its data then goes to data/processed/<that name>/.")
    return study


def _as_shipped(study: Study, shipped: Path) -> Study:
    from dataclasses import replace

    return replace(study, source=str(shipped))


def resolve(study: Study | str | Path | None = None) -> Study:
    """A :class:`Study` from a study, a shipped study's name or a config path; None: the paper's study
    (:data:`DEFAULT_STUDY`, Singapore), whatever the shell says."""
    if isinstance(study, Study):
        return study
    return load_study(DEFAULT_STUDY if study is None or str(study).strip() == "" else study)


def reference(study: Study) -> str:
    """What :func:`resolve` needs to find ``study`` again: its name when it is shipped, else its config's path."""
    shipped = STUDIES_DIR / f"{study.name}.yaml"
    if shipped.is_file() and Path(study.source).resolve() == shipped.resolve():
        return study.name
    from ..core.paths import REPO_ROOT

    path = Path(study.source).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def study_of(frame, study: Study | str | Path | None = None) -> Study:
    """The study of a pairs or predictions table: ``study`` when given, else the one the table carries
    (``frame.attrs["study"]``, set by :func:`subgroup_values.survey.dataset.load_pairs` and kept in prediction files). A
    table that carries none (built by hand) is refused: which country's personas and dimensions it holds cannot
    be guessed."""
    if study is not None and str(study).strip() != "":
        return resolve(study)
    named = getattr(frame, "attrs", {}).get("study")
    if named:
        return resolve(named)
    raise ValueError("This table does not say which study it belongs to (no attrs['study']: it was not read with "
                     "dataset.load_pairs or runs.load_run). Pass study= (a Study, 'sgp', 'tur' or a study config's "
                     "path), or set table.attrs['study'].")


def processed_dir(study: Study | str | Path | None = None) -> Path:
    """The folder of a study's dataset (None: Singapore's): ``data/processed`` for Singapore."""
    from ..core.paths import data_folder

    return data_folder(resolve(study).data_dir)
