"""A method command's run: load the input, map the steps (or retry the failed rows), save the result
with its recipe, print what happened, publish it if asked."""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

from .. import replies
from ..runs import outputs
from ..errors import HFSynthError
from ..llm.config import LLM
from ..method import by_prefix


def run(args, steps, title: str):
    """Load the input, map each of `steps` over it (e.g. a method, then a judge) — or, with
    --retry-failed, only the failed rows of the earlier run in --output — save the result with its
    recipe, print a summary, publish it if asked; returns the dataset."""
    from ..runs import recipe as recipes
    from ..runs.inputs import load_input
    from .. import status
    from ..retry import failed_rows, retry_failed
    from ..transforms.base import with_empty_outputs

    started, wall_started = time.monotonic(), time.time()
    outputs.check(args.output, inputs=[args.input], overwrite=args.overwrite)
    dataset = load_input(args.input, args.split)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    if len(dataset):
        steps[0].input_columns(dataset.column_names)  # a missing column is said before the run starts
    print(f"{title} over {len(dataset)} rows with {steps[0].llm!r}", file=sys.stderr)
    retrying = getattr(args, "retry_failed", False)
    if retrying:
        previous, failed = _retry_plan(args, steps, dataset)
    with status.show(total=(len(failed) if retrying else len(dataset)) * len(steps),
                     prices=getattr(args, "prices", None), model=steps[0].llm.model,
                     batch=steps[0].llm.batch) as live:
        if retrying:
            dataset = retry_failed(previous, steps, batch_size=args.batch_size, num_proc=args.num_proc)
        elif len(dataset) == 0:
            dataset = with_empty_outputs(dataset, steps)  # Dataset.map skips an empty dataset
        else:
            for step in steps:
                if getattr(args, "ray", None):
                    dataset = _on_ray(args, dataset, step)
                    continue
                dataset = dataset.map(step, batched=True, batch_size=args.batch_size, num_proc=args.num_proc,
                                      desc=type(step).__name__.removesuffix("Transform"))
            if _reused(dataset, wall_started):
                failed = len(failed_rows(dataset, steps))
                print(f"datasets reused the finished map of this input and settings ({len(dataset)} rows, {failed} "
                      f"failed; no request sent){'; to run the failed rows again, add --retry-failed' if failed else ''}",
                      file=sys.stderr)
    seconds = time.monotonic() - started
    run_stats = live.counts  # every process's, workers included
    recipe = recipes.make(steps, source=args.input, split=args.split, limit=args.limit, batch_size=args.batch_size,
                          seconds=seconds, run_stats=run_stats, folder=args.output)
    if retrying:  # the recipe stays the earlier run's, and says what the retry did and with what
        earlier = recipes.load(args.output)
        retry = {"rows": len(failed), "run": recipe["run"]}
        if recipe["steps"] != earlier["steps"]:
            retry["steps"] = recipe["steps"]
        recipe = {**earlier, "retries": [*earlier.get("retries", []), retry]}
    _save(dataset, args.output, args.command, recipe)
    print(summary(dataset, [step.prefix for step in steps], seconds, run_stats))
    print(f"saved to {args.output}")
    if args.push_to_hub:
        _publish(dataset, recipe, args.push_to_hub, args)
    return dataset


def estimate_only(args, transform) -> None:
    """`--estimate`: run a sample of the input and print what the whole run would take; save nothing."""
    from ..runs.estimation import estimate
    from ..runs.inputs import load_input

    dataset = load_input(args.input, args.split)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
    print(f"estimating {transform.method.name} over {len(dataset)} rows from {min(args.estimate_rows, len(dataset))} "
          f"of them, with {transform.llm!r}", file=sys.stderr)
    print("\n".join(estimate(dataset, transform, rows=args.estimate_rows).lines()))


def _on_ray(args, dataset, step):
    if args.ray == "local":  # read by Ray when it is imported: a local cluster on 127.0.0.1 only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from .. import ray as on_ray
    except ImportError:
        raise HFSynthError('--ray needs Ray: pip install "hf_synth[ray]"') from None
    _quiet_ray()
    on_ray.connect(args.ray)
    return on_ray.to_datasets(on_ray.run(dataset, step, actors=args.ray_actors, batch_size=args.batch_size,
                                         checkpoint=args.ray_checkpoint))


