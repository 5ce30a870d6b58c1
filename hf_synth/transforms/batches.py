"""Every batch format a data engine hands a transform, as one Arrow table — and back.

`datasets` passes a `LazyBatch` (or a `LazyRow`) that carries its Arrow table; Ray Data, Spark's
`mapInArrow` and Daft pass a `pyarrow.Table`; pandas and dict-of-numpy batches (Ray's other formats)
and plain dicts of lists are converted. The transform works on the table and returns its result in
the format it was given, input columns kept and output columns with their declared types — a pandas
batch gets Arrow-backed columns, so a block whose rows all failed keeps its string types instead of
becoming `null` on the way back to Arrow.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from ..errors import InputError


@dataclass
class Batch:
    table: pa.Table                      # the rows, as Arrow
    back: Callable[[pa.Table], Any]      # the table with the outputs, in the format it came in
    batched: bool                        # False for a single row (Dataset.map/filter without batched=)


def as_arrow(examples, is_batch: Callable[[Any], bool]) -> Batch:
    """The batch `examples` as an Arrow table. `is_batch(examples)` tells a plain dict holding a batch
    from one holding a row."""
    if isinstance(examples, pa.Table):
        return Batch(examples, lambda table: table, True)
    table = getattr(examples, "pa_table", None)  # datasets' LazyBatch and LazyRow
    if table is not None:
        return Batch(table, lambda table: table, type(examples).__name__ != "LazyRow")
    if type(examples).__name__ == "DataFrame":  # pandas, without importing it
        import pandas as pd

        return Batch(pa.Table.from_pandas(examples, preserve_index=False),
                     lambda table: table.to_pandas(types_mapper=pd.ArrowDtype), True)
    columns = {name: _plain(values) for name, values in examples.items()}
    try:
        if any(_is_numpy(values) for values in examples.values()):  # Ray's "numpy" batches
            return Batch(pa.table(columns), lambda table: {name: table[name].to_numpy(zero_copy_only=False)
                                                           for name in table.column_names}, True)
        if is_batch(examples):
            return Batch(pa.table(columns), lambda table: table.to_pydict(), True)
        return Batch(pa.Table.from_pylist([columns]), lambda table: table.to_pylist()[0], False)
    except UnicodeEncodeError as exc:
        raise InputError(f"{_where_not_unicode(columns)} holds text that is not valid Unicode ({exc.reason}: "
                         f"{exc.object[exc.start:exc.end]!r}), which no dataset can store: decode the data with "
                         "errors='replace' (or fix it) before mapping.") from None


def _where_not_unicode(columns: dict) -> str:
    """Which column (and row) holds the text that cannot be encoded."""
    for name, values in columns.items():
        for number, value in enumerate(values if isinstance(values, list) else [values]):
            try:
                pa.array([value])
            except UnicodeEncodeError:
                return f"column {name!r}, row {number}," if isinstance(values, list) else f"column {name!r}"
            except (pa.ArrowException, TypeError, ValueError):
                continue
    return "the batch"


def _is_numpy(values) -> bool:
    return type(values).__module__ == "numpy" and type(values).__name__ == "ndarray"


def _plain(value):
    """Python lists for numpy arrays, however deep (Arrow does not infer nested object arrays)."""
    if _is_numpy(value):
        return [_plain(item) for item in value.tolist()] if value.dtype == object else value.tolist()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
