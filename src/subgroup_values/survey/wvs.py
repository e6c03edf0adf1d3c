"""Read an official World Values Survey Wave 7 file and select one country.

Accepted files (the column names are the same in all of them):
- the pooled cross-national CSV (comma separated, UTF-8, possibly with a byte-order mark), any country in it,
- the single-country CSV (semicolon or comma separated, possibly a trailing ``;`` on every row; no ``A_WAVE``
  column: the wave is named by the file's ``doi``),
- SPSS ``.sav`` and Stata ``.dta`` (read with pyreadstat),
- a ``.zip`` as downloaded, holding exactly one of the above.

Negative WVS codes are missing values: they become ``NA`` in :attr:`Survey.data`, and the reason is kept in
:attr:`Survey.missing` (same shape; the negative code where an answer is missing, 0 elsewhere).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.provenance import sha256_of

MISSING_CODES: dict[int, str] = {
    -1: "don't know",
    -2: "no answer / refused",
    -3: "not applicable",
    -4: "not asked in this country",
    -5: "missing / other",
}

#: Columns every study needs besides the value items and its dimensions' columns (the study config names them).
REQUIRED_COLUMNS = ("W_WEIGHT",)
#: The DOI of the WVS Wave 7 data (pooled and single-country files carry it in their ``doi`` column): the wave of
#: a single-country file, which has no ``A_WAVE`` column.
WAVE7_DOI = "10.14281/18241"
COUNTRY_COLUMNS = ("B_COUNTRY_ALPHA", "B_COUNTRY")
DOWNLOAD_HINT = (
    "Download the official file from https://www.worldvaluessurvey.org (Data & Documentation > Wave 7 > "
    "'WVS Cross-National Wave 7 csv v6 0', free registration) and pass its path as WVS_FILE=... "
    "(make) or the WVS_FILE environment variable. See data/raw/README.md."
)


class WVSFileError(ValueError):
    """The survey file is missing, unreadable or not a WVS Wave 7 file; the message says what to do."""


@dataclass
class Survey:
    """Respondents of one country: answers with NA for missing codes, the missing reasons, and provenance."""

    data: pd.DataFrame
    missing: pd.DataFrame
    path: Path
    sha256: str
    file_format: str
    country: str
    version: str = ""
    encoding: str = ""
    absent_items: list[str] = field(default_factory=list)  # question-bank items the (single-country) file lacks

    @property
    def n_respondents(self) -> int:
        return len(self.data)

    @property
    def weighting(self) -> str:
        """``self-weighting`` when every W_WEIGHT is 1 (e.g. Turkey's file), else ``W_WEIGHT`` (the design weights
        enter every distribution and mode)."""
        return "self-weighting" if bool((self.data["W_WEIGHT"] == 1).all()) else "W_WEIGHT"

    def record(self) -> dict:
        """Provenance of the source file (no respondent data)."""
        return {"path": self.path.name, "sha256": self.sha256, "format": self.file_format,
                "country": self.country, "version": self.version, "n_respondents": self.n_respondents,
                "weights": self.weighting,
                **({"encoding": self.encoding} if self.encoding and self.encoding != "utf-8" else {}),
                **({"items_not_in_file": self.absent_items} if self.absent_items else {})}


ENCODINGS = ("utf-8 (with or without BOM)", "utf-16 (with BOM)", "latin-1")


def _decode(raw: bytes, name: str) -> tuple[str, str]:
    """The file's text and its encoding: UTF-8 (with or without BOM), UTF-16 (with BOM), else Latin-1."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise WVSFileError(f"{name} starts with a UTF-16 byte-order mark but is not valid UTF-16 ({exc}). "
                               f"Save it as UTF-8 or download it again. {DOWNLOAD_HINT}") from None
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = raw.decode("latin-1")
    if "\x00" in text:
        raise WVSFileError(f"{name}: cannot tell its text encoding (NUL bytes, not UTF-8, no UTF-16 byte-order "
                           f"mark). Expected one of {list(ENCODINGS)}: save it as UTF-8. {DOWNLOAD_HINT}")
    return text, "latin-1"


