"""Loading a dataset named on the command line: a data file, a saved folder, or a Hub id."""
from __future__ import annotations

import codecs
import json
from pathlib import Path

import datasets
import huggingface_hub

from ..errors import HFSynthError, InputError

BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _split(loaded: datasets.DatasetDict, source: str, split: str) -> datasets.Dataset:
    if split not in loaded:
        raise InputError(f"{source} has no split {split!r}; it has {', '.join(map(repr, loaded))}: pass --split.")
    return loaded[split]


def load_input(source: str, split: str = "train") -> datasets.Dataset:
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_dict.json").exists():  # one split of a saved DatasetDict, read alone
            splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
            if split not in splits:
                raise InputError(f"{source} has no split {split!r}; it has {', '.join(map(repr, splits))}: pass --split.")
            return _saved(path / split)
        if (path / "dataset_info.json").exists():
            return _saved(path)
        return _split(datasets.load_dataset(str(path)), source, split)
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InputError(f"{source}: unknown file type {path.suffix!r}; use one of {', '.join(BUILDERS)}.")
        if builder in ("json", "csv") and _blank(path):
            raise InputError(f"{source} is empty: it has no rows, nor columns to say what they would be.")
        if builder in ("json", "csv"):
            _check_utf8(path, source)
        if builder == "parquet" and _parquet_rows(path) == 0:  # datasets' builder finds "no data" in it
            import pyarrow.parquet
            from datasets.table import InMemoryTable

            return datasets.Dataset(InMemoryTable(pyarrow.parquet.read_table(path)))
        try:
            return datasets.load_dataset(builder, data_files=str(path), split="train")
        except Exception as exc:  # the builders raise many kinds; the user needs one sentence
            raise InputError(f"{source} could not be read as {builder} ({_first_line(exc)}).") from None
    if path.suffix.lower() in BUILDERS or source.startswith((".", "/")):
        raise InputError(f"{source}: no such file or folder.")
    if not huggingface_hub.constants.HF_HUB_OFFLINE:
        # one quick look first: load_dataset retries an unreachable Hub for half a minute
        from ..hub.client import hub_api, plain_errors

        with plain_errors(f"load {source!r}", "Set HF_HUB_OFFLINE=1 to use a copy downloaded before, or pass a "
                                              "local file or folder."):
            hub_api().dataset_info(source, timeout=10)
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as exc:  # the Hub raises many kinds; the user needs one sentence
        raise HFSynthError(f"Could not load {source!r} from the Hugging Face Hub ({_first_line(exc)}): check the "
                           "dataset id, --split and your network, or pass a local file or folder.") from None


def _saved(folder: Path) -> datasets.Dataset:
    """A dataset saved with `save_to_disk`; one saved with no rows (no data files, which
    `load_from_disk` cannot read) as an empty dataset with its features."""
    state = json.loads((folder / "state.json").read_text()) if (folder / "state.json").exists() else {}
    if state.get("_data_files") == []:
        features = datasets.DatasetInfo.from_directory(str(folder)).features
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.load_from_disk(str(folder))


def _check_utf8(path: Path, source: str) -> None:
    """Text files must be UTF-8: the JSON reader stores other bytes as they are, and the row holding
    them fails only when it is read, after requests were paid for."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                at = line + chunk[:exc.start].count(b"\n")
                raise InputError(f"{source} is not UTF-8: line {at} holds the byte 0x{chunk[exc.start]:02x}; "
                                 "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{source} is not UTF-8: it ends in the middle of a character; re-encode the file "
                             "as UTF-8.") from None


def _parquet_rows(path: Path) -> int | None:
    import pyarrow.parquet

    try:
        return pyarrow.parquet.ParquetFile(path).metadata.num_rows
    except Exception:  # not Parquet after all: the builder will say so
        return None


def _blank(path: Path) -> bool:
    with path.open("rb") as file:
        return not file.read(1 << 16).strip()


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
