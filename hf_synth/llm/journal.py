"""The batch journal: the batches this machine made and the requests each carries, so that a run
stopped while batches are in flight (Ctrl-C, SIGTERM, a killed machine) re-attaches to them when it
runs again instead of paying for the same requests twice.

One small JSON file per batch in ``batches/`` beside the request cache, replaced atomically (written
to a temporary file, then renamed): first before the input file is uploaded, then once it is, then
once the batch is created. Each batch is also created with the entry's id in its metadata, so a run
killed between creating a batch and writing its id finds it again by listing the API's batches.
"""
from __future__ import annotations

import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import codec

KEEP_DAYS = 30  # the Batch API keeps a batch's files about this long


@dataclass
class Entry:
    endpoint: str            # the API's base URL, without credentials
    custom_ids: list[str]    # the requests the batch carries
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)
    input_file_id: str | None = None
    batch_id: str | None = None


class Journal:
    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder) / "batches"

    def write(self, entry: Entry) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(codec.dumps(asdict(entry)))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.folder / f"{entry.id}.json")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def entries(self, endpoint: str) -> list[Entry]:
        """The batches made for `endpoint` in the last `KEEP_DAYS` days (older entries are removed:
        their files are gone from the API too)."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []:
            try:
                entry = Entry(**codec.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError):
                continue  # a file that is not an entry is not ours to read (or to remove)
            if time.time() - entry.created > KEEP_DAYS * 86400:
                path.unlink(missing_ok=True)
            elif entry.endpoint == endpoint:
                found.append(entry)
        return found