def _check_fields(text: str, sep: str, n_head: int, name: str) -> bool:
    """Every data row has the header's number of fields, so that each value is read under its column's name.
    True when every data row carries one empty field more (a trailing delimiter on data rows only); a row with
    other counts is an error naming the line."""
    import csv

    rows = text.splitlines()[1:]
    odd = [(i, r) for i, r in enumerate(rows, start=2) if r and r.count(sep) != n_head - 1]  # quick, then exact
    counts = [(i, r, len(next(csv.reader([r], delimiter=sep)))) for i, r in odd]
    counts = [(i, r, n) for i, r, n in counts if n != n_head]
    if not counts:
        return False
    n_rows = sum(1 for r in rows if r)
    if len(counts) == n_rows and all(n == n_head + 1 and r.rstrip().endswith(sep) for _, r, n in counts):
        return True
    i, _, n = counts[0]
    raise WVSFileError(f"{name}: line {i} has {n} fields, the header {n_head} ({len(counts)} such row(s)): its values "
                       "would not be under their header's names. The file is damaged or was edited: download it "
                       f"again. {DOWNLOAD_HINT}")


def _read_csv(raw: bytes, name: str) -> pd.DataFrame:
    text, encoding = _decode(raw, name)
    head = text[:4096].splitlines()[0] if text else ""
    if not head:
        raise WVSFileError(f"{name} is empty. Expected a WVS Wave 7 CSV file. {DOWNLOAD_HINT}")
    sep = ";" if head.count(";") > head.count(",") else ","
    if head.count(sep) < 5:
        raise WVSFileError(
            f"{name} does not look like a WVS CSV: its first line has no comma- or semicolon-separated "
            f"header (found {head[:80]!r}). {DOWNLOAD_HINT}")
    import csv

    lines = text.rstrip("\r\n").rsplit("\n", 1)
    if len(lines) == 1:
        raise WVSFileError(f"{name} has a header but no data rows (no respondents): the file is cut or a template. "
                           f"Download it again. {DOWNLOAD_HINT}")
    n_head = len(next(csv.reader([text.split("\n", 1)[0].rstrip("\r")], delimiter=sep)))  # the whole header line
    if len(lines) == 2:
        n_last = len(next(csv.reader([lines[1]], delimiter=sep)))
        if n_last < n_head:
            raise WVSFileError(
                f"{name} looks truncated: its last row has {n_last} fields, the header {n_head}. "
                f"The download was probably interrupted: download it again. {DOWNLOAD_HINT}")
    trailing = _check_fields(text, sep, n_head, name)
    try:
        # a delimiter that ends every data row but not the header: without index_col=False pandas would take the
        # first column for the index and shift every column one place off its header's name
        df = pd.read_csv(io.StringIO(text), sep=sep, low_memory=False, index_col=False if trailing else None)
    except (pd.errors.ParserError, ValueError) as exc:
        raise WVSFileError(
            f"{name} could not be parsed as a {'semicolon' if sep == ';' else 'comma'}-separated WVS file "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0]}). Is it complete? Download it again. "
            f"{DOWNLOAD_HINT}") from None
    # the single-country CSV ends every row with ';': an empty, unnamed last column
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed:") and df[c].isna().all()]
    df = df.drop(columns=unnamed)
    df.attrs["encoding"] = encoding
    return df


def _read_stat(raw: bytes, name: str, suffix: str) -> pd.DataFrame:
    import tempfile

    import pyreadstat

    reader = pyreadstat.read_sav if suffix == ".sav" else pyreadstat.read_dta
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(raw)
        tmp.flush()
        try:
            df, _ = reader(tmp.name, apply_value_formats=False)
        except Exception as exc:  # pyreadstat raises its own ReadstatError and others
            raise WVSFileError(
                f"{name} could not be read as {'SPSS' if suffix == '.sav' else 'Stata'} "
                f"({exc.__class__.__name__}: {exc}). The file may be truncated or not a {suffix} file. "
                f"{DOWNLOAD_HINT}") from None
    return df


def _read_any(path: Path) -> tuple[pd.DataFrame, str]:
    suffix = path.suffix.lower()
    raw = path.read_bytes()
    if suffix == ".zip":
        try:
            zf = zipfile.ZipFile(io.BytesIO(raw))
        except zipfile.BadZipFile:
            raise WVSFileError(f"{path} is not a valid zip archive (truncated download?). {DOWNLOAD_HINT}") from None
        members = [m for m in zf.namelist() if Path(m).suffix.lower() in (".csv", ".sav", ".dta")]
        if len(members) != 1:
            raise WVSFileError(f"{path} should hold exactly one .csv/.sav/.dta file; found {members or 'none'}.")
        inner = Path(members[0])
        df, fmt = _read_bytes(zf.read(members[0]), f"{path}:{inner.name}", inner.suffix.lower())
        return df, f"zip/{fmt}"
    return _read_bytes(raw, str(path), suffix)


