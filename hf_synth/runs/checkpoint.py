"""Finished batches kept on storage that every node of a cluster sees (a shared filesystem, or an object
store through `fsspec`: ``s3://``, ``gs://``, ``file://``, a plain folder).

The request cache is SQLite, whose write-ahead log does not work over network filesystems, so each node
keeps its own. A checkpoint makes a multi-node re-run free all the same: each batch's output is stored
under a key made of the transform's fingerprint (what changes the output) and the batch's content, and
a batch that is found is not run again, on whichever node it lands — unless some of its rows failed:
that batch runs again (the request cache answers what had completed), so a checkpoint never freezes a
failure the endpoint has since healed. A batch is written whole (to a temporary name, then moved) or
not at all; a file that cannot be read is a miss, run again and rewritten. Where the checkpoint cannot
be written is said before the first request. Nothing secret is in it: the transform's fingerprint has
no key, and the batch is the data.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid

import fsspec
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import HFSynthError

logger = logging.getLogger(__name__)


class Checkpoint:
    def __init__(self, uri: str, transform):
        self.fs, self.root = fsspec.core.url_to_fs(uri)
        state = json.dumps(transform.fingerprint_state(), sort_keys=True, default=str)
        self.transform_key = hashlib.sha256(state.encode()).hexdigest()
        self.error_column = f"{transform.prefix}_error"
        try:  # can we write there? (said now, not after the first batch was paid for)
            self.fs.makedirs(self.root, exist_ok=True)
            probe = f"{self.root}/.probe-{uuid.uuid4().hex}"
            with self.fs.open(probe, "wb") as file:
                file.write(b"")
            self.fs.rm(probe)
        except (OSError, ValueError) as error:
            raise HFSynthError(f"The checkpoint {uri} cannot be written ({type(error).__name__}: {error}): point "
                               "checkpoint= (--ray-checkpoint) at a folder or URI every node can write.") from None

    def key(self, table: pa.Table) -> str:
        digest = hashlib.sha256(self.transform_key.encode())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        digest.update(sink.getvalue())
        return digest.hexdigest()

    def _path(self, key: str) -> str:
        return f"{self.root}/{key[:2]}/{key}.arrow"

    def get(self, table: pa.Table) -> pa.Table | None:
        """The stored output of this batch, or None."""
        path = self._path(self.key(table))
        try:
            with self.fs.open(path, "rb") as file:
                stored = pa.ipc.open_file(file).read_all()
        except FileNotFoundError:
            return None
        except (OSError, pa.ArrowInvalid) as error:
            logger.warning("checkpoint %s cannot be read (%s): the batch runs again", path, error)
            return None
        if self.error_column in stored.column_names and pc.any(pc.is_valid(stored[self.error_column])).as_py():
            return None  # rows failed: run it again (the request cache answers what had completed)
        return stored

    def put(self, table: pa.Table, output: pa.Table) -> pa.Table:
        """Store `output` as this batch's, and return it."""
        path = self._path(self.key(table))
        scratch = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with self.fs.open(scratch, "wb") as file, pa.ipc.new_file(file, output.schema) as writer:
            writer.write_table(output)
        self.fs.mv(scratch, path)
        return output
