"""An on-disk response cache: a rerun costs nothing and an interrupted run resumes where it stopped.

Keys hash everything that changes an answer: the backend's identity (kind, model, weights hash, adapter and its
hash, dtype), the scoring mode and decoding settings (for generation also the batch size, since padding can change
greedy output), and the exact messages and options. Only real answers are stored: a failed request or an empty
reply is recorded in the run's predictions (status ``failed`` / ``empty``) and asked again by the next run.
Storage is SQLite (one file, atomic commits): work is committed in small batches, so a kill loses at most the
batch in flight.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def cache_key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class CacheError(OSError):
    """A response cache that cannot be used; the message names the file and what to do."""

    def __init__(self, path: Path, exc: Exception):
        writable = os.access(path.parent, os.W_OK) if path.parent.exists() else False
        advice = ("it only holds answers that are recomputed when missing: move it aside (or delete it) and rerun, "
                  "or give another cache file" if writable else
                  f"its folder {path.parent} cannot be written: make it writable or give another cache file")
        super().__init__(f"The response cache {path} cannot be used ({exc.__class__.__name__}: {exc}); {advice} "
                         "(--cache / cache_file; '' for none).")


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, timeout=60)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.commit()
                self._db.execute("SELECT key, value FROM responses LIMIT 1").fetchall()
                if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise sqlite3.DatabaseError("the integrity check failed")
                return
            except sqlite3.OperationalError as exc:
                # another process or thread holds the lock (switching to WAL does not wait for it): wait, it is
                # not damage; anything else is
                if ("locked" in str(exc) or "busy" in str(exc)) and time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise CacheError(self.path, exc) from None
            except sqlite3.DatabaseError as exc:  # not a database, truncated, corrupt, or a folder it cannot write
                raise CacheError(self.path, exc) from None
            except OSError as exc:
                raise CacheError(self.path, exc) from None

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})",
                                    part).fetchall()
            out.update((k, json.loads(v)) for k, v in rows)
        return out

    def put_many(self, items: dict[str, dict]) -> None:
        try:
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v)) for k, v in items.items()])
            self._db.commit()
        except sqlite3.DatabaseError as exc:  # a full disk, a read-only file: what is stored so far stays
            self._db.rollback()
            raise CacheError(self.path, exc) from None

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class NullCache:
    """No caching (for tests and benchmarks)."""

    def get_many(self, keys):
        return {}

    def put_many(self, items):
        pass

    def __len__(self):
        return 0


@dataclass
class Filled:
    """What :func:`fill` returns: a record for every key, and what this call computed."""

    records: list[dict]
    computed: int
    failed: int
    seconds: float


#: Record statuses that are not answers: kept in the run's output, never stored, asked again next time.
NOT_STORED = ("failed", "empty")


def fill(cache: ResponseCache | NullCache | None, keys: list[str], compute: Callable[[list[int]], list[dict]],
         order: Callable[[int], object] | None = None, chunk_size: int = 128, desc: str = "requests",
         progress: bool = True, valid: Callable[[int, dict], bool] | None = None) -> Filled:
    """The one "look up, compute what is missing, store it" loop of the package.

    ``compute(indices)`` answers the requests at those positions of ``keys`` with one record (a dict) each. Work
    goes in chunks of ``chunk_size``, each stored as soon as it is done, so a killed run loses at most one chunk
    and a rerun computes only the rest. Records whose ``status`` is in :data:`NOT_STORED` are returned but not
    stored (retried next time). When every request of the first chunk fails (status ``failed``: an error, not an
    empty reply), the cause is raised at once.
    ``order`` sorts the missing work (e.g. to keep requests that share a prompt prefix together).
    ``valid(index, record)``: a stored record it rejects (e.g. non-finite probabilities stored by an older version)
    is computed again, never reused.
    """
    from tqdm.auto import tqdm

    cache = cache if cache is not None else NullCache()
    found = cache.get_many(keys)
    if valid is not None:
        position = {k: i for i, k in enumerate(keys)}
        found = {k: v for k, v in found.items() if valid(position[k], v)}
    todo = [i for i, k in enumerate(keys) if k not in found]
    if order is not None:
        todo.sort(key=order)
    bar = tqdm(total=len(keys), initial=len(keys) - len(todo), desc=desc, disable=not progress, mininterval=15,
               smoothing=0.05)
    t0 = time.time()
    kept: dict[str, dict] = {}
    failed = 0
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start:start + chunk_size]
        records = compute(chunk)
        if len(records) != len(chunk):
            raise RuntimeError(f"compute returned {len(records)} records for {len(chunk)} requests.")
        good = {keys[i]: r for i, r in zip(chunk, records) if r.get("status") not in NOT_STORED}
        bad = {keys[i]: r for i, r in zip(chunk, records) if r.get("status") in NOT_STORED}
        if start == 0 and bad and not good and all(r.get("status") == "failed" for r in bad.values()):
            first = next(iter(bad.values()))
            raise RuntimeError(f"Every request of the first chunk ({len(bad)}) failed; first error: "
                               f"{first.get('error')}. Nothing was stored; fix the cause and rerun.")
        cache.put_many(good)
        found.update(good)
        kept.update(bad)
        failed += len(bad)
        bar.update(len(chunk))
    bar.close()
    if failed:
        print(f"{failed} of {len(keys)} requests failed or came back empty; they are recorded as such, the run "
              "is marked incomplete (its step fails) and the next run asks them again.")
    found.update(kept)
    return Filled([found[k] for k in keys], len(todo) - failed, failed, time.time() - t0)
