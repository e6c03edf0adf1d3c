"""Run a script that fills a response cache, SIGKILL it once the cache holds enough, and say what was kept."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def cached(cache_path: Path) -> int:
    try:
        return sqlite3.connect(cache_path).execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def kill_after_cached(script: str, cache_path: Path, at_least: int, timeout: float = 120) -> int:
    """Start ``script`` in a fresh Python, kill it (SIGKILL) when ``cache_path`` holds ``at_least`` answers;
    assert it was killed (not finished) and return the number of answers the cache kept."""
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if cache_path.exists() and cached(cache_path) >= at_least:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    return cached(cache_path)
