"""The request cache: every completed request is stored on disk the moment it completes, so a
re-run makes no calls and a run killed halfway pays only for what had not completed.

Replies that complete in the same turn of the event loop are written in one transaction, at the end
of that turn: as durable as one write per reply, for a fraction of the CPU.

Keyed by a canonical hash of who answers and what was asked (endpoint, model, sampling parameters,
messages, the constraint on the reply's shape), never by the API key. SQLite in WAL mode lets several `num_proc` workers share it.

The cache is never a reason to lose a row: a cache that cannot be opened or written (a read-only
folder, a path that is a file) stops the run at its start with one sentence (`CacheError`); a file
whose header is damaged is moved aside and started afresh; an entry that cannot be read is a miss
(requested again and rewritten); a write that fails later is logged once and the run goes on.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from ..errors import CacheError
from . import codec

logger = logging.getLogger(__name__)
REPLY_FIELDS = {"text": str, "finish_reason": (str, type(None)), "prompt_tokens": int, "completion_tokens": int}


def default_cache_dir() -> Path:
    """``$HF_SYNTH_CACHE`` or ``~/.cache/hf_synth``."""
    return Path(os.environ.get("HF_SYNTH_CACHE") or Path.home() / ".cache" / "hf_synth")


def request_key(identity: dict[str, Any], messages, constraint: dict | None = None) -> str:
    """The key of a request: the hash of the canonical JSON of who answers (`identity`), what was asked
    and, when there is one, the constraint on the reply's shape (absent when None, so that older caches
    still match)."""
    return key_of(codec.canonical(identity), messages, codec.canonical(constraint) if constraint else None)


def key_of(identity_json: bytes, messages, constraint_json: bytes | None = None) -> str:
    """`request_key` from its parts already in canonical JSON (an LLM's identity is made once, not per
    request): the canonical JSON of ``{"constraint": …, "llm": …, "messages": …}`` is theirs joined."""
    text = b"".join((b'{"constraint":' + constraint_json + b"," if constraint_json else b"{", b'"llm":', identity_json,
                     b',"messages":', codec.canonical(list(messages)), b"}"))
    return hashlib.sha256(text).hexdigest()


OPEN_WAIT = 10.0       # seconds a start waits for a cache another process holds locked
WRITE_WAIT_MS = 200    # a write waits this long, on the event loop's thread, then tries again later
RETRY_WRITE = 1.0      # seconds before replies that could not be written are tried again


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _damaged(error: BaseException) -> bool:
    return any(sign in str(error) for sign in ("not a database", "malformed"))


def _reply(text: str) -> dict | None:
    """A stored reply, or None when it is not one (damaged)."""
    try:
        reply = codec.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(reply, dict) or any(not isinstance(reply.get(k), t) for k, t in REPLY_FIELDS.items()):
        return None
    return reply


class RequestCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        directory = Path(directory) if directory else default_cache_dir()
        self.path = directory / "requests.sqlite"
        self._pending: dict[str, bytes] = {}
        self._warned = False
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"The request cache folder {directory} cannot be made ({exc.strerror or exc}): point "
                             "HF_SYNTH_CACHE (or cache=) at a writable folder, or run with cache=False / --no-cache.") from None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            if _locked(exc):
                raise CacheError(f"The request cache {self.path} is locked by another process (still after "
                                 f"{OPEN_WAIT:g} s): let it finish, point HF_SYNTH_CACHE (or cache=) at another folder, "
                                 "or run with cache=False / --no-cache.") from None
            if not self.path.exists() or not _damaged(exc):
                raise CacheError(f"The request cache {self.path} cannot be opened or written ({exc}): point "
                                 "HF_SYNTH_CACHE (or cache=) at a writable folder, or run with cache=False / "
                                 "--no-cache.") from None
            self._set_aside()
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=OPEN_WAIT, isolation_level=None, check_same_thread=False)
        try:
            # Switching a new file to WAL is not covered by the busy timeout when several workers
            # open it at once: retry that, and nothing else.
            for attempt in Retrying(retry=retry_if_exception(_locked), stop=stop_after_delay(OPEN_WAIT),
                                    wait=wait_random(0.01, 0.2), reraise=True):
                with attempt:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # can we write? (a read-only folder or file says so here)
            db.execute("ROLLBACK")
            db.execute(f"PRAGMA busy_timeout = {WRITE_WAIT_MS}")  # from now on: never stall the run
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside(self) -> None:
        damaged = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                source.replace(f"{damaged}{suffix}")
        logger.warning("The request cache %s was damaged: moved to %s; starting a new one (its replies are "
                       "requested again).", self.path, damaged)

    def _warn(self, what: str, error: BaseException) -> None:
        if not self._warned:
            self._warned = True
            logger.warning("The request cache %s could not %s (%s); the run goes on.", self.path, what, error)

    def get(self, key: str) -> dict | None:
        if key in self._pending:
            return codec.loads(self._pending[key])
        try:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:  # damaged pages, undecodable text
            self._warn("read an entry, so it is requested again", exc)
            return None
        return _reply(row[0]) if row else None

    def put(self, key: str, reply: dict) -> None:
        self._pending[key] = codec.dumps(reply)
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop: nothing else can complete in this turn
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        try:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)",
                                    ((key, reply.decode()) for key, reply in pending.items()))
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if not _locked(exc):
                self._warn("store replies, so a re-run will request them again", exc)
                return
            # another process holds the file: keep the replies and try again soon, without stalling the run
            self._pending = {**pending, **self._pending}
            self._warn("store replies yet (another process holds it locked); they are kept until it is free", exc)
            try:
                asyncio.get_running_loop().call_later(RETRY_WRITE, self.flush)
            except RuntimeError:
                pass

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._db.execute(f"PRAGMA busy_timeout = {int(OPEN_WAIT * 1000)}")  # the last write may wait a while
        self.flush()
        self._db.close()
