"""Running the failed rows of a finished run again, paying nothing for the rows that succeeded.

`datasets` caches a finished `map` by its fingerprint, failures included: mapping the same transform
over the same input again reuses it and sends nothing. `retry_failed` selects the failed rows, maps
them afresh (the request cache still answers every request that had completed), and puts them back in
their places.
"""
from __future__ import annotations

import copy
import uuid
from typing import Sequence

import datasets

from .errors import InputError


def failed_rows(dataset: datasets.Dataset, transforms: Sequence) -> list[int]:
    """Indices of the rows that any of `transforms` marked with an error."""
    columns = [f"{t.prefix}_error" for t in transforms]
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise InputError(f"retry_failed needs the output of the transforms it retries: no column "
                         f"{', '.join(map(repr, missing))} among {dataset.column_names}.")
    errors = dataset.select_columns(columns).to_dict()
    return [row for row, marks in enumerate(zip(*errors.values())) if any(mark is not None for mark in marks)]


def retry_failed(dataset: datasets.Dataset, transforms, **map_kwargs) -> datasets.Dataset:
    """`dataset` — the output of mapping `transforms` (one, or several in order) — with its failed rows
    run again through all of them, in place; the other rows are untouched and cost nothing.

    >>> out = retry_failed(out, CoEvolTransform(llm), batch_size=64)

    `map_kwargs` go to `Dataset.map` (`batch_size`, `num_proc`, ...); `batched=True` is implied. A
    reply that failed its row (empty, cut at `max_tokens`, filtered) is asked for again, not served
    from the request cache; a cut one is then likely cut again unless the LLM's `max_tokens` grew.
    """
    transforms = list(transforms) if isinstance(transforms, (list, tuple)) else [transforms]
    transforms = [copy.copy(transform) for transform in transforms]
    for transform in transforms:
        transform.retrying = True
    failed = failed_rows(dataset, transforms)
    if not failed:
        return dataset
    ours = [c for c in dataset.column_names if any(c.startswith(f"{t.prefix}_") for t in transforms)]
    retried = dataset.select(failed).remove_columns(ours)
    # In memory: `datasets` would otherwise write each result beside the dataset's own files — into the
    # folder a run was saved to, a full copy per retry, never removed.
    map_kwargs.setdefault("keep_in_memory", True)
    for transform in transforms:
        # A fingerprint of its own: datasets must not answer this map, or anything derived from it,
        # with what it cached for an earlier retry, failures and all.
        retried = retried.map(transform, batched=True, new_fingerprint=uuid.uuid4().hex, **map_kwargs)
    failed_set = set(failed)
    kept = [row for row in range(len(dataset)) if row not in failed_set]
    combined = datasets.concatenate_datasets([dataset.select(kept),
                                              retried.select_columns(dataset.column_names).cast(dataset.features)])
    position = {row: place for place, row in enumerate(kept + failed)}
    return combined.select([position[row] for row in range(len(dataset))]).flatten_indices(keep_in_memory=True)
