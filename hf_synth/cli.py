"""hf-synth: better instruction-tuning data with multi-agent LLM methods."""
from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

from . import __version__, outputs, replies
from .errors import HFSynthError
from .llm.config import GENERIC_SAMPLING, LLM
from .llm.structured import DIALECTS
from .methods import r2s, review_instruct
from .methods.coevol import MAX_OPTIMIZE_TOKENS, MAX_ROUNDS, MODES, SAMPLING


def _llm_arguments(parser: argparse.ArgumentParser, sampling: dict | None = None) -> None:
    """The endpoint's options; `sampling` is the method's defaults, shown in the help (an option left
    out stays unset, so that each step of the run takes its own method's)."""
    sampling = {**GENERIC_SAMPLING, **(sampling or {})}
    group = parser.add_argument_group("LLM endpoint (default: the embedded local model)")
    group.add_argument("--model", help="model name, e.g. gpt-4o-mini")
    group.add_argument("--base-url", action="append",
                       help="OpenAI-compatible base URL, e.g. http://host:8000/v1 (vLLM); repeat it for replicas "
                            "of the same model, which share the load")
    group.add_argument("--temperature", type=float,
                       help=f"sampling temperature (default: {sampling['temperature']}, the method's)")
    group.add_argument("--top-p", type=float, help="nucleus sampling: the probability mass sampled from "
                                                   f"(default: {sampling['top_p']}, the method's)")
    group.add_argument("--max-tokens", type=int, help="the most tokens a reply may have; a reply cut there marks "
                                                      f"its row (default: {sampling['max_tokens']}, the method's)")
    group.add_argument("--seed", type=int, help="sampling seed, for endpoints that honour one")
    group.add_argument("--no-system-role", dest="system_role", action="store_false",
                       help="for models without a system role: put each system prompt in front of the first user "
                            "turn (CoEvol Appendix A.2)")
    group.add_argument("--structured", type=_structured, default="auto", metavar="{auto,none,llama.cpp,vllm,sglang,openai}",
                       help="hold the replies a method parses (verdicts, labelled fields, scores) to their shape by "
                            "the endpoint's constrained decoding, in its dialect; auto: llama.cpp for the embedded "
                            "model, none otherwise (docs/structured.md)")
    group.add_argument("--batch-api", action="store_true",
                       help="send the requests through the endpoint's Batch API (OpenAI's protocol): half the price, "
                            "done within 24 hours; one batch per step of the method, resumed by running the same "
                            "command again (docs/batch.md)")
    group.add_argument("--batch-poll", type=float, default=30.0, metavar="SECONDS",
                       help="with --batch-api: how often to look at a batch in flight (less often while it runs long)")
    group.add_argument("--max-concurrency", type=int, default=64,
                       help="requests in flight at most, per replica, for the whole run (divided among --num-proc workers)")
    group.add_argument("--requests-per-minute", type=int, help="a hosted API's request budget for the whole run")
    group.add_argument("--tokens-per-minute", type=int, help="a hosted API's token budget for the whole run")
    group.add_argument("--timeout", type=float, default=600.0,
                       help="seconds for a whole request: connecting, headers and body")
    group.add_argument("--max-retries", type=int, default=5,
                       help="retries of a request that failed by the endpoint's fault (429, 5xx, timeouts)")
    _key_and_cache_arguments(group)