def _retry_plan(args, steps, dataset):
    """The earlier run saved in --output and its failed rows, once it is sure that retrying them mixes
    nothing: the same input, the same method options and models (how requests are sent, and
    max_tokens — the remedy for cut replies — may change; the recipe records it)."""
    from ..runs import recipe as recipes
    from ..runs.inputs import load_input
    from ..retry import failed_rows

    if not (Path(args.output) / "dataset_info.json").exists():
        raise HFSynthError(f"--retry-failed runs the failed rows of an earlier run saved in --output, and "
                           f"{args.output} holds none: run without --retry-failed first.")
    previous = load_input(args.output)
    if len(previous) != len(dataset):
        raise HFSynthError(f"--retry-failed: {args.output} holds {len(previous)} rows but the input gives "
                           f"{len(dataset)}; pass the same input, --split and --limit as the earlier run.")
    changed = _first_difference(previous.select_columns(dataset.column_names), dataset)
    if changed is not None:
        raise HFSynthError(f"--retry-failed: row {changed} of the input differs from the row the run in {args.output} "
                           "was made from; run the edited input into a new --output, without --retry-failed.")
    mixed = _mixed_setting(recipes.load(args.output)["steps"], [step.settings() for step in steps])
    if mixed:
        raise HFSynthError(f"--retry-failed would mix runs: the rows in {args.output} were made with {mixed}; retry "
                           "with the same settings, or run into a new --output without --retry-failed.")
    failed = failed_rows(previous, steps)
    print(f"retrying {len(failed)} failed rows of {len(dataset)}", file=sys.stderr)
    cut = [row for row in failed if any("cut at max_tokens" in str(previous[row][f"{step.prefix}_error"])
                                        for step in steps)]
    if cut:
        print(f"{len(cut)} of them failed on a reply cut at max_tokens: they are asked again with the same budget "
              "and will likely be cut again; pass a larger --max-tokens to give them room", file=sys.stderr)
    return previous, failed


# LLM settings a retry may change: how requests are sent, and the output budget
_RETRY_MAY_CHANGE = {field.name for field in dataclasses.fields(LLM) if field.metadata.get("kind") == "transport"} | {
    "max_tokens"}


def _mixed_setting(earlier: list[dict], now: list[dict]) -> str | None:
    """The first setting, in words, in which the steps `now` differ from the `earlier` ones in what
    they produce; None when they do not."""
    now = json.loads(json.dumps(now, default=str))  # as a recipe holds them
    if [step["transform"] for step in earlier] != [step["transform"] for step in now]:
        return f"the steps {[step['transform'] for step in earlier]}, not {[step['transform'] for step in now]}"
    for before, after in zip(earlier, now):
        for name in sorted(set(before["options"]) | set(after["options"])):
            if before["options"].get(name) != after["options"].get(name):
                return f"{name}={before['options'].get(name)!r}, not {after['options'].get(name)!r}"
        pairs = [("", before["llm"], after["llm"])] + [
            (f"{agent}'s ", before.get("llms", {}).get(agent, {}), after.get("llms", {}).get(agent, {}))
            for agent in sorted(set(before.get("llms", {})) | set(after.get("llms", {})))]
        for whose, old, new in pairs:
            for name in sorted((set(old) | set(new)) - _RETRY_MAY_CHANGE):
                if old.get(name) != new.get(name):
                    return f"the {whose}{name} {old.get(name)!r}, not {new.get(name)!r}"
    return None


def _first_difference(earlier, now) -> int | None:
    """The first row in which two datasets of the same length and columns differ, or None."""
    for start in range(0, len(now), 10_000):
        a, b = earlier[start:start + 10_000], now[start:start + 10_000]
        if a != b:
            return start + next(i for i in range(len(next(iter(b.values()), []))) if any(
                a[column][i] != b[column][i] for column in b))
    return None


def _reused(dataset, since: float) -> bool:
    """Whether `datasets` answered the map from its cache (its files are older than this run)."""
    files = [entry["filename"] for entry in dataset.cache_files]
    return bool(files) and all(os.path.getmtime(name) < since for name in files)


