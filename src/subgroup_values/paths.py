"""Where things are: the repository root and its folders (one place, imported by every room that needs it)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "data"
PROCESSED = DATA / "processed"