def _key_and_cache_arguments(group) -> None:
    group.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="environment variable that holds the API key")
    group.add_argument("--no-cache", action="store_true", help="do not use the request cache")
    group.add_argument("--cache-dir", help="request cache folder (default: $HF_SYNTH_CACHE or ~/.cache/hf_synth)")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a JSON/JSONL/CSV/Parquet file, a folder saved with save_to_disk, or a Hub dataset id")
    parser.add_argument("--output", required=True, help="folder to save the result to (Dataset.save_to_disk): a new "
                        "path, or the folder of an earlier hf-synth run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    parser.add_argument("--split", default="train", help="split to read from a Hub dataset or saved DatasetDict")
    parser.add_argument("--limit", type=_count, help="only the first N rows")
    parser.add_argument("--batch-size", type=int, default=64, help="rows run concurrently per map batch")
    parser.add_argument("--num-proc", type=int, help="worker processes for Dataset.map")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run on a Ray cluster instead of Dataset.map: its address (auto, ray://head:10001), or "
                             "local to start one on this machine, listening on 127.0.0.1 only (needs the [ray] extra; "
                             "docs/scale-out.md)")
    parser.add_argument("--ray-actors", type=int, default=2,
                        help="with --ray: actors that run the transform; the LLM limits are divided among them")
    parser.add_argument("--ray-checkpoint", metavar="URI",
                        help="with --ray: keep every finished batch in this folder or fsspec URI (s3://..., on "
                             "storage every node sees), so that a re-run of the job on any node is free")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="also publish the result with a dataset card, e.g. me/alpaca-coevol")
    parser.add_argument("--prices", type=_prices, metavar="IN,OUT",
                        help="US$ per million input and output tokens, to show the cost as the run goes "
                             "(known for a few OpenAI models)")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run only the failed rows of the earlier run saved in --output again, and save the "
                             "whole result there (the rows that succeeded cost nothing)")


def _structured(text: str) -> str | None:
    if text not in ("auto", "none", *DIALECTS):
        raise argparse.ArgumentTypeError(f"{text!r}: give auto, none, {', '.join(DIALECTS)}")
    return None if text == "none" else text


def _prices(text: str) -> tuple[float, float]:
    try:
        prompt, completion = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two prices, e.g. 0.15,0.60") from None
    return prompt, completion


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows (0 or more)")
    return value


def _llm(args) -> LLM:
    # Limits are for the whole run; each Dataset.map worker process enforces its share.
    workers = getattr(args, "num_proc", None) or 1

    def share(limit):
        return limit and max(1, limit // workers)

    base_url = args.base_url[0] if args.base_url and len(args.base_url) == 1 else args.base_url
    return LLM(model=args.model, base_url=base_url, api_key_env=args.api_key_env,
               temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
               max_concurrency=share(args.max_concurrency), timeout=args.timeout, max_retries=args.max_retries,
               requests_per_minute=share(args.requests_per_minute), tokens_per_minute=share(args.tokens_per_minute),
               system_role=args.system_role, structured=args.structured, batch=args.batch_api,
               batch_poll=args.batch_poll)


def _cache(args):
    return False if args.no_cache else (args.cache_dir or True)


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publishing to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)")
    group.add_argument("--license", help="license of the data, e.g. cc-by-nc-4.0 (default: the source dataset's; "
                       "'other' when you state the terms yourself)")
    group.add_argument("--language", action="append", help="language code of the data, e.g. en; repeat for several")
    group.add_argument("--private", action="store_true", help="create the repository private")


def _run(args, steps, title: str):
    """Load the input, map each of `steps` over it (e.g. a method, then a judge) — or, with
    --retry-failed, only the failed rows of the earlier run in --output — save the result with its
    recipe, print a summary, publish it if asked; returns the dataset."""
    from . import recipe as recipes
    from .io import load_input
    from . import status
    from .retry import failed_rows, retry_failed
    from .transforms.base import with_empty_outputs

    started, wall_started = time.monotonic(), time.time()
    outputs.check(args.output, inputs=[args.input], overwrite=args.overwrite)
    dataset = load_input(args.input, args.split)
    if args.limit is not None:
        dataset = dataset.select(range(min(args.limit, len(dataset))))
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


def _on_ray(args, dataset, step):
    if args.ray == "local":  # read by Ray when it is imported: a local cluster on 127.0.0.1 only
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from . import ray as on_ray
    except ImportError:
        raise HFSynthError('--ray needs Ray: pip install "hf_synth[ray]"') from None
    on_ray.connect(args.ray)
    return on_ray.to_datasets(on_ray.run(dataset, step, actors=args.ray_actors, batch_size=args.batch_size,
                                         checkpoint=args.ray_checkpoint))