def _save(dataset, folder, command: str, recipe: dict | None = None) -> None:
    """Save to `folder` (already checked by `outputs.check`) with its recipe and hf_synth's mark,
    replacing what is there only once the new copy is complete: the dataset may be read from the old
    one, and a run killed while saving leaves the old one whole."""
    from ..runs import recipe as recipes

    folder = Path(folder)
    scratch = folder.with_name(f"{folder.name}.saving-{os.getpid()}")
    # an empty dataset saved in 0 shards does not load again (datasets 4-5): give it one
    dataset.save_to_disk(str(scratch), num_shards=1 if len(dataset) == 0 else None)
    if recipe is not None:
        recipes.save(recipe, scratch)
    outputs.mark(scratch, command)
    if folder.exists() or folder.is_symlink():
        old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
        folder.rename(old)
        scratch.rename(folder)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
    else:
        scratch.rename(folder)


def _publish(dataset, recipe, repo_id: str, args, folder=None) -> None:
    from ..hub import publish, write_repo

    card = dict(recipe=recipe, license=args.license, language=args.language, overwrite=getattr(args, "overwrite", False))
    if getattr(args, "local_only", False):
        print(f"repository folder written to {write_repo(dataset, folder, repo_id=repo_id, **card)}")
    else:
        print(f"published: {publish(dataset, repo_id, private=args.private or None, folder=folder, **card)}")


def summary(dataset, prefixes: list[str], seconds: float, run_stats=None) -> str:
    """A few lines about a finished run of the steps with `prefixes` (the method first): rows, errors,
    what the method did (its declared `outcome`), calls and tokens of every step, what this run sent, time."""
    prefix = prefixes[0]
    errors = [e for e in dataset[f"{prefix}_error"] if e is not None]
    lines = [f"rows: {len(dataset)}, failed: {len(errors)}"]
    for reason, count in collections.Counter(errors).most_common(3):
        lines.append(f"  {count} × {reason}")
    outcome = by_prefix(prefix).hook("outcome") if by_prefix(prefix) is not None else None
    if outcome is not None:
        lines += outcome(dataset)
    for step in prefixes[1:]:
        failed = sum(e is not None for e in dataset[f"{step}_error"])
        lines.append(f"{step} step: {len(dataset) - failed} rows done, {failed} failed")
    usage = [u for step in prefixes for u in dataset[f"{step}_usage"]]
    calls = sum(u["calls"] for u in usage)
    prompt = sum(u["prompt_tokens"] for u in usage)
    completion = sum(u["completion_tokens"] for u in usage)
    reasoning = sum(u.get("reasoning_tokens") or 0 for u in usage)
    costs = [u["cost"] for u in usage if u.get("cost") is not None]
    # every call the rows needed, served or cached; "this run" says what was sent
    lines.append(f"calls: {calls} ({prompt} prompt + {completion} completion tokens"
                 + (f", {reasoning} of them reasoning" if reasoning else "")
                 + (f"; ${sum(costs):,.4f} when first paid" if costs else "") + ")")
    unused = replies.describe(replies.unreadable_replies(dataset))
    if unused:
        lines.append(unused)
    if run_stats is not None:
        lines.append(f"this run: {run_stats.sent} requests sent, {run_stats.cached} from cache, "
                     f"{run_stats.retries} retries"
                     + (f"; cost ${run_stats.cost_microusd / 1e6:,.4f}" if run_stats.cost_microusd else ""))
    capped = sum(1 for step in prefixes for error in dataset[f"{step}_error"] if error and error.startswith("not run:"))
    if capped:
        lines.append(f"{capped} rows not run: a cap was reached; what was paid is cached, so running the same command "
                     "with --retry-failed and a higher --max-cost (or --max-requests) pays only for the rest")
    lines.append(f"time: {seconds:.1f}s")
    return "\n".join(lines)


def _quiet_ray() -> None:
    """The CLI's run has its own status line and one-sentence errors: Ray's progress lines, its
    warnings and its logged copy of an actor's exception would only bury them. (Ray's log files keep
    everything; an error that is not ours is still raised with its traceback.)"""
    import warnings

    import ray.data

    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # its core's stderr lines, read at ray.init
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"ray(\.|$)")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = context.print_on_execution_start = False
