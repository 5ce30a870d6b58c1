"""The commands that are not a method: publish, reproduce, analyze, filter."""
from __future__ import annotations

import time
from pathlib import Path

from ..runs import outputs
from ..errors import HFSynthError
from ..method import resolve
from .flags import cache_of, llm_of
from .run import _publish, _reused, _save, run


def publish(args) -> None:
    from ..runs import recipe as recipes
    from ..runs.inputs import load_input

    if args.local_only and not args.folder:
        raise HFSynthError("--local-only writes the repository folder only: say where with --folder")
    if args.folder:
        outputs.check(args.folder, inputs=[args.dir], overwrite=args.overwrite, flag="--folder")
    recipe = recipes.load(args.dir)
    _publish(load_input(args.dir), recipe, args.repo_id, args, folder=args.folder)


def reproduce(args) -> None:
    from ..runs import recipe as recipes

    recipe = recipes.load(args.recipe)
    given = recipe["input"]
    recorded = recipes.input_path(recipe, args.recipe)
    args.input = args.input or recorded
    if not args.input:
        raise HFSynthError(f"{args.recipe} does not say what the input was: pass --input")
    if args.input == recorded and (given.get("local") or args.input.startswith(("/", "."))) and not Path(args.input).exists():
        raise HFSynthError(f"the recipe's input {args.input} is not here: pass --input with where it is now")
    args.split = args.split or given.get("split") or "train"
    args.limit = args.limit if args.limit is not None else given.get("limit")
    args.batch_size = args.batch_size or (recipe.get("map") or {}).get("batch_size") or 64
    base_url = args.base_url[0] if args.base_url and len(args.base_url) == 1 else args.base_url
    steps = recipes.transforms(recipe, api_key_env=args.api_key_env, cache=cache_of(args), model=args.model,
                               base_url=base_url)
    run(args, steps, f"Reproducing {' → '.join(type(s).__name__ for s in steps)}")


def filter_rows(args) -> None:
    from .. import filters, status
    from ..runs.inputs import load_input

    started = time.monotonic()
    keep = [name.strip() for name in (args.keep or "").split(",") if name.strip()]
    offered = {f.name: f for f in offered_filters()}
    known = ["succeeded", *offered, "wins"]
    unknown = sorted(set(keep) - set(known))
    if unknown:
        raise HFSynthError(f"--keep {','.join(unknown)}: unknown; choose from {', '.join(known)}")
    steps = []
    for name in keep:
        if name == "succeeded":
            steps.append(filters.Succeeded())
        elif name == "wins":
            steps.append(filters.WinFilter(llm_of(args), on_failure=args.on_failure, cache=cache_of(args)))
        else:  # a method's own
            steps.append(resolve(offered[name].predicate)(**{o.name: getattr(args, o.name)
                                                               for o in offered[name].options}))
    if args.min_turns is not None or args.max_turns is not None or args.max_tokens_per_conversation is not None:
        steps.append(filters.ConversationShape(args.min_turns, args.max_turns,
                                               max_tokens=args.max_tokens_per_conversation))
    if args.min_quality is not None:
        steps.append(filters.QualityFilter(llm_of(args), threshold=args.min_quality, on_failure=args.on_failure,
                                           response_column=args.response_column, cache=cache_of(args)))
    if not steps:
        raise HFSynthError("nothing to filter by: give --keep, --min-quality, --min-turns, --max-turns "
                           "or --max-tokens-per-conversation")
    outputs.check(args.output, inputs=[args.input], overwrite=args.overwrite)
    dataset = load_input(args.input, args.split)
    print(f"rows: {len(dataset)}")
    wall_started = time.time()
    judged = [step for step in steps if isinstance(step, filters.JudgedFilter)]
    with status.show(total=len(dataset) * len(judged) or None,
                     model=judged[0].judge.llm.model if judged else None) as live:
        for step in steps:
            dataset = dataset.filter(step, batched=True, batch_size=args.batch_size, num_proc=args.num_proc,
                                     desc=type(step).__name__)
            reused = " (datasets reused this finished filter: no request sent)" if judged and step in judged and \
                _reused(dataset, wall_started) else ""
            print(f"after {type(step).__name__}: {len(dataset)}{reused}")
    _save(dataset, args.output, "filter")
    run = live.counts  # every process's, num_proc workers included
    print(f"this run: {run.sent} requests sent, {run.cached} from cache; time: {time.monotonic() - started:.1f}s")
    print(f"saved to {args.output}")


def offered_filters() -> list:
    """The filters the declared methods offer (`Method.filters`)."""
    from ..method import declared

    return [offered for method in declared() for offered in method.filters]


def analyze(args) -> None:
    from ..analysis import report
    from ..runs.inputs import load_input

    outputs.check(args.output, inputs=[args.input], overwrite=args.overwrite)
    dataset = load_input(args.input, args.split)
    written = report(dataset, args.output)
    outputs.mark(args.output, "analyze")
    print(f"{', '.join(written.methods)} output, {len(dataset)} rows: {len(written.files)} files written to {args.output}")
    print(f"summary: {written.folder / 'summary.md'}")
