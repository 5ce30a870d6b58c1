"""The flags every command shares: the LLM endpoint, the run, publishing; and the values they make."""
from __future__ import annotations

import argparse

from ..llm.config import GENERIC_SAMPLING, LLM
from ..llm.structured import DIALECTS


def llm_arguments(parser: argparse.ArgumentParser, sampling: dict | None = None) -> None:
    """The endpoint's options; `sampling` is the method's defaults, shown in the help (an option left
    out stays unset, so that each step of the run takes its own method's)."""
    sampling = {**GENERIC_SAMPLING, **(sampling or {})}
    group = parser.add_argument_group("LLM endpoint (default: the embedded local model)")
    group.add_argument("--model", help="model name, e.g. gpt-4o-mini")
    group.add_argument("--base-url", action="append",
                       help="OpenAI-compatible base URL, e.g. http://host:8000/v1 (vLLM); repeat it for replicas "
                            "of the same model, which share the load")
    group.add_argument("--agent-model", action="append", type=agent_model, metavar="AGENT=MODEL[@URL]",
                       help="give one agent its own model (and endpoint; its other settings are the ones above), e.g. "
                            "--agent-model judge=gpt-4o or --agent-model reviewer_2=qwen2-72b@http://host:8000/v1; "
                            "'reviewer' gives every reviewer its model; repeat for several agents")
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
    group.add_argument("--structured", type=structured, default="auto", metavar="{auto,none,llama.cpp,vllm,sglang,openai}",
                       help="hold the replies a method parses (verdicts, labelled fields, scores) to their shape by "
                            "the endpoint's constrained decoding, in its dialect; auto: llama.cpp for the embedded "
                            "model, none otherwise (docs/structured.md)")
    group.add_argument("--batch-api", nargs="?", const="openai", choices=("openai", "anthropic"),
                       help="send the requests through the endpoint's Batch API, OpenAI's protocol (the default) or "
                            "Anthropic's Message Batches: half the price, done within 24 hours; one batch per step of "
                            "the method, resumed by running the same command again (docs/batch.md)")
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
    key_and_cache_arguments(group)


def key_and_cache_arguments(group) -> None:
    group.add_argument("--api-key-env", default="OPENAI_API_KEY",
                       help="environment variable that holds the API key")
    group.add_argument("--no-cache", action="store_true", help="do not use the request cache")
    group.add_argument("--cache-dir", help="request cache folder (default: $HF_SYNTH_CACHE or ~/.cache/hf_synth)")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="a JSON/JSONL/CSV/Parquet file, a folder saved with save_to_disk, or a Hub dataset id")
    parser.add_argument("--output", required=True, help="folder to save the result to (Dataset.save_to_disk): a new "
                        "path, or the folder of an earlier hf-synth run")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace --output even if hf_synth did not write it (never the input)")
    parser.add_argument("--split", default="train", help="split to read from a Hub dataset or saved DatasetDict")
    parser.add_argument("--limit", type=count, help="only the first N rows")
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
    parser.add_argument("--prices", type=prices, metavar="IN,OUT",
                        help="US$ per million input and output tokens, for the cost shown and capped (a dated table "
                             "knows a few hosted models; docs/cost.md)")
    parser.add_argument("--max-cost", type=float, metavar="USD",
                        help="never spend more than this: a row whose next request could pass it is marked 'not run' "
                             "(needs prices); go on later with --retry-failed and a higher cap")
    parser.add_argument("--max-requests", type=int, metavar="N", help="never send more than N requests (any endpoint)")
    parser.add_argument("--estimate", action="store_true",
                        help="run a sample of rows (cached for the real run) and print the projected requests, tokens, "
                             "cost and time of the whole input; save nothing")
    parser.add_argument("--estimate-rows", type=int, default=20, metavar="N", help="with --estimate: rows in the sample")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run only the failed rows of the earlier run saved in --output again, and save the "
                             "whole result there (the rows that succeeded cost nothing)")


def structured(text: str) -> str | None:
    if text not in ("auto", "none", *DIALECTS):
        raise argparse.ArgumentTypeError(f"{text!r}: give auto, none, {', '.join(DIALECTS)}")
    return None if text == "none" else text


def prices(text: str) -> tuple[float, float]:
    try:
        prompt, completion = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two prices, e.g. 0.15,0.60") from None
    return prompt, completion


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rows (0 or more)")
    return value


def llm_of(args) -> LLM:
    # Limits are for the whole run; each Dataset.map worker process enforces its share.
    workers = getattr(args, "num_proc", None) or 1

    def share(limit):
        return limit and max(1, limit // workers)

    base_url = args.base_url[0] if args.base_url and len(args.base_url) == 1 else args.base_url
    return LLM(model=args.model, base_url=base_url, api_key_env=args.api_key_env,
               temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, seed=args.seed,
               max_concurrency=share(args.max_concurrency), timeout=args.timeout, max_retries=args.max_retries,
               requests_per_minute=share(args.requests_per_minute), tokens_per_minute=share(args.tokens_per_minute),
               system_role=args.system_role, structured=args.structured, batch=args.batch_api or False,
               batch_poll=args.batch_poll, prices=getattr(args, "prices", None))


def agent_model(text: str) -> tuple[str, str, str | None]:
    agent, _, target = text.partition("=")
    model, _, url = target.partition("@")
    if not agent.strip() or not model.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give AGENT=MODEL or AGENT=MODEL@URL, e.g. judge=gpt-4o")
    return agent.strip(), model.strip(), url.strip() or None


def agent_llms_of(args) -> dict[str, LLM]:
    """The agents given their own model by `--agent-model`, each with the run's other LLM settings."""
    base = llm_of(args)
    return {agent: base.replace(model=model, **({"base_url": url} if url else {}))
            for agent, model, url in getattr(args, "agent_model", None) or []}


def caps_of(args) -> dict:
    """The run's caps, each worker process's share of them (`--max-cost`, `--max-requests`)."""
    workers = getattr(args, "num_proc", None) or (getattr(args, "ray_actors", 1) if getattr(args, "ray", None) else 1)
    max_cost, max_requests = getattr(args, "max_cost", None), getattr(args, "max_requests", None)
    return {"max_cost": max_cost / workers if max_cost is not None else None,
            "max_requests": max(1, max_requests // workers) if max_requests is not None else None}


def cache_of(args):
    return False if args.no_cache else (args.cache_dir or True)


def publish_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publishing to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)")
    group.add_argument("--license", help="license of the data, e.g. cc-by-nc-4.0 (default: the source dataset's; "
                       "'other' when you state the terms yourself)")
    group.add_argument("--language", action="append", help="language code of the data, e.g. en; repeat for several")
    group.add_argument("--private", action="store_true", help="create the repository private")
