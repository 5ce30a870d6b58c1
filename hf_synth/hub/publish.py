"""Publishing: `write_repo` writes the exact folder a Hub dataset repository will hold (Parquet data,
README.md card, analysis tables and figures, the recipe), and `publish` uploads that folder in one
commit. The folder can be inspected, loaded with `load_dataset(folder)`, or uploaded later."""
from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import datasets

from ..runs import outputs
from ..runs import recipe as recipes
from ..errors import HFSynthError
from .card import DATA_FILES, build_card, recipe_of
from .client import hub_api, plain_errors

logger = logging.getLogger(__name__)

MAX_SHARD_BYTES = 500 * 2**20  # as `Dataset.push_to_hub`
ANALYSIS = "analysis"


def write_repo(dataset: datasets.Dataset, folder, transform=None, *, recipe: dict[str, Any] | None = None,
               source: str | None = None, split: str = "train", license: str | None = None,
               language: str | Sequence[str] | None = None, repo_id: str | None = None,
               analysis: bool = True, overwrite: bool = False) -> Path:
    """Write the repository folder of `dataset`: `data/train-*.parquet`, `README.md` (the card, see
    `build_card` for the arguments), `analysis/` (when `analysis` and the `[analysis]` extra is
    installed) and the recipe. Returns the folder. `folder` must be new, empty, or one written here
    before, unless `overwrite`."""
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"write_repo takes one split (a datasets.Dataset), not a {type(dataset).__name__}: "
                        "publish ds['train']")
    recipe = recipes.published(recipe_of(transform, recipe, source, split))
    folder = outputs.check(folder, overwrite=overwrite, flag="folder", fix="pass overwrite=True")
    new = not folder.exists()
    try:
        for stale in (folder / "data", folder / ANALYSIS):  # what an earlier write left: shard counts change
            shutil.rmtree(stale, ignore_errors=True)
        (folder / "data").mkdir(parents=True)
        shards = max(1, math.ceil(dataset.data.nbytes / MAX_SHARD_BYTES))
        for index in range(shards):
            shard = dataset.shard(shards, index, contiguous=True)
            shard.to_parquet(str(folder / DATA_FILES.replace("*", f"{index:05d}-of-{shards:05d}.parquet")))
        report = _analysis(dataset, folder / ANALYSIS) if analysis else None
        recipes.save(recipe, folder)
        card = build_card(dataset, recipe=recipe, source=source, split=split, license=license, language=language,
                          repo_id=repo_id, analysis=report)
        card.save(folder / "README.md")
    except BaseException:
        if new:  # no half-written repository folder is left behind (e.g. when the license is unknown)
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _analysis(dataset, folder: Path):
    try:
        from ..analysis import report
        return report(dataset, folder, failures=False)
    except ImportError as exc:
        logger.warning("no analysis in the card (%s): install hf_synth[analysis]", exc)
    except HFSynthError as exc:
        logger.warning("no analysis in the card: %s", exc)
    shutil.rmtree(folder, ignore_errors=True)
    return None


def publish(dataset: datasets.Dataset, repo_id: str, transform=None, *, recipe: dict[str, Any] | None = None,
            source: str | None = None, split: str = "train", license: str | None = None,
            language: str | Sequence[str] | None = None, private: bool | None = None, token: str | None = None,
            folder=None, analysis: bool = True, commit_message: str | None = None, overwrite: bool = False) -> str:
    """Publish `dataset` to the Hub dataset repository `repo_id` (created if needed) in one commit:
    the folder `write_repo` writes (into `folder` when given, to keep it). The token comes from
    `token`, ``HF_TOKEN`` or the saved login. Returns the commit's URL."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = write_repo(dataset, folder or scratch, transform, recipe=recipe, source=source, split=split,
                            license=license, language=language, repo_id=repo_id, analysis=analysis,
                            overwrite=overwrite)
        api = hub_api(token)
        later = (f"The repository folder is in {folder}; upload it later with `hf upload {repo_id} {folder} "
                 "--repo-type dataset`." if folder != Path(scratch) else "")
        with plain_errors(f"publish to {repo_id}", later):
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=folder,
                                       commit_message=commit_message or f"Publish {len(dataset)} rows with hf_synth",
                                       delete_patterns=["data/*", f"{ANALYSIS}/*"])
    return commit.commit_url
