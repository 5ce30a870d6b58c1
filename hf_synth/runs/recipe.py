"""A run's recipe: what went in, which steps ran with which settings, and what the run took, as JSON.

`hf-synth` writes one next to every dataset it saves and uploads it with a published dataset;
`hf-synth reproduce RECIPE` runs the same steps again. Recipes hold no API key and no URL credentials.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from ..errors import InputError
from ..llm.config import LLM

logger = logging.getLogger(__name__)

FILE = "hf_synth_recipe.json"


def make(steps: Sequence, *, source: str | None = None, split: str = "train", limit: int | None = None,
         batch_size: int | None = None, seconds: float | None = None, run_stats=None,
         folder=None) -> dict[str, Any]:
    """The recipe of `steps` (transforms, in the order they were mapped) over `source`, to be saved in
    `folder`. A local input is recorded relative to `folder`, so that `reproduce` finds it from any
    folder and no absolute path is written (without `folder`: by its name alone); `published` keeps only
    its name."""
    run = {"seconds": round(seconds, 1) if seconds is not None else None}
    if run_stats is not None:
        run.update(requests_sent=run_stats.sent, from_cache=run_stats.cached, retries=run_stats.retries)
        if run_stats.cost_microusd:
            run["cost_usd"] = round(run_stats.cost_microusd / 1e6, 6)
    given = {"source": source, "split": split, "limit": limit}
    if source is not None and Path(source).exists():
        path = Path(source).resolve()
        given["source"] = os.path.relpath(path, Path(folder).resolve()) if folder is not None else path.name
        given["local"] = True
    return {"hf_synth": __version__, "input": given, "steps": [step.settings() for step in steps],
            "map": {"batch_size": batch_size}, "run": run}


def published(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe as a published dataset shows it: a local input by its name alone (where it was on this
    machine is nobody else's business; `reproduce` asks for `--input`)."""
    given = recipe["input"]
    if not given.get("local") or not given.get("source"):
        return recipe
    return {**recipe, "input": {**given, "source": Path(given["source"]).name}}


def input_path(recipe: dict[str, Any], recipe_path) -> str | None:
    """Where the recipe's input is: a local input found from the recipe's folder, else its Hub id."""
    source = recipe["input"].get("source")
    if source is None or not recipe["input"].get("local"):
        return source
    folder = Path(recipe_path) if Path(recipe_path).is_dir() else Path(recipe_path).parent
    return os.path.normpath(folder / source) if not os.path.isabs(source) else source


def transforms(recipe: dict[str, Any], *, api_key_env: str | None = None, cache: bool | str = True,
               model: str | None = None, base_url: str | list[str] | None = None) -> list:
    """The transforms a recipe describes, ready to map. Every endpoint reads its key from the
    environment variable `api_key_env` (default: the one the recipe names, else ``OPENAI_API_KEY``);
    `model` and `base_url`, when given, replace every endpoint's (to run the recipe elsewhere)."""
    from ..method import transforms as declared

    if recipe.get("hf_synth") != __version__:
        logger.warning("this recipe was written by hf_synth %s and runs on %s: prompts or code may differ",
                       recipe.get("hf_synth"), __version__)
    built = []
    known = {transform.__name__: transform for transform in declared().values()}  # (a method of yours, once imported)
    for number, step in enumerate(recipe.get("steps") or [], 1):
        cls = known.get(str(step.get("transform")))
        if cls is None:
            raise InputError(f"recipe step {number}: unknown transform {step.get('transform')!r}; "
                             f"known: {', '.join(sorted(known))}")
        try:
            key = {name: value for name, value in (("api_key_env", api_key_env), ("model", model),
                                                    ("base_url", base_url)) if value}
            llm = LLM(**_elsewhere(step["llm"], key))
            llms = {agent: LLM(**_elsewhere(settings, key)) for agent, settings in step.get("llms", {}).items()}
            per_agent = {"llms": llms} if llms else {}  # judges have one LLM and take no llms=
            built.append(cls(llm, cache=cache, **per_agent, **step.get("options", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"recipe step {number} ({cls.__name__}) is malformed: {exc}") from None
    if not built:
        raise InputError("the recipe has no steps")
    return built


def _elsewhere(settings: dict[str, Any], replaced: dict[str, Any]) -> dict[str, Any]:
    """An LLM's recorded settings with `replaced` ones; on another endpoint the dialect of constrained
    decoding is that endpoint's (the default), not the recorded one's."""
    if {"model", "base_url"} & replaced.keys():
        settings = {name: value for name, value in settings.items() if name != "structured"}
    else:
        settings = {"structured": None, **settings}  # recipes older than `structured` ran unconstrained
    return {**settings, **replaced}


def save(recipe: dict[str, Any], folder) -> Path:
    path = Path(folder) / FILE
    path.write_text(json.dumps(recipe, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def load(path) -> dict[str, Any]:
    """Read a recipe file, or the recipe in a folder written by `hf-synth`."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    if not path.is_file():
        raise InputError(f"{path}: no recipe here; hf-synth writes {FILE} next to every dataset it saves.")
    try:
        recipe = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a recipe: {exc}") from None
    if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list):
        raise InputError(f"{path} is not a recipe: it has no list of steps")
    return recipe
