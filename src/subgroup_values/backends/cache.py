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
import sqlite3
from pathlib import Path


def cache_key(**parts) -> str:
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            rows = self._db.execute(f"SELECT key, value FROM responses WHERE key IN ({','.join('?' * len(part))})",
                                    part).fetchall()
            out.update((k, json.loads(v)) for k, v in rows)
        return out

    def put_many(self, items: dict[str, dict]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in items.items()])
        self._db.commit()

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
