"""Run records: configuration, git revision, package versions, data hashes, timings."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from .paths import REPO_ROOT

PACKAGES = ("subgroup-values", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "pandas", "numpy",
            "seaborn", "matplotlib", "papermill")


#: What makes a result: code, notebooks, configs and inputs. The outputs a run writes (results/, figures/,
#: data/processed/, README's results block) are not among them, so a run's own steps do not make it "dirty".
SOURCE_PATHS = ("src", "notebooks", "configs", "scripts", "Makefile", "requirements.txt", "pyproject.toml",
                "data/questions.csv")


def git_revision(root: Path = REPO_ROOT) -> str:
    """The checkout's commit, with '-dirty' when tracked sources (:data:`SOURCE_PATHS`) differ from it;
    'unknown' outside git; for an installed copy (no checkout of its own: a git folder around its venv is another
    project's), 'unknown' and the package's version."""
    from .paths import INSTALLED

    if INSTALLED and Path(root).resolve() == REPO_ROOT.resolve():
        from .. import __version__

        return f"unknown (installed subgroup-values {__version__})"
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_of(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def run_record(config: dict, data: dict | None = None, **extra) -> dict:
    """Everything needed to say how a result was made."""
    return {
        "config": config,
        "data": data or {},
        "git_revision": git_revision(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def write_json(obj: dict, path: str | Path) -> Path:
    """Write a record atomically (a full disk keeps the previous file), with every secret redacted and every path
    inside the checkout written relative to it (:func:`portable`)."""
    return atomic_write(path, json.dumps(portable(scrub(json.loads(json.dumps(obj, default=str)))), indent=2,
                                         sort_keys=False, default=str) + "\n")


def portable(obj, root: Path | None = None):
    """A JSON-like object in which every path inside the checkout (``root``, default the repository root) is
    written relative to it: a committed record names ``data/processed/pairs.csv``, not the folder of the machine
    that made it. Paths outside the checkout (a survey file the user points at) are kept as given."""
    base = str((root or REPO_ROOT).resolve())
    if isinstance(obj, str):
        if base not in obj:
            return obj
        return "." if obj == base else obj.replace(base + os.sep, "").replace(base, ".")
    if isinstance(obj, dict):
        return {portable(k, root) if isinstance(k, str) else k: portable(v, root) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [portable(v, root) for v in obj]
    return obj


# ---- secrets never reach an artefact ---------------------------------------------------------------------------

#: What an API key looks like (OpenAI, Anthropic, Hugging Face, generic bearer tokens).
KEY_PATTERN = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{16,}|hf_[A-Za-z0-9]{20,}|(?:api|key|token)[-_]?[A-Za-z0-9]{24,})\b")
#: Environment variables whose values are secrets (their values are redacted wherever they appear).
SECRET_NAMES = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.I)
#: Query parameters of a URL that carry credentials.
SECRET_QUERY = re.compile(r"^(?:.*key|.*token|.*secret|sig|signature|password|pass|auth.*|code)$", re.I)
#: The only query (and ;path parameter) keys whose values are known to be harmless: every other value may be a
#: credential (?pwd=, ?session=, ;token=) and is refused in a base_url and redacted from artefacts.
SAFE_QUERY = frozenset({"api-version", "api_version", "version", "format", "alt", "lang", "locale", "region"})
REDACTED = "***"
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.I)


def _token_like(segment: str) -> bool:
    """A URL path segment that looks like a credential: a key pattern, or a long random-looking run of letters and
    digits (16+ characters with 3+ of each, or 32+ with a digit), where model names, page names and API paths are
    words with few digits."""
    if KEY_PATTERN.search(segment):
        return True
    for piece in re.split(r"[-_.~]", segment):
        if not piece.isalnum() or (len(piece) in (40, 64) and all(c in "0123456789abcdef" for c in piece)):
            continue  # a git commit or a SHA-256 (published in records on purpose), not a credential
        digits, letters = sum(c.isdigit() for c in piece), sum(c.isalpha() for c in piece)
        if (len(piece) >= 16 and digits >= 3 and letters >= 3) or (len(piece) >= 32 and digits >= 1):
            return True
    return False


def _secret_param(key: str, value: str) -> bool:
    """Whether a query or ;path parameter's value may be a credential: any non-empty value whose key is not on
    :data:`SAFE_QUERY` (a ``${NAME}`` placeholder is none), or one that looks like a key whatever its key."""
    if not value or re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value):
        return False
    return key.strip().lower() not in SAFE_QUERY or bool(SECRET_QUERY.match(key)) or _token_like(value)


def _path_params(segment: str) -> list[tuple[str, str]]:
    """The ;key=value parameters of a path segment (``v1;token=abc`` -> [("token", "abc")]; a bare ``;abc`` is a
    value without a key)."""
    return [tuple(p.split("=", 1)) if "=" in p else ("", p) for p in segment.split(";")[1:]]


def url_secrets(url: str) -> list[str]:
    """Where a URL carries a credential (user:password@, a token in its path, a key in its query), as words that
    do not repeat the secret; empty when it carries none. ``${NAME}`` placeholders are not secrets."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.username or parts.password or "@" in parts.netloc:
        found.append("a user name or password before the host (user:password@)")
    path = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", "", parts.path)
    if any(_token_like(s.split(";")[0]) for s in path.split("/") if s):
        found.append("a token in its path")
    if any(_secret_param(k, v) for s in path.split("/") for k, v in _path_params(s)):
        found.append("a ;parameter in its path (a value that may be a credential)")
    if any(_secret_param(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)):
        found.append("a key in its query string (only the values of "
                     f"{', '.join(sorted(SAFE_QUERY))} are known to be no credential)")
    return found


def redact_url(url: str) -> str:
    """The URL without its credentials: user:password@ removed, token-like path segments and secret query values
    replaced by ``***``."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rsplit("@", 1)[-1]
        path = "/".join(REDACTED if s and "${" not in s and _token_like(s.split(";")[0]) else
                        ";".join([s.split(";")[0], *(f"{k}={REDACTED}" if k and _secret_param(k, v) else
                                                     REDACTED if _secret_param(k, v) else (f"{k}={v}" if k else v)
                                                     for k, v in _path_params(s))])
                        for s in parts.path.split("/"))
        query = urlencode([(k, REDACTED if _secret_param(k, v) else v)
                           for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
        return urlunsplit((parts.scheme, host, path, query, parts.fragment))
    except ValueError:
        return REDACTED


def environment_secrets(env: dict | None = None) -> list[str]:
    """Values of the environment's secret variables (names with KEY, TOKEN, SECRET, PASSWORD ...), longest first."""
    env = os.environ if env is None else env
    return sorted({v for k, v in env.items() if SECRET_NAMES.search(k) and len(v) >= 6}, key=len, reverse=True)


def redact(text: str, extra: list[str] | tuple = ()) -> str:
    """``text`` with every secret it may hold replaced by ``***``: the values of the environment's secret
    variables, ``extra`` values, credentials in URLs and anything that looks like an API key."""
    for secret in [*extra, *environment_secrets()]:
        if secret and len(secret) >= 6:
            text = text.replace(secret, REDACTED)
    text = _URL.sub(lambda m: redact_url(m.group(0)) if url_secrets(m.group(0)) else m.group(0), text)
    return KEY_PATTERN.sub(REDACTED, text)


def scrub(obj, extra: list[str] | tuple = ()):
    """A JSON-like object with :func:`redact` applied to every string in it (keys included)."""
    if isinstance(obj, str):
        return redact(obj, extra)
    if isinstance(obj, dict):
        return {scrub(k, extra) if isinstance(k, str) else k: scrub(v, extra) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v, extra) for v in obj]
    return obj


