"""A transform takes every batch format a data engine hands it — an Arrow table (Ray Data, Spark's
mapInArrow, Daft), pandas, a dict of numpy arrays or of lists — and gives back the same format with
every input column kept and the outputs typed, equal to what Dataset.map makes."""
import io

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform

SINGLE = {"id": [0, 1, 2], "instruction": ["Say hi", "Add", "Name a fruit"], "output": ["hi", "4", "apple"]}
MULTI = {"id": [0, 1], "messages": [
    [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]]}


def as_rows(result) -> list[dict]:
    """Any batch format's rows, as plain Python, to compare."""
    if isinstance(result, pa.Table):
        return result.to_pylist()
    if isinstance(result, pd.DataFrame):
        return pa.Table.from_pandas(result, preserve_index=False).to_pylist()
    table = pa.table({name: [_plain(v) for v in values] for name, values in result.items()})
    return table.to_pylist()


def _plain(value):
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


FORMATS = {
    "pyarrow": lambda table: table,
    "pandas": lambda table: table.to_pandas(),
    "numpy": lambda table: {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names},
    "lists": lambda table: table.to_pydict(),
}


@pytest.mark.parametrize("data", [SINGLE, MULTI], ids=["single-turn", "multi-turn"])
@pytest.mark.parametrize("batch_format", FORMATS)
def test_every_batch_format_gives_what_dataset_map_gives(data, batch_format):
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        transform = CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1)
        expected = datasets.Dataset.from_dict(data).map(transform, batched=True).to_list()
        given = FORMATS[batch_format](pa.table(data))
        result = transform(given)
    assert type(result) is type(given)
    assert as_rows(result) == expected
    assert all(row["coevol_error"] is None for row in expected)


def test_a_block_whose_rows_all_failed_keeps_its_column_types():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        server.fault_for = lambda body: 400  # every row refused (the row's fault: the run goes on)
        transform = CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit")
        result = transform(pa.table(SINGLE).to_pandas())
    back = pa.Table.from_pandas(result, preserve_index=False)  # what Ray does before writing Parquet
    assert back.schema.field("coevol_output").type == pa.string()
    assert back.schema.field("coevol_error").type == pa.string()
    assert back["coevol_error"].null_count == 0 and back["coevol_output"].null_count == 3
    assert back["instruction"].to_pylist() == SINGLE["instruction"] and back["id"].to_pylist() == [0, 1, 2]
    pq.write_table(back, io.BytesIO())  # writes (an all-null column typed null would not cast back)
