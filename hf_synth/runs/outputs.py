"""Where a command may write: a new path, or a folder that hf_synth wrote before — never over what a
user made, and never over the input, whatever the flags.

Every folder a command writes holds a small mark (`.hf_synth`) saying which command wrote it; a run's
output from before the mark existed is known by its recipe (`hf_synth_recipe.json`). An empty folder
holds nothing to lose, so it may be used too. Anything else is refused in one sentence before any
work is done (so no request is paid for an output that cannot be saved); `--overwrite` replaces a path
hf_synth did not write, except an input.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import HFSynthError

MARK = ".hf_synth"
OLD_MARKS = ("hf_synth_recipe.json",)


def written_by_us(folder: Path) -> bool:
    return folder.is_dir() and any((folder / name).is_file() for name in (MARK, *OLD_MARKS))


def check(path, *, inputs=(), overwrite: bool = False, flag: str = "--output",
          fix: str = "pass --overwrite to replace it") -> Path:
    """`path` if a command may write there, else an `HFSynthError` that says why and what to do."""
    target = Path(path)
    where = target.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if Path(given).exists() and (where == source or where in source.parents):
            raise HFSynthError(f"{flag} {path} would replace the input {given}: choose another {flag}.")
    if not target.exists() and not target.is_symlink():
        return target
    if target.is_dir() and (written_by_us(target) or not any(target.iterdir())):
        return target
    if overwrite:
        return target
    what = "a folder that hf_synth did not write" if target.is_dir() else "a file"
    raise HFSynthError(f"{flag} {path} is {what}, and it would be replaced: choose a new {flag}, or {fix}.")


def mark(folder, command: str) -> None:
    """Leave the mark that says hf_synth wrote `folder` (with `command`), so a later run may replace it."""
    (Path(folder) / MARK).write_text(json.dumps({"written_by": f"hf-synth {command}"}) + "\n")
