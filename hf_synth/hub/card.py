"""`build_card`: the dataset card of a hf_synth output. YAML metadata the Hub validates, and a body that
says what was done, by which models with which prompts, what it cost, how to load it and how to
reproduce it. Templates are in `dataset_cards/` (in a wheel, `hf_synth/dataset_cards/`): one per method over a
shared `_base.md`."""
from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import jinja2
from huggingface_hub import DatasetCard, DatasetCardData
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

from .. import __version__, replies
from ..runs import recipe as recipes
from ..errors import HFSynthError, InputError
from .client import hub_api, plain_errors

# In a wheel the templates are hf_synth/dataset_cards; in a checkout, dataset_cards/ beside hf_synth/.
TEMPLATES = next(folder for folder in (Path(__file__).resolve().parent.parent / "dataset_cards",
                                       Path(__file__).resolve().parent.parent.parent / "dataset_cards")
                 if (folder / "_base.md").exists())
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"))
DATA_FILES = "data/train-*"
HF_SYNTH_CITATION = f"""@software{{hf_synth,
  title   = {{hf_synth: better instruction-tuning data with multi-agent LLM methods in Hugging Face datasets}},
  version = {{{__version__}}},
  year    = {{2026}}
}}"""


def size_category(rows: int) -> str:
    """The Hub's `size_categories` value for a number of rows."""
    return next((name for bound, name in SIZE_CATEGORIES if rows < bound), "n>1B")


def on_hub(source: str | None) -> bool:
    """Whether `source` names a Hub dataset rather than a local file or folder."""
    return bool(source) and not Path(source).exists() and re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", source) is not None


def source_card_data(source: str | None, hub: bool | None = None) -> DatasetCardData | None:
    """The metadata of the source dataset's card: a local folder's README.md or, when `hub` (default:
    when `source` looks like a Hub id), the Hub dataset's."""
    if not source:
        return None
    path = Path(source)
    if path.is_dir():
        readme = path / "README.md"
        return DatasetCard.load(readme).data if readme.is_file() else None
    if not (on_hub(source) if hub is None else hub):
        return None
    with tempfile.TemporaryDirectory() as folder:
        try:
            readme = hub_api().hf_hub_download(source, "README.md", repo_type="dataset", local_dir=folder)
        except EntryNotFoundError as exc:
            if isinstance(exc, LocalEntryNotFoundError):  # the Hub could not be reached
                raise
            return None  # the source has no card
        return DatasetCard.load(readme).data


def build_card(dataset, transform=None, *, recipe: dict[str, Any] | None = None, source: str | None = None,
               split: str = "train", license: str | None = None, language: str | Sequence[str] | None = None,
               repo_id: str | None = None, analysis=None) -> DatasetCard:
    """The card of `dataset`, the output of `transform` (a transform or the list of steps mapped in
    order) or of the run a `recipe` describes.

    `license` defaults to the source dataset's (its card is read from the Hub or a local folder); when
    neither is known, pass `license="other"` and describe the terms. `language` defaults to the
    source's too. `analysis` is a `hf_synth.analysis.Report` whose tables and figures the card embeds
    (`write_repo` and `publish` make one)."""
    recipe = recipe_of(transform, recipe, source, split)
    source = source or recipe["input"].get("source")
    steps = recipes.transforms(recipe, cache=False)
    main = next((step for step in steps if step.method.command), steps[0])  # the method, not a judge after it
    template, tag, tasks = main.method.card or "_base.md", main.method.card_tag, list(main.method.task_categories)

    hub = on_hub(source) and not recipe["input"].get("local")  # (a local input is recorded by name or relative path)
    license, language, license_from = _license_and_language(source, license, language, hub)
    data = DatasetCardData(
        license=license, language=language, task_categories=tasks, size_categories=[size_category(len(dataset))],
        tags=["synthetic", "hf-synth"] + ([tag] if tag else []),
        source_datasets=[f"extended|{source}"] if hub else None,
        pretty_name=repo_id.split("/")[-1] if repo_id else None,
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILES}]}],
    )
    prefixes = {step.prefix for step in steps}
    unreadable = replies.unreadable_replies(dataset)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                                     keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    content = environment.get_template(template).render(
        card_data=data.to_yaml(), pretty_name=data.pretty_name or f"{main.method.name} data",
        rows=len(dataset), source=source, source_on_hub=hub, **_headline(dataset, main.prefix),
        source_name=Path(source).name if source else None, split=recipe["input"].get("split", split),
        limit=recipe["input"].get("limit"), license=license, license_from=license_from,
        steps=[_step(step) for step in steps], options=main.options(), version=recipe.get("hf_synth", __version__),
        statistics=[_statistics(dataset, step) for step in steps], run=recipe.get("run") or {},
        unreadable=unreadable.assign(of=[int(n) if n == n and n is not None else "" for n in unreadable["of"]])
        .to_markdown(index=False) if not unreadable.empty else None,
        unreadable_advice=replies.ADVICE,
        analysis=_embed(analysis) if analysis is not None else None,
        analysis_missing="not included (write the repository folder with `hf_synth.hub.write_repo` to add them).",
        columns=dataset.column_names,
        source_columns=[c for c in dataset.column_names if c.split("_", 1)[0] not in prefixes],
        repo_id=repo_id or "REPO_ID", recipe_file=recipes.FILE, hf_synth_citation=HF_SYNTH_CITATION,
    )
    return DatasetCard(content)


