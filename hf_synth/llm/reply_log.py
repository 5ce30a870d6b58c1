"""The reply log: each reply is appended to a file of this process's beside the request cache as it
completes, so a process killed at any point has lost only the requests then in flight. The cache's
writer thread commits the replies into SQLite in large transactions (where a reply costs a third of
what it costs in a small one) and then removes the files that held them.

The replies that complete in one turn of the event loop are written together, in one `write`, at the
end of the turn or before the next request goes out, whichever comes first (a reply frees its place
at once, and the request that takes it may be sent within the turn): a `write` per reply gave
Python's lock away once a reply, and the writer thread, busy committing, took it each time (10 µs a
reply in all, docs/performance.md). So a kill at any point loses only the requests in flight.

A file is locked (`flock`) by the process that appends to it for as long as the file exists, so a file
that can be locked was left by a process that is gone: the next process that opens the cache replays
it into SQLite and removes it, and a process that has it open takes it over as its next run starts
(a Ray actor given the rows of one that was killed). A reply in both the file and SQLite (a kill between the commit and the
removal) is replayed as the same reply. Without `fcntl` (Windows) there is no log: a reply is on disk
once committed.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None


class ReplyLog:
    """The log files of the cache at `cache_path`; only the cache's lock-holding callers touch it."""

    def __init__(self, cache_path: Path):
        self._folder = cache_path.parent
        self._prefix = f"{cache_path.name}.log-"
        self._file: tuple[Path, int] | None = None  # the file appended to now
        self._taken: list[tuple[Path, int]] = []    # older files: every reply in them is taken by the writer
        self._lines: list[bytes] = []               # appended, not yet written
        self._off = fcntl is None  # no log: no fcntl, or a filesystem that cannot lock files

    def append(self, key: str, raw: bytes) -> bool:
        """Hold the reply `raw` of the request `key` for the next `write`; whether it is the first held."""
        if self._off:
            return False
        self._lines.append(b"%s\t%s\n" % (key.encode(), raw))
        return len(self._lines) == 1

    @property
    def held(self) -> bool:
        """Whether replies are held for the next `write`."""
        return bool(self._lines)

    def write(self) -> None:
        """Put the replies held on disk (in the page cache: safe from a kill). `OSError` when it cannot (a
        full disk; a filesystem that cannot lock files, which turns the log off): they are then on disk
        once committed."""
        lines, self._lines = self._lines, []
        if lines and not self._off:
            if self._file is None:
                self._file = self._new_file()
            os.write(self._file[1], b"".join(lines))

    def _new_file(self) -> tuple[Path, int]:
        while True:
            path = self._folder / f"{self._prefix}{os.getpid()}-{uuid.uuid4().hex[:12]}"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)  # (waits only while another process replays it, empty)
                linked = os.fstat(descriptor).st_nlink  # 0: removed by a replay between the open and the lock
            except OSError:  # a filesystem that cannot lock files: no log (a reply is on disk once committed)
                os.close(descriptor)
                path.unlink(missing_ok=True)
                self._off = True
                raise
            if linked:
                return path, descriptor
            os.close(descriptor)

    def taken(self) -> None:
        """The writer has taken every reply written so far: the next ones go to a new file."""
        if self._file is not None:
            self._taken.append(self._file)
            self._file = None

    def committed(self) -> None:
        """Every reply taken is in SQLite: remove the files that held them."""
        for path, descriptor in self._taken:
            path.unlink(missing_ok=True)
            os.close(descriptor)
        self._taken = []

    def not_committed(self) -> None:
        """The replies taken could not be committed: their files are left to the next process that opens
        the cache, which replays them."""
        for _, descriptor in self._taken:
            os.close(descriptor)  # (unlocked: as if this process were gone)
        self._taken = []

    def replay(self, commit: Callable[[dict[str, bytes]], bool]) -> None:
        """Hand the replies of each file left by a process that is gone to `commit`, and remove the file
        when it says they are committed. The file stays locked meanwhile: no other process replays it too."""
        if self._off:
            return
        for path in sorted(self._folder.glob(f"{self._prefix}*")):
            try:
                descriptor = os.open(path, os.O_RDONLY)
            except OSError:  # removed meanwhile, or not ours to read
                continue
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                with open(descriptor, "rb", closefd=False) as file:
                    lines = file.read().split(b"\n")
                replies = {}
                for line in lines:
                    key, tab, raw = line.partition(b"\t")
                    if tab:  # (the last line cut by the kill has none)
                        replies[key.decode("ascii", "replace")] = raw
                if commit(replies):
                    path.unlink(missing_ok=True)
            except OSError:  # its process appends to it (alive), or locks cannot be had here: left alone
                pass
            finally:
                os.close(descriptor)

    def close(self) -> None:
        """Stop appending; a file still holding replies not committed is left for a replay."""
        self.taken()
        self.not_committed()