def _retry_plan(args, steps, dataset):
    """The earlier run saved in --output and its failed rows, once it is sure that retrying them mixes
    nothing: the same input, the same method options and models (how requests are sent, and
    max_tokens — the remedy for cut replies — may change; the recipe records it)."""
    from . import recipe as recipes
    from .io import load_input
    from .retry import failed_rows

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
    from . import recipe as recipes

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
    from .hub import publish, write_repo

    card = dict(recipe=recipe, license=args.license, language=args.language, overwrite=getattr(args, "overwrite", False))
    if getattr(args, "local_only", False):
        print(f"repository folder written to {write_repo(dataset, folder, repo_id=repo_id, **card)}")
    else:
        print(f"published: {publish(dataset, repo_id, private=args.private or None, folder=folder, **card)}")


def _publish_command(args) -> None:
    from . import recipe as recipes
    from .io import load_input

    if args.local_only and not args.folder:
        raise HFSynthError("--local-only writes the repository folder only: say where with --folder")
    if args.folder:
        outputs.check(args.folder, inputs=[args.dir], overwrite=args.overwrite, flag="--folder")
    recipe = recipes.load(args.dir)
    _publish(load_input(args.dir), recipe, args.repo_id, args, folder=args.folder)


def _reproduce(args) -> None:
    from . import recipe as recipes

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
    steps = recipes.transforms(recipe, api_key_env=args.api_key_env, cache=_cache(args), model=args.model,
                               base_url=base_url)
    _run(args, steps, f"Reproducing {' → '.join(type(s).__name__ for s in steps)}")


def _coevol(args) -> None:
    from .transforms import CoEvolTransform

    transform = CoEvolTransform(_llm(args), max_rounds=args.max_rounds, mode=args.mode, max_turns=args.max_turns,
                                max_optimize_tokens=args.max_optimize_tokens or None,
                                instruction_column=args.instruction_column, input_column=args.input_column,
                                response_column=args.response_column, messages_column=args.messages_column,
                                cache=_cache(args))
    _run(args, [transform], f"CoEvol ({args.mode}, up to {args.max_rounds} rounds)")


def _review_instruct(args) -> None:
    from .transforms import DifficultyTransform, ReviewInstructTransform

    transform = ReviewInstructTransform(_llm(args), rounds=args.rounds, num_reviewers=args.reviewers,
                                        perspectives=args.perspective, direction=args.direction,
                                        word_limit=args.word_limit or None, instruction_column=args.instruction_column,
                                        input_column=args.input_column, cache=_cache(args))
    judge = [DifficultyTransform(_llm(args), cache=_cache(args))] if args.difficulty else []
    grown = _run(args, [transform, *judge], f"ReviewInstruct ({args.rounds} rounds, {transform.num_reviewers} reviewers)")
    if args.difficulty:
        from .analysis import difficulty_by_round

        print("difficulty by round (shares of the labelled user turns):")
        print(difficulty_by_round(grown).to_string(index=False, float_format=lambda x: f"{x:.1%}"))


def _r2s(args) -> None:
    from .transforms import DialogueEvalTransform, R2STransform

    transform = R2STransform(_llm(args), turns=args.turns, strategy=args.strategy, text_column=args.text_column,
                             max_document_chars=args.max_document_chars, cache=_cache(args))
    judge = [DialogueEvalTransform(_llm(args), text_column=args.text_column, max_document_chars=args.max_document_chars,
                                   cache=_cache(args))] if args.evaluate else []
    dialogues = _run(args, [transform, *judge], f"R2S ({args.strategy}, {args.turns} turns)")
    if args.evaluate:
        print(evaluation_summary(dialogues))
    if args.gllm:
        from .export import gllm_pairs

        pairs = gllm_pairs(dialogues, text_column=args.text_column, max_document_chars=args.max_document_chars)
        pairs.to_json(args.gllm, force_ascii=False)
        print(f"{len(pairs)} document → annotated dialogue pairs written to {args.gllm}")


def evaluation_summary(dataset) -> str:
    """The means of the nine metrics (and the deterministic coverage) over the evaluated rows."""
    from .analysis.r2s import evaluation_means

    means = evaluation_means(dataset)
    return "evaluation means: " + ", ".join(
        f"{name} {row['mean']:.2f} (n={row['rows scored']:.0f})" if row["rows scored"] else f"{name} none parsed"
        for name, row in means.T.iterrows())


