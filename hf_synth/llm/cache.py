"""The request cache: every completed request is stored on disk as it completes, so a re-run makes no
calls and a run killed halfway pays again only for the requests that were in flight.

A reply is on disk as it completes, appended to this process's reply log (`reply_log.py`). A
thread of the cache's own commits the replies into SQLite once a second, as soon as a thousand
wait, or when a run's rows are done (`commit`; `flush` waits for it), in one transaction: the event
loop never waits on the disk, and a reply costs a third of the CPU it costs in a transaction of ten
(SQLite writes every index page an insert touches, whatever the number of inserts on it). Until it
is committed, a reply is served from memory. The first requests of a run are looked up together
(`get_many`), and so are the later ones asked in the same turn of the event loop (`get` looks
up one alone).

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
import threading
import time
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random

from ..errors import CacheError
from . import codec
from .reply_log import ReplyLog

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
WRITE_WAIT_MS = 200    # a write waits this long for another process's lock, then says so and tries again later
RETRY_WRITE = 1.0      # seconds before replies that could not be written are tried again
COMMIT_EVERY = 1.0     # seconds a completed reply waits at most to be committed (it is in the reply log meanwhile)
COMMIT_AT = 1000       # ... or until this many wait
WRITER_IDLE = 2.0      # seconds the writer thread waits for replies before it ends (the next reply starts another)
COMMITTED, HELD, FAILED = "committed", "held", "failed"  # what became of a write
INSERT_AT_MOST = 10_000    # replies an INSERT takes in one JSON text (SQLite takes a text of at most 1 GB)
CHECKPOINT_AFTER = 10_000  # replies committed between copies of the WAL into the file (some 5,000-10,000 pages,
                           # not SQLite's 1,000: random keys touch the same index pages again and again, each copied
                           # once); by the writer once the commit's waiters are released, so no batch waits for it
CHECKPOINT_PAGES = 40_000  # ... and by SQLite at a commit, should the WAL grow past this all the same (160 MB)


def _locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error)


def _damaged(error: BaseException) -> bool:
    return any(sign in str(error) for sign in ("not a database", "malformed"))


def _has_json_each(db: sqlite3.Connection) -> bool:
    """Whether SQLite has its JSON functions (built in since 3.38, and in most builds before). With
    them a commit is one statement (its JSON passed as text: SQLite 3.45 and later read a BLOB as their
    binary JSONB), which lets go of Python's lock once; `executemany` lets go of it
    for every row, and a thread that is busy meanwhile (the main thread building a batch's outputs)
    hands it back only every 5 ms: a commit of a thousand replies then took seconds."""
    try:
        db.execute("SELECT COUNT(*) FROM json_each('[]')")
    except sqlite3.OperationalError:
        return False
    return True


def _reply(text: str) -> dict | None:
    """A stored reply, or None when it is not one (damaged)."""
    try:
        reply = codec.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(reply, dict) or any(not isinstance(reply.get(k), t) for k, t in REPLY_FIELDS.items()):
        return None
    return reply


def _readable(replies: dict[str, bytes]) -> dict[str, bytes]:
    """Of the replies in a dead process's log, those that can be read (a line cut by the kill cannot)."""
    return {key: raw for key, raw in replies.items() if _reply(raw.decode("utf-8", "replace")) is not None}


class RequestCache:
    def __init__(self, directory: str | os.PathLike | None = None):
        directory = Path(directory) if directory else default_cache_dir()
        self.path = directory / "requests.sqlite"
        self._pending: dict[str, bytes] = {}  # completed, not yet taken by the writer
        self._writing: dict[str, bytes] = {}  # taken by the writer, not yet committed (or held by a lock)
        self._held = False                    # another process's lock holds `_writing` back
        self._flushes = 0                     # callers waiting for everything to be committed
        self._asked = False                   # a commit of everything put so far is asked for (`commit`)
        self._closing = False
        self._lock = threading.RLock()  # (held directly on the hot path: a Condition's own `with` is Python code)
        self._changed = threading.Condition(self._lock)
        self._writer: threading.Thread | None = None
        self._warned = False
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"The request cache folder {directory} cannot be made ({exc.strerror or exc}): point "
                             "HF_SYNTH_CACHE (or cache=) at a writable folder, or run with cache=False / --no-cache.") from None
        try:  # the writer thread has a connection of its own: reads never wait for a write
            self._db, self._writes = self._open(), self._open()
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
            self._db, self._writes = self._open(), self._open()
        self._writes.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}")
        self._uncheckpointed = 0  # replies committed since the WAL was last copied into the file
        self._json_each = _has_json_each(self._writes)
        self._log = ReplyLog(self.path)
        self._log.replay(self._commit_replayed)  # what processes killed before their commit completed

    def _commit_replayed(self, replies: dict[str, bytes]) -> bool:
        return self._write(_readable(replies)) == COMMITTED

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
        recent = self.recent(key)
        if recent is not None:
            return recent
        try:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:  # damaged pages, undecodable text
            self._warn("read an entry, so it is requested again", exc)
            return None
        return _reply(row[0]) if row else None

    def get_many(self, keys: list[str]) -> dict[str, dict | None]:
        """The stored reply of each of `keys` (None: none), in one query per 500 keys. A key whose query
        failed (a damaged page among them) is left out, to be looked up alone."""
        with self._lock:
            recent = {key: raw for key in keys if (raw := self._uncommitted(key))} if self._pending or self._writing else {}
        found: dict[str, dict | None] = {key: codec.loads(raw) for key, raw in recent.items()}
        unknown = [key for key in keys if key not in found] if found else keys
        for start in range(0, len(unknown), 500):
            chunk = unknown[start:start + 500]
            try:
                if self._json_each:  # (one parameter and a join: a third less time than an IN list of 500)
                    rows = self._db.execute("SELECT replies.key, reply FROM json_each(?) JOIN replies ON replies.key = "
                                            "json_each.value", (codec.dumps(chunk).decode(),)).fetchall()
                else:
                    rows = self._db.execute(f"SELECT key, reply FROM replies WHERE key IN ({','.join('?' * len(chunk))})",
                                            chunk).fetchall()
            except sqlite3.DatabaseError:
                continue
            stored = {key: _reply(text) for key, text in rows}  # (a damaged entry is a miss)
            found.update((key, stored.get(key)) for key in chunk)
        return found

    def recent(self, key: str) -> dict | None:
        """The reply to `key` put since the last look-up (not yet committed), if there is one."""
        with self._lock:
            raw = self._uncommitted(key)
        return codec.loads(raw) if raw is not None else None

    def _uncommitted(self, key: str) -> bytes | None:
        """The reply to `key` put and not yet committed, as stored (the caller holds the lock)."""
        return self._pending.get(key) or self._writing.get(key)

    def put(self, key: str, reply: dict) -> None:
        """Store `reply` (called on the event loop): on disk at the end of the loop's turn (in the reply
        log), in SQLite within `COMMIT_EVERY` seconds."""
        raw = codec.dumps(reply)
        with self._lock:
            if self._log.append(key, raw):  # the first of this turn of the event loop: written at its end
                asyncio.get_running_loop().call_soon(self._write_log)
            self._pending[key] = raw
            self._start_writer()
            if len(self._pending) == COMMIT_AT:
                self._changed.notify_all()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_while_busy, name="hf_synth-cache-writer", daemon=True)
            self._writer.start()

    def adopt_orphans(self) -> None:
        """Take over the reply logs of processes gone since this cache was opened (a Ray actor killed
        while this one runs on, and given its rows): their replies go into this process's log, and are
        committed with its own, so that the work retried here is not paid again. (A process that opens
        the cache replays them at once.)"""
        self._log.replay(self._adopt)

    def _adopt(self, replies: dict[str, bytes]) -> bool:
        with self._lock:
            for key, raw in _readable(replies).items():
                self._log.append(key, raw)
                self._pending[key] = raw
            try:
                self._log.write()  # (in this process's log before the dead one's is removed)
            except OSError as exc:
                self._warn("take over the replies a killed process logged, so they are requested again", exc)
                return False
            self._start_writer()
        return True

    def write_held(self) -> None:
        """Put the replies held for the reply log on disk now, rather than at the end of the loop's turn:
        called before a request goes out, so that a kill costs at most the requests in flight (a reply
        completed in this turn has freed its place, and the request that takes it may be sent before the
        turn ends)."""
        if self._log.held:
            self._write_log()

    def _write_log(self) -> None:
        with self._lock:
            try:
                self._log.write()
            except OSError as exc:  # (a full disk, a filesystem that cannot lock files)
                self._warn("log replies as they completed, so replies are on disk once committed (within a second)",
                           exc)

    def commit(self) -> None:
        """Start committing every reply put so far, now; `flush` waits for it."""
        with self._lock:
            if self._pending:
                self._asked = True
                self._changed.notify_all()

    def flush(self) -> None:
        """Commit every reply put so far, and wait for it (or until another process's lock holds it
        back: it is committed when the lock is released)."""
        with self._lock:
            self._flushes += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: not (self._pending or self._writing) or self._held)
            finally:
                self._flushes -= 1

    def _due(self) -> bool:
        return self._closing or bool(self._pending) and (self._asked or self._flushes > 0 or len(self._pending) >= COMMIT_AT)

    def _write_while_busy(self) -> None:
        """The writer thread: commits what has completed, in one transaction, every `COMMIT_EVERY` seconds
        or as soon as `COMMIT_AT` replies wait or someone waits for them; ends when nothing has
        completed for `WRITER_IDLE` seconds or the cache is closed."""
        busy = time.monotonic()
        while True:
            with self._lock:
                self._changed.wait_for(self._due, timeout=COMMIT_EVERY)
                if not (self._pending or self._writing):
                    if self._closing or time.monotonic() - busy >= WRITER_IDLE:
                        self._writer = None
                        self._changed.notify_all()
                        return
                    continue
                self._writing, self._pending, self._asked = {**self._writing, **self._pending}, {}, False
                self._write_log()
                self._log.taken()
                batch, closing = self._writing, self._closing
            if closing:  # the last write may wait a while for another process's lock
                self._writes.execute(f"PRAGMA busy_timeout = {int(OPEN_WAIT * 1000)}")
            written = self._write(batch)
            if written == COMMITTED:
                self._log.committed()
            elif written == FAILED:
                self._log.not_committed()
            busy = time.monotonic()
            with self._lock:
                self._held = written == HELD
                if not self._held:
                    self._writing = {}
                if self._held and closing:  # (said in the log: kept until it is free, and it never was)
                    self._writer = None
                self._changed.notify_all()
                if self._writer is None:
                    return
            if written == HELD:
                time.sleep(RETRY_WRITE)
            elif written == COMMITTED:
                self._uncheckpointed += len(batch)
                if self._uncheckpointed >= CHECKPOINT_AFTER:
                    self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the WAL into the file (as far as no reader still needs it): it then starts again from
        its beginning rather than growing."""
        self._uncheckpointed = 0
        try:
            self._writes.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.DatabaseError:  # (another process writes: a later checkpoint, or theirs, copies it)
            pass

    def _write(self, batch: dict[str, bytes]) -> str:
        """Commit `batch`: `COMMITTED`, `HELD` (another process's lock holds it back: it is kept to try
        again) or `FAILED` (logged once)."""
        try:
            self._writes.execute("BEGIN")
            try:
                replies = [(key, reply.decode()) for key, reply in batch.items()]
                if self._json_each:
                    for start in range(0, len(replies), INSERT_AT_MOST):
                        self._writes.execute("INSERT OR REPLACE INTO replies (key, reply) SELECT key, value FROM "
                                             "json_each(?)", (codec.dumps(dict(replies[start:start + INSERT_AT_MOST])).decode(),))
                else:
                    self._writes.executemany("INSERT OR REPLACE INTO replies (key, reply) VALUES (?, ?)", replies)
            except BaseException:
                self._writes.execute("ROLLBACK")
                raise
            self._writes.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if not _locked(exc):
                self._warn("store replies, so a re-run will request them again", exc)
                return FAILED
            self._warn("store replies yet (another process holds it locked); they are kept until it is free", exc)
            return HELD
        return COMMITTED

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        """Write what is left (waiting longer for another process's lock) and close."""
        with self._lock:
            self._closing = True
            writer = self._writer
            self._changed.notify_all()
        if writer is not None:
            writer.join()
        self._log.close()
        self._writes.close()
        self._db.close()
