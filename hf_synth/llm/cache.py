"""The request cache: every completed request is stored on disk the moment it completes, so a
re-run makes no calls and a run killed halfway pays only for what had not completed.

Replies that complete in the same turn of the event loop are written in one transaction, at the end
of that turn: as durable as one write per reply, for a fraction of the CPU.

Keyed by a canonical hash of who answers and what was asked (endpoint, model, sampling parameters,
messages), never by the API key. SQLite in WAL mode lets several `num_proc` workers share it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_random


def default_cache_dir() -> Path:
    """``$HF_SYNTH_CACHE`` or ``~/.cache/hf_synth``."""
    return Path(os.environ.get("HF_SYNTH_CACHE") or Path.home() / ".cache" / "hf_synth")


def request_key(identity: dict[str, Any], messages) -> str:
    canonical = json.dumps({"llm": identity, "messages": list(messages)}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RequestCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        directory = Path(directory) if directory else default_cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "requests.sqlite"
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        # Switching a new file to WAL is not covered by the busy timeout when several workers open
        # it at once: retry.
        for attempt in Retrying(retry=retry_if_exception_type(sqlite3.OperationalError), stop=stop_after_delay(60),
                                wait=wait_random(0.01, 0.2), reraise=True):
            with attempt:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._pending: dict[str, str] = {}

    def get(self, key: str) -> dict | None:
        if key in self._pending:
            return json.loads(self._pending[key])
        row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, reply: dict) -> None:
        self._pending[key] = json.dumps(reply, ensure_ascii=False)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: nothing else can complete in this turn
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        self._db.execute("BEGIN")
        try:
            self._db.executemany("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", pending.items())
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self.flush()
        self._db.close()