def _filter(args) -> None:
    from . import filters, status
    from .io import load_input

    started = time.monotonic()
    keep = [name.strip() for name in (args.keep or "").split(",") if name.strip()]
    unknown = sorted(set(keep) - set(FILTERS))
    if unknown:
        raise HFSynthError(f"--keep {','.join(unknown)}: unknown; choose from {', '.join(FILTERS)}")
    steps = []
    for name in keep:
        if name == "succeeded":
            steps.append(filters.Succeeded())
        elif name == "evolved":
            steps.append(filters.Evolved(args.min_rounds, args.turns))
        elif name == "grounded":
            steps.append(filters.Grounded(args.min_share))
        elif name == "wins":
            steps.append(filters.WinFilter(_llm(args), on_failure=args.on_failure, cache=_cache(args)))
    if args.min_turns is not None or args.max_turns is not None or args.max_tokens_per_conversation is not None:
        steps.append(filters.ConversationShape(args.min_turns, args.max_turns,
                                               max_tokens=args.max_tokens_per_conversation))
    if args.min_quality is not None:
        steps.append(filters.QualityFilter(_llm(args), threshold=args.min_quality, on_failure=args.on_failure,
                                           response_column=args.response_column, cache=_cache(args)))
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


FILTERS = ("succeeded", "evolved", "grounded", "wins")


def _analyze(args) -> None:
    from .analysis import report
    from .io import load_input

    outputs.check(args.output, inputs=[args.input], overwrite=args.overwrite)
    dataset = load_input(args.input, args.split)
    written = report(dataset, args.output)
    outputs.mark(args.output, "analyze")
    print(f"{', '.join(written.methods)} output, {len(dataset)} rows: {len(written.files)} files written to {args.output}")
    print(f"summary: {written.folder / 'summary.md'}")