def _read_bytes(raw: bytes, name: str, suffix: str) -> tuple[pd.DataFrame, str]:
    if suffix == ".csv":
        return _read_csv(raw, name), "csv"
    if suffix in (".sav", ".dta"):
        return _read_stat(raw, name, suffix), suffix[1:]
    if suffix == ".rds":
        raise WVSFileError(f"{name}: R .rds files are not read here. Use the CSV, .sav or .dta version of the "
                           f"same WVS file. {DOWNLOAD_HINT}")
    raise WVSFileError(f"{name}: unknown file type {suffix!r}. Expected .csv, .sav, .dta or .zip. {DOWNLOAD_HINT}")


def read_wvs(path: str | Path | None, country: str | int | None = None, items: list[str] | None = None,
             valid_codes: dict[str, set[int]] | None = None, expected_respondents: int | None = None,
             columns: tuple[str, ...] | None = None, may_lack: tuple[str, ...] = (), study=None) -> Survey:
    """Read a WVS-7 file, check it, select ``country`` (alpha-3 code or ISO number) and code missing answers.

    ``country`` and ``columns`` default to ``study``'s (a Study, a name or a config path; None: Singapore's, the
    paper's): no country's codes live in this code. ``columns`` are the demographic columns the study's dimensions
    read (required, coded like the items). The
    wave is checked from ``A_WAVE`` (the pooled file) or, in a single-country file (no ``A_WAVE``), from the
    Wave 7 DOI in its ``doi`` column.

    ``items`` are the value-item columns the study needs (e.g. the question bank's ids); they are checked too.
    ``valid_codes`` maps an item to the survey codes it may hold besides the negative missing codes (its scale's
    codes and documented off-scale codes): any other value is an error naming the column, row and value.
    ``expected_respondents`` is the country's documented sample size: a file with more (duplicated) or fewer
    (cut) respondents is an error. Respondent ids (``D_INTERVIEW``) must be unique. ``may_lack``: the items a
    single-country file may lack (the study config's ``absent_items``: the country did not ask them); they are
    left out and reported; any other item missing is an error.
    """
    from .study import resolve

    the_study = resolve(study)
    country = the_study.country if country is None or str(country).strip() == "" else country
    columns = tuple(the_study.columns) if columns is None else tuple(columns)
    if path is None or str(path) == "":
        raise WVSFileError(f"No survey file given. {DOWNLOAD_HINT}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise WVSFileError(f"Survey file not found: {path}{_where_looked(path)}. {DOWNLOAD_HINT}")
    df, fmt = _read_any(path)

    required = list(dict.fromkeys([*REQUIRED_COLUMNS, *columns]))
    missing_cols = [c for c in required if c not in df.columns]
    if not any(c in df.columns for c in COUNTRY_COLUMNS):
        missing_cols.append("B_COUNTRY_ALPHA or B_COUNTRY")
    if "A_WAVE" not in df.columns and "doi" not in df.columns:
        missing_cols.append("A_WAVE (pooled file) or doi (single-country file)")
    if missing_cols:
        raise WVSFileError(
            f"{path.name} lacks required columns {missing_cols}: is this a WVS Wave 7 file (and are these the "
            f"columns the study's dimensions name)? Expected the official column names (A_WAVE or doi, "
            f"B_COUNTRY_ALPHA, W_WEIGHT, Q1..Q290, X003R). {DOWNLOAD_HINT}")
    if "A_WAVE" in df.columns:
        waves = sorted(int(w) for w in pd.to_numeric(df["A_WAVE"], errors="coerce").dropna().unique())
        if waves != [7]:
            raise WVSFileError(f"{path.name} holds wave(s) {waves}, expected Wave 7 only (A_WAVE = 7). "
                               f"Use the WVS Wave 7 file. {DOWNLOAD_HINT}")
    else:  # a single-country file: the wave is the file's, named by its DOI
        dois = sorted(df["doi"].dropna().astype(str).unique())
        if not dois or not all(WAVE7_DOI in d for d in dois):
            raise WVSFileError(f"{path.name} has no A_WAVE column and its doi {dois[:3]} is not Wave 7's "
                               f"({WAVE7_DOI}...): expected a WVS Wave 7 file. {DOWNLOAD_HINT}")

    country_key = str(country).strip().upper()
    if "B_COUNTRY_ALPHA" in df.columns and not country_key.isdigit():
        sel = df["B_COUNTRY_ALPHA"].astype(str).str.strip().str.upper() == country_key
        present = sorted(df["B_COUNTRY_ALPHA"].dropna().astype(str).unique())
    else:
        if not country_key.isdigit():
            raise WVSFileError(f"{path.name} has no B_COUNTRY_ALPHA column: give the country as its ISO "
                               f"number (e.g. 702 for Singapore), not {country!r}.")
        sel = pd.to_numeric(df["B_COUNTRY"], errors="coerce") == int(country_key)
        present = sorted(int(c) for c in pd.to_numeric(df["B_COUNTRY"], errors="coerce").dropna().unique())
    if not sel.any():
        shown = ", ".join(map(str, present[:20])) + (" ..." if len(present) > 20 else "")
        raise WVSFileError(f"Country {country!r} is not in {path.name}; it holds: {shown}. "
                           f"Pick one of these (COUNTRY=...) or use a file that covers {country!r}.")
    df = df.loc[sel].reset_index(drop=True)
    if "D_INTERVIEW" in df.columns:
        dup = df["D_INTERVIEW"].duplicated(keep=False)
        if dup.any():
            first = df.loc[dup, "D_INTERVIEW"].iloc[0]
            raise WVSFileError(f"{path.name}: respondent ids (D_INTERVIEW) repeat: {int(dup.sum())} rows share an id "
                               f"(e.g. {first}, data rows {list(np.flatnonzero(df['D_INTERVIEW'] == first)[:3] + 1)}). "
                               f"Each respondent appears once in an official file: was it concatenated twice? "
                               f"{DOWNLOAD_HINT}")
    elif len(df.columns) >= 50 and df.duplicated().any():  # whole questionnaires identical: copied rows
        raise WVSFileError(f"{path.name}: {int(df.duplicated().sum())} rows are exact copies of other rows and the "
                           f"file has no D_INTERVIEW id to tell respondents apart. {DOWNLOAD_HINT}")
    if expected_respondents is not None and len(df) != int(expected_respondents):
        raise WVSFileError(f"{path.name} holds {len(df):,} respondents for {country_key}; its documented sample is "
                           f"{int(expected_respondents):,}. A file cut short or with rows added gives wrong "
                           f"subgroups: use the complete official file (or fix expected_respondents in the study's "
                           f"config if the release changed). {DOWNLOAD_HINT}")

    items = list(items or [])
    absent = [c for c in items if c not in df.columns]
    single_country = "A_WAVE" not in df.columns
    if absent and single_country and set(absent) <= set(may_lack):
        # a single-country release leaves out items the country did not ask (Turkey's v5.0 has no Q245): they are
        # reported (Survey.absent_items, the manifest) and left out; many absent items still mean a wrong file
        print(f"{path.name}: {len(absent)} item(s) of the question bank are not in this single-country file and are "
              f"left out: {absent}")
        items = [c for c in items if c in df.columns]
    elif absent:
        unsaid = [c for c in absent if c not in may_lack]
        raise WVSFileError(f"{path.name} lacks {len(unsaid)} value item(s) of the question bank: "
                           f"{unsaid[:10]}{f' and {len(unsaid) - 10} more' if len(unsaid) > 10 else ''}. "
                           "Expected the full WVS-7 questionnaire (Q1-Q259)"
                           + (": a file with columns deleted gives another study. If the country did not ask "
                              "them, list them under absent_items in the study config (its data then leave them "
                              "out)" if single_country else "") + f". {DOWNLOAD_HINT}")
    coded = [c for c in df.columns if c in items or c in columns]
    for c in coded + ["W_WEIGHT"]:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    blank = df[coded + ["W_WEIGHT"]].isna()
    if blank.to_numpy().any():
        rows = np.flatnonzero(blank.any(axis=1).to_numpy())
        raise WVSFileError(
            f"{path.name} has blank or non-numeric cells in coded columns (first at data row {rows[0] + 1}, "
            f"{len(rows)} row(s) in all). Official WVS files code every missing answer as a negative number, "
            f"so this file is truncated or damaged: download it again. {DOWNLOAD_HINT}")
    implausible = ~np.isfinite(df["W_WEIGHT"]) | (df["W_WEIGHT"] > 100) | ((df["W_WEIGHT"] > 0) & (df["W_WEIGHT"] < 1e-3))
    if implausible.any():
        bad = df["W_WEIGHT"][implausible]
        raise WVSFileError(f"{path.name}: W_WEIGHT must be a finite design weight (WVS weights lie around 1, between "
                           f"0.001 and 100); found {len(bad)} value(s) such as {float(bad.iloc[0])}. The file is damaged or "
                           f"not an official release. {DOWNLOAD_HINT}")
    if (df["W_WEIGHT"] <= 0).any():
        raise WVSFileError(f"{path.name}: W_WEIGHT must be positive; found {int((df['W_WEIGHT'] <= 0).sum())} "
                           f"non-positive weights.")

    for col, allowed in (valid_codes or {}).items():
        if col not in df.columns:
            continue
        v = df[col]
        bad = ~(v.isin(list(allowed)) | v.isin(list(MISSING_CODES)))
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise WVSFileError(
                f"{path.name}: column {col} holds {float(v.iloc[row]):g} at data row {row + 1} ({int(bad.sum())} invalid "
                f"cell(s) in that column); expected one of its codes {sorted(allowed)} or a missing code "
                f"{sorted(MISSING_CODES)}. The file is damaged or not an official WVS-7 release. {DOWNLOAD_HINT}")

    values = df[coded]
    missing = values.where(values < 0, 0).astype("int16")
    df[coded] = values.where(values >= 0).astype(float)
    version = str(df["version"].iloc[0]) if "version" in df.columns else ""
    return Survey(data=df, missing=missing, path=path, sha256=sha256_of(path), file_format=fmt,
                  country=country_key, version=version, encoding=df.attrs.get("encoding", ""),
                  absent_items=absent if single_country else [])


def _where_looked(path: Path) -> str:
    """For a relative path that is not there: where it was looked for (make and the notebooks run in the
    checkout, not in the folder the command was typed in)."""
    if path.is_absolute():
        return ""
    return (f"; a relative path is read from the working directory {Path.cwd()}, so it was looked for at "
            f"{Path.cwd() / path} (make and the notebooks run in the checkout): give an absolute path")


def find_survey_file(given: str | Path | None = None) -> str:
    """The survey file to read: ``given``; else the WVS_FILE environment variable; else the one WVS Wave 7 file
    in ``data/raw/`` (where README tells users to put it). A clear error when there is none, or several."""
    import os

    from ..core.paths import INSTALLED, REPO_ROOT

    if given:
        return str(given)
    if os.environ.get("WVS_FILE"):
        return os.environ["WVS_FILE"]
    raw = (Path.cwd() if INSTALLED else REPO_ROOT) / "data" / "raw"  # an installed copy: the working directory's
    found = sorted(p for p in raw.glob("WVS*") if p.suffix.lower() in (".csv", ".zip", ".sav", ".dta"))
    if len(found) == 1:
        return str(found[0])
    if len(found) > 1:
        raise WVSFileError(f"Several survey files in {raw}: {[p.name for p in found]}; pass the one to use as "
                           "WVS_FILE=... (make) or the notebook's wvs_file parameter.")
    raise WVSFileError(f"No survey file given and none in {raw}. {DOWNLOAD_HINT}")


# ---- the file's identity, for make ----------------------------------------------------------------------------

def identify(path: str | Path | None, out: str | Path) -> bool:
    """Write ``path``'s identity (absolute path, size, SHA-256) to ``out`` when it differs from what is there;
    True when it changed. The hash is recomputed only when the path, size or modification time changed."""
    import json

    if path is None or str(path).strip() == "" or not Path(path).expanduser().is_file():
        where = _where_looked(Path(path).expanduser()) if path and str(path).strip() else ""
        raise WVSFileError(f"No WVS survey file found (WVS_FILE={str(path or '')!r}{where}). {DOWNLOAD_HINT}")
    p = Path(path).expanduser().resolve()
    st = p.stat()
    out = Path(out)
    try:
        old = json.loads(out.read_text()) if out.is_file() else {}
    except ValueError:
        old = {}
    if old.get("path") == str(p) and old.get("size") == st.st_size and old.get("mtime_ns") == st.st_mtime_ns:
        return False
    new = {"path": str(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_of(p)}
    if all(old.get(k) == new[k] for k in ("path", "size", "sha256")):
        return False  # touched but the same content: leave the stamp (and what depends on it) alone
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(new) + "\n")
    return True


def main(argv: list[str] | None = None) -> None:
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "identify":
        raise SystemExit("usage: python -m subgroup_values.survey.wvs identify WVS_FILE OUT")
    try:
        changed = identify(args[1], args[2])
    except WVSFileError as exc:
        raise SystemExit(str(exc)) from None
    if changed:
        print(f"survey file {args[1]}: new or changed, the dataset will be rebuilt")


if __name__ == "__main__":
    main()
