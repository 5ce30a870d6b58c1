"""Loading a dataset named on the command line: a data file, a saved folder, or a Hub id."""
from __future__ import annotations

from pathlib import Path

import datasets

from .errors import HFSynthError, InputError

BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_input(source: str, split: str = "train") -> datasets.Dataset:
    path = Path(source)
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(path))
            return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
        return datasets.load_dataset(str(path), split=split)
    if path.is_file():
        builder = BUILDERS.get(path.suffix.lower())
        if builder is None:
            raise InputError(f"{source}: unknown file type {path.suffix!r}; use one of {', '.join(BUILDERS)}.")
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    if path.suffix.lower() in BUILDERS or source.startswith((".", "/")):
        raise InputError(f"{source}: no such file or folder.")
    try:
        return datasets.load_dataset(source, split=split)
    except Exception as exc:  # the Hub raises many kinds; the user needs one sentence
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise HFSynthError(f"Could not load {source!r} from the Hugging Face Hub ({reason}): check the "
                           "dataset id and your network, or pass a local file or folder.") from None