def summary(dataset, prefixes: list[str], seconds: float, run_stats=None) -> str:
    """A few lines about a finished run of the steps with `prefixes` (the method first): rows, errors,
    rounds, calls and tokens of every step, what this run sent, time."""
    prefix = prefixes[0]
    errors = [e for e in dataset[f"{prefix}_error"] if e is not None]
    lines = [f"rows: {len(dataset)}, failed: {len(errors)}"]
    for reason, count in collections.Counter(errors).most_common(3):
        lines.append(f"  {count} × {reason}")
    if f"{prefix}_rounds" in dataset.column_names:
        rounds = collections.Counter()
        for value, error in zip(dataset[f"{prefix}_rounds"], dataset[f"{prefix}_error"]):
            if error is None:
                rounds.update(value if isinstance(value, list) else [value])
        lines.append("accepted rounds (rounds: rows): " + ", ".join(f"{k}: {rounds[k]}" for k in sorted(rounds)))
    if prefix == "coevol":
        from .analysis.coevol import why_unchanged

        explained = why_unchanged(dataset)
        if explained:
            lines.append(explained)
    if f"{prefix}_trace" in dataset.column_names and prefix == "review":
        directions = collections.Counter(r["direction"] for trace in dataset["review_trace"] if trace
                                         for r in trace if r["next_instruction"] is not None)
        if directions:
            lines.append("next questions: " + ", ".join(f"{d or 'undecided'}: {n}" for d, n in directions.most_common()))
    if prefix == "r2s":
        from .analysis.r2s import dialogue_types, grounding

        types = [(t, n) for t, n in dialogue_types(dataset).most_common() if t]
        if types:
            lines.append("dialogue types: " + ", ".join(f"{t}: {n}" for t, n in types))
        found, spans = grounding(dataset)
        if spans:
            lines.append(f"Find spans found in the document: {found} of {spans} ({found / spans:.0%})")
        notes = sum(note is not None for note in dataset["r2s_note"])
        if notes:
            lines.append(f"rows with a note (e.g. truncated document): {notes}")
    for step in prefixes[1:]:
        failed = sum(e is not None for e in dataset[f"{step}_error"])
        lines.append(f"{step} step: {len(dataset) - failed} rows done, {failed} failed")
    usage = [u for step in prefixes for u in dataset[f"{step}_usage"]]
    calls = sum(u["calls"] for u in usage)
    prompt = sum(u["prompt_tokens"] for u in usage)
    completion = sum(u["completion_tokens"] for u in usage)
    # every call the rows needed, served or cached; "this run" says what was sent
    lines.append(f"calls: {calls} ({prompt} prompt + {completion} completion tokens)")
    unused = replies.describe(replies.unreadable_replies(dataset))
    if unused:
        lines.append(unused)
    if run_stats is not None:
        lines.append(f"this run: {run_stats.sent} requests sent, {run_stats.cached} from cache, "
                     f"{run_stats.retries} retries")
    lines.append(f"time: {seconds:.1f}s")
    return "\n".join(lines)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, unless there is none to show."""

    def _get_help_string(self, action):
        # a switch that turns something off (store_false) defaults to "not given", not to True
        off_switch = isinstance(action, argparse._StoreFalseAction)
        return action.help if action.default in (None, False) or off_switch else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-synth", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hf_synth {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser = functools.partial(commands.add_parser, formatter_class=_HelpFormatter)

    coevol = commands.add_parser("coevol", help="improve responses with CoEvol (debate, advise, edit, judge)")
    _run_arguments(coevol)
    method = coevol.add_argument_group("CoEvol")
    method.add_argument("--max-rounds", type=int, default=MAX_ROUNDS,
                        help="debate-advise-edit-judge rounds at most (the paper's K)")
    method.add_argument("--mode", choices=MODES, default="full", help="ablation of the paper's Table 3")
    method.add_argument("--max-turns", type=int, help="optimize at most N assistant turns per conversation")
    method.add_argument("--max-optimize-tokens", type=_count, default=MAX_OPTIMIZE_TOKENS,
                        help="without --max-turns: stop optimizing a conversation once it reaches this many tokens "
                             "(the authors' rule); 0 optimizes every turn")
    method.add_argument("--instruction-column", default="instruction", help="the instruction column")
    method.add_argument("--input-column", default="input", help="the optional input (context) column")
    method.add_argument("--response-column", help="default: output or response")
    method.add_argument("--messages-column", help="multi-turn data (default: messages or conversations)")
    _llm_arguments(coevol, SAMPLING)
    _publish_arguments(coevol)
    coevol.set_defaults(run=_coevol)

    review = commands.add_parser("review-instruct",
                                 help="grow seed instructions into multi-turn conversations (ReviewInstruct)")
    _run_arguments(review)
    method = review.add_argument_group("ReviewInstruct")
    method.add_argument("--rounds", type=int, default=review_instruct.ROUNDS,
                        help="user turns per conversation, the seed included")
    method.add_argument("--reviewers", type=int, help=f"number of reviewers (default {review_instruct.NUM_REVIEWERS}; "
                        "0 skips the Review stage)")
    method.add_argument("--perspective", action="append",
                        help="a reviewer's point of view, e.g. 'a security engineer'; repeat for each reviewer")
    method.add_argument("--instruction-column", default="instruction", help="the instruction column")
    method.add_argument("--input-column", default="input", help="the optional input (context) column")
    method.add_argument("--difficulty", action="store_true",
                        help="also label every user turn easy/medium/hard with the LLM and print the share per round")
    method.add_argument("--direction", choices=review_instruct.DIRECTIONS, default="chairman",
                        help="who decides depth or breadth: the Chairman from the reviews (the authors' way), or the "
                             "majority of the reviewers' verdict lines")
    method.add_argument("--word-limit", type=_count, default=review_instruct.WORD_LIMIT,
                        help="every reply within this many words (the authors' 300); 0 for no limit")
    _llm_arguments(review, review_instruct.SAMPLING)
    _publish_arguments(review)
    review.set_defaults(run=_review_instruct)

    r2s_ = commands.add_parser("r2s", help="turn raw documents into knowledge-grounded dialogues (R2S, Chain of Dialogue)")
    _run_arguments(r2s_)
    method = r2s_.add_argument_group("R2S")
    method.add_argument("--turns", type=int, default=r2s.TURNS, help="user/assistant turns per dialogue")
    method.add_argument("--strategy", choices=r2s.STRATEGIES, default="cod",
                        help="cod: the Chain of Dialogue; direct, cot: the paper's baselines; gllm: a generator "
                             "fine-tuned on gllm_pairs (name it with --model)")
    method.add_argument("--text-column", default="text", help="the document column")
    method.add_argument("--max-document-chars", type=int, default=r2s.MAX_DOCUMENT_CHARS,
                        help="longer documents are cut at a sentence end, with a note in r2s_note")
    method.add_argument("--evaluate", action="store_true",
                        help="also score every dialogue on the paper's nine metrics (eval_* columns) and print the means")
    method.add_argument("--gllm", metavar="FILE.jsonl",
                        help="also write (document → annotated dialogue) pairs to train a generator model")
    _llm_arguments(r2s_)
    _publish_arguments(r2s_)
    r2s_.set_defaults(run=_r2s)

    publish = commands.add_parser("publish", help="publish a finished run to the Hub with a generated dataset card")
    publish.add_argument("dir", help="the --output folder of an hf-synth run (it holds the data and the recipe)")
    publish.add_argument("repo_id", help="the Hub dataset repository, e.g. me/alpaca-coevol (created if needed)")
    publish.add_argument("--folder", help="write the repository folder here too, to inspect or upload later")
    publish.add_argument("--local-only", action="store_true", help="only write --folder; upload nothing")
    publish.add_argument("--overwrite", action="store_true",
                         help="replace --folder even if hf_synth did not write it (never the run's folder)")
    _publish_arguments(publish)
    publish.set_defaults(run=_publish_command)

    reproduce = commands.add_parser("reproduce", help="run a recipe again (hf_synth_recipe.json of a run or a published dataset)")
    reproduce.add_argument("recipe", help="a recipe file, or a folder that holds one")
    reproduce.add_argument("--output", required=True, help="folder to save the result to: a new path, or the folder "
                           "of an earlier hf-synth run")
    reproduce.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    reproduce.add_argument("--input", help="the input to use instead of the recipe's")
    reproduce.add_argument("--split", help="default: the recipe's")
    reproduce.add_argument("--limit", type=int, help="default: the recipe's")
    reproduce.add_argument("--batch-size", type=int, help="default: the recipe's")
    reproduce.add_argument("--num-proc", type=int, help="worker processes for Dataset.map")
    reproduce.add_argument("--model", help="run every step on this model instead of the recipe's")
    reproduce.add_argument("--base-url", action="append",
                           help="send every step to this endpoint instead of the recipe's; repeat it for replicas")
    reproduce.add_argument("--push-to-hub", metavar="REPO_ID", help="also publish the result")
    _key_and_cache_arguments(reproduce)
    _publish_arguments(reproduce)
    reproduce.set_defaults(run=_reproduce)

    analyze = commands.add_parser("analyze", help="tables and figures of a finished run (rounds, lengths, directions, …)")
    analyze.add_argument("input", help="a dataset written by hf-synth (a save_to_disk folder) or a data file")
    analyze.add_argument("--output", required=True, help="folder for the CSV tables, PNG/HTML figures and summary.md "
                         "(a new path, or one hf-synth wrote)")
    analyze.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    analyze.add_argument("--split", default="train", help="split of a saved DatasetDict or Hub dataset")
    analyze.set_defaults(run=_analyze)

    filter_ = commands.add_parser("filter", help="keep the rows worth training on (plain and LLM-judged filters)")
    filter_.add_argument("input", help="a dataset written by hf-synth (a save_to_disk folder), a data file, or a Hub id")
    filter_.add_argument("--output", required=True, help="folder to save the kept rows to (a new path, or one hf-synth wrote)")
    filter_.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    filter_.add_argument("--split", default="train", help="split of a saved DatasetDict or Hub dataset")
    filter_.add_argument("--batch-size", type=int, default=64, help="rows judged concurrently per batch")
    filter_.add_argument("--num-proc", type=int, help="worker processes for Dataset.filter")
    group = filter_.add_argument_group("filters, applied in this order")
    group.add_argument("--keep", help=f"comma-separated: {', '.join(FILTERS)} (wins: the evolved response beats "
                       "the original under the pairwise judge)")
    group.add_argument("--min-rounds", type=int, default=1, help="for evolved: accepted CoEvol rounds")
    group.add_argument("--turns", choices=("any", "all"), default="any", help="for evolved, on conversations")
    group.add_argument("--min-share", type=float, default=1.0, help="for grounded: share of Find spans found")
    group.add_argument("--min-turns", type=int, help="conversations with at least N user turns")
    group.add_argument("--max-turns", type=int, help="conversations with at most N user turns")
    group.add_argument("--max-tokens-per-conversation", type=int,
                       help="conversations of at most N tokens (the embedded model's tokenizer)")
    group.add_argument("--min-quality", type=float,
                       help="AlpaGasus-style LLM rating from 0 to 5; AlpaGasus kept rows rated 4.5 or more")
    group.add_argument("--response-column", help="the response the quality judge rates (default: output or response)")
    group.add_argument("--on-failure", choices=("keep", "drop"), default="keep",
                       help="rows the judge could not decide (kept with a warning, or dropped)")
    _llm_arguments(filter_)
    filter_.set_defaults(run=_filter)
    return parser


def _interrupt_main_process_only(main_pid: int):
    """SIGINT and SIGTERM stop the run once, in the main process: forked `num_proc` workers (which
    inherit this handler) ignore Ctrl-C, which reaches the whole process group, and die quietly on
    SIGTERM, which the main process's pool sends them as it shuts down."""
    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        if signum == signal.SIGTERM:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
    return handler