# ---- atomic writes, checked up front ---------------------------------------------------------------------------

def atomic_write(path: str | Path, data: str | bytes | None = None, writer=None) -> Path:
    """Write ``path`` through a temporary file beside it, moved into place only when complete: a full disk or a
    kill leaves the previous file as it was. ``writer(tmp_path)`` writes the file itself (e.g. a parquet)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if writer is not None:
            writer(tmp)
        elif isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data or "", encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


#: Significant digits a written CSV keeps of a float: more than any result is read to, fewer than the last bits in
#: which two orders of the same sum differ (about 16 digits), so that a rerun writes the same text.
CSV_DIGITS = 12
#: Two tables whose numbers agree this closely are the same result (see :func:`write_csv`).
CSV_RTOL, CSV_ATOL = 1e-9, 1e-12


def csv_float(x: float) -> str:
    """A float as a CSV holds it: rounded to :data:`CSV_DIGITS` significant digits, then the shortest text that
    reads back as that number (``0.6000000000000001`` and ``0.6`` both give ``0.6``; ``1.0`` stays ``1.0``)."""
    return repr(float(f"{x:.{CSV_DIGITS}g}"))


def csv_text(frame, index: bool = False) -> str:
    """The text :func:`write_csv` writes: floats through :func:`csv_float`, "\n" line ends, UTF-8."""
    return frame.to_csv(index=index, lineterminator="\n", float_format=csv_float)


def same_table(a: str, b: str, rtol: float = CSV_RTOL, atol: float = CSV_ATOL) -> bool:
    """Whether two CSV texts hold the same table: the same header and shape, numeric columns equal within
    ``rtol``/``atol`` (missing values where the other has them), every other cell the same text."""
    import io

    import numpy as np
    import pandas as pd

    if a == b:
        return True
    try:
        x, y = (pd.read_csv(io.StringIO(t), dtype=None, keep_default_na=True) for t in (a, b))
    except (ValueError, pd.errors.ParserError):
        return False
    if list(x.columns) != list(y.columns) or x.shape != y.shape:
        return False
    for col in x.columns:
        u, v = x[col], y[col]
        if pd.api.types.is_numeric_dtype(u) and pd.api.types.is_numeric_dtype(v) and not (
                pd.api.types.is_bool_dtype(u) or pd.api.types.is_bool_dtype(v)):
            if not np.allclose(u.to_numpy(float), v.to_numpy(float), rtol=rtol, atol=atol, equal_nan=True):
                return False
        elif not u.isna().equals(v.isna()) or not (u[u.notna()].astype(str) == v[v.notna()].astype(str)).all():
            return False
    return True


def write_csv(frame, path: str | Path, index: bool = False) -> bool:
    """Write a table that may be committed (results/, figures/, data/processed/) deterministically: the text of
    :func:`csv_text` (floats at :data:`CSV_DIGITS` significant digits), through a temporary file (atomic). A file
    that already holds the same table (:func:`same_table`: every number within 1e-9 relative) is left untouched,
    byte for byte, so that a rerun that changes nothing leaves `git status` clean and `make` sees no change. True
    when the file was written."""
    path = Path(path)
    text = csv_text(frame, index=index)
    if path.is_file():
        try:
            old = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            old = None
        if old is not None and same_table(old, text):
            return False
    atomic_write(path, text)
    return True


def check_writable(folder: str | Path, need_mb: float = 50, what: str = "results") -> Path:
    """Refuse, before long work starts, a folder that cannot be written or lacks ``need_mb`` of free space."""
    import shutil
    import tempfile

    folder = Path(folder)
    probe_dir = folder
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise OSError(f"The {what} folder {folder} cannot be written ({exc.strerror or exc}): make it writable "
                      f"or choose another folder, before the run starts.") from None
    free = shutil.disk_usage(folder).free / 2**20
    if free < need_mb:
        raise OSError(f"The {what} folder {folder} has {free:.0f} MB free, less than the {need_mb:.0f} MB this "
                      f"run needs: free some space (or choose another folder) before the run starts.")
    return folder


def code_digest(root: Path | None = None) -> str:
    """A short hash of the package's source (every .py file under src/subgroup_values, by content): what a
    checkpoint to resume from must share with the run that resumes it."""
    root = Path(root) if root else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.py")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def frame_digest(frame) -> str:
    """A short hash of a table's content (its CSV text), independent of where it was read from."""
    return hashlib.sha256(frame.to_csv(index=False, lineterminator="\n").encode()).hexdigest()[:16]


def digest_files(paths: list[Path]) -> str:
    """A short SHA-256 of files' names and bytes, in name order: the identity of a model or adapter folder's weights
    (the inference backend records it; make's reuse check, which runs before the environment exists, compares it)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]