def recipe_of(transform, recipe, source, split) -> dict[str, Any]:
    """`recipe`, or the recipe of `transform` (one or the list of steps mapped in order)."""
    if recipe is not None:
        return recipe
    if transform is None:
        raise ValueError("pass the transform that made the dataset (transform=) or a recipe=")
    steps = list(transform) if isinstance(transform, (list, tuple)) else [transform]
    return recipes.make(steps, source=source, split=split)


def _license_and_language(source, license, language, hub: bool) -> tuple[str, list[str] | None, str | None]:
    language = [language] if isinstance(language, str) else list(language) if language else None
    license_from = None
    # the source's card is read for a missing license, or for a missing language when that costs no
    # network look-up (a local folder): a Hub look-up offline waits on its retries
    if license is None or (language is None and not hub):
        try:
            with plain_errors(f"read the license of {source!r} from its dataset card",
                              "Pass license= (and language=) yourself."):
                found = source_card_data(source, hub)
        except HFSynthError:
            if license is None:
                raise
            found = None
        if found is not None:
            if license is None and found.license:
                license, license_from = found.license, "the source dataset's card"
            if language is None and found.language:
                language = [found.language] if isinstance(found.language, str) else list(found.language)
    if not license:
        raise InputError(f"The license of the data is unknown{f' (the card of {source!r} names none)' if source else ''}: "
                         "pass license= with the source data's license (e.g. 'cc-by-nc-4.0' for tatsu-lab/alpaca), "
                         "or license='other' and state the terms in the card.")
    return license, language, license_from


def _step(step) -> dict[str, Any]:
    agents = [("the others" if step.llms else "all agents", step.llm), *sorted(step.llms.items())]
    models = [{"agent": agent, "model": llm.model or llm.endpoint_id, "kind": llm.kind, **llm.sampling(),
               "seed": llm.seed, "structured": llm.structured} for agent, llm in agents]
    return {"name": type(step).__name__, "models": models, "prompts": step.prompt_templates(),
            "options_json": json.dumps(step.options(), indent=2, ensure_ascii=False)}


def _statistics(dataset, step) -> dict[str, Any]:
    prefix = step.prefix
    errors = Counter(e for e in dataset[f"{prefix}_error"] if e is not None)
    usage = dataset[f"{prefix}_usage"]
    failed = sum(errors.values())
    return {"step": type(step).__name__, "prefix": prefix, "rows": len(dataset), "failed": failed,
            "failed_share": failed / len(dataset) if len(dataset) else 0.0, "reasons": errors.most_common(5),
            "calls": sum(u["calls"] for u in usage), "prompt_tokens": sum(u["prompt_tokens"] for u in usage),
            "completion_tokens": sum(u["completion_tokens"] for u in usage),
            "reasoning_tokens": sum(u.get("reasoning_tokens") or 0 for u in usage),
            "cost": _total(u.get("cost") for u in usage)}


def _total(costs) -> float | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known) if known else None


def _headline(dataset, prefix: str) -> dict[str, int | None]:
    """What the card's first sentence counts: the rows the method made something of (`succeeded`), and
    of those, the ones it changed (`improved`: an accepted round, where the method counts rounds)."""
    errors = dataset[f"{prefix}_error"]
    succeeded = sum(error is None for error in errors)
    if f"{prefix}_rounds" not in dataset.column_names:
        return {"succeeded": succeeded, "improved": None}
    improved = sum(1 for rounds, error in zip(dataset[f"{prefix}_rounds"], errors)
                   if error is None and (sum(rounds) if isinstance(rounds, list) else rounds))
    return {"succeeded": succeeded, "improved": improved}


def _embed(report) -> str:
    """The report's markdown one heading level down, its links pointing into its folder."""
    folder = report.folder.name
    text = re.sub(r"^(#+) ", r"#\1 ", report.markdown, flags=re.MULTILINE)
    return re.sub(r"\]\(([^)/:]+)\)", rf"]({folder}/\1)", text)