def _interrupted(exc: BaseException | None) -> bool:
    """Whether `exc` is, or was raised while handling, a KeyboardInterrupt: `Dataset.map` with
    `num_proc` replaces it with a pool TimeoutError as it waits for its workers."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False


_VALUE = r"(\.\.\.|\[\.\.\.\]|'[^']*'|\"[^\"]*\")?"
_PYTHON_ADVICE = re.compile(rf"LLM\(([a-z_]+)={_VALUE}\)|\b([a-z_]+)={_VALUE}(?![\w\[]|\.\w)")


def in_cli_terms(message: str, parser: argparse.ArgumentParser) -> str:
    """An error written in Python's terms (`instruction_column=`, `LLM(api_key=...)`, `license='other'`)
    with the flags that say the same on the command line (`--instruction-column`, `--api-key-env NAME`,
    `--license other`)."""
    flags = {"api_key": "--api-key-env NAME", "perspectives": "--perspective"}
    for action in parser._actions:
        for command in (action.choices or {}) if isinstance(action, argparse._SubParsersAction) else ():
            for option in action.choices[command]._actions:
                if option.option_strings:
                    flags.setdefault(option.dest, option.option_strings[-1])

    def flag(match: re.Match) -> str:
        name, value = (match[1], match[2]) if match[1] else (match[3], match[4])
        if name not in flags:
            return match[0]
        value = value.strip("'\"") if value and value[0] in "'\"" else ""
        return f"{flags[name]} {value}".strip()

    return _PYTHON_ADVICE.sub(flag, message)


def _log_status_lines() -> None:
    """Without a terminal the live status is a log line every 30 s (and one at the end): show them."""
    log = logging.getLogger("hf_synth.status")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _log_status_lines()
    handler = _interrupt_main_process_only(os.getpid())
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        args.run(args)
    except HFSynthError as exc:
        print(f"error: {in_cli_terms(str(exc), parser)}", file=sys.stderr)
        return 1
    except BaseException as exc:
        if not _interrupted(exc):
            raise
        print("interrupted: completed requests are cached; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        for sig, action in previous.items():
            signal.signal(sig, action)
    return 0


if __name__ == "__main__":
    sys.exit(main())
