"""Overhead per call: requests per second the whole stack sustains on one process (Dataset.map →
CoEvolTransform → runner → the LLM door and its request cache → endpoint → online transport) against
a bare aiohttp loop sending the same requests, both to the fake server (latency 0) in a process of its
own.

The two alternate, round after round, each round's stack on new rows (the request cache never answers),
and each round's ratio is against the bare loop run just before it: on shared virtual cores the speed of
the same code drifts by ±20% from minute to minute, and a single pair measures the drift as much as the
code. The figure is the median of the rounds' ratios; every round is printed. A last round shows the
live status (counts written twice a second, a display thread).

Usage: python scripts/bench_overhead.py [--rows 5000] [--rounds 9] [--concurrency 64] [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import statistics
import sys

import aiohttp
import datasets
from benchlib import edit_requests, fake_server, machine, sample_rows, scratch, table, timed

from hf_synth import LLM, CoEvolTransform, status
from hf_synth.llm import loop
from hf_synth.status import counts


async def bare_loop(url: str, bodies: list[dict], concurrency: int) -> None:
    """The least a client can do: POST each body, parse the JSON, take the text."""
    async with aiohttp.ClientSession() as session:
        free = asyncio.Semaphore(concurrency)

        async def one(body):
            async with free:
                async with session.post(f"{url}/chat/completions", json=body) as response:
                    return (await response.json())["choices"][0]["message"]["content"]

        await asyncio.gather(*(one(body) for body in bodies))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="print where the stack's CPU goes (first round)")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    os.environ["HF_SYNTH_CACHE"] = scratch()
    rows = sample_rows(args.rows)

    def fresh(tag):  # the same rows, made new: the request cache does not know them
        return datasets.Dataset.from_dict({**rows, "instruction": [f"{i} {tag}" for i in rows["instruction"]]})

    results, ratios = [], []
    with fake_server(replies="echo") as url:
        llm = LLM(model="m", base_url=url, max_concurrency=args.concurrency)
        transform = CoEvolTransform(llm, mode="edit")
        bodies = [{"model": llm.model, "messages": messages, **llm.sampling()} for messages in edit_requests(rows)]
        asyncio.run(bare_loop(url, bodies[:500], args.concurrency))  # warm up the server
        fresh("warm-up").select(range(100)).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True)
        profiler = cProfile.Profile()
        for round_ in range(args.rounds + 1):
            shown = round_ == args.rounds
            with timed() as bare:
                asyncio.run(bare_loop(url, bodies, args.concurrency))
            dataset = fresh(round_)
            if args.profile and round_ == 0:  # the engine runs on the process loop's thread: profile that thread
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop.process_loop()).result()
                loop.process_loop().call_soon_threadsafe(profiler.enable)
            sent = counts().sent
            with timed() as stack, (status.show(total=args.rows, stream=io.StringIO()) if shown else io.StringIO()):
                out = dataset.map(transform, batched=True, batch_size=1000)
            if args.profile and round_ == 0:
                loop.process_loop().call_soon_threadsafe(profiler.disable)
            assert counts().sent - sent == args.rows and out["coevol_error"].count(None) == args.rows, \
                "every row must be served, by a request"
            ratio = bare["wall"] / stack["wall"]
            ratios += [] if shown else [ratio]
            results.append([f"{round_ + 1}{' (live status shown)' if shown else ''}", args.rows / bare["wall"],
                            1000 * bare["cpu"] / args.rows, args.rows / stack["wall"], 1000 * stack["cpu"] / args.rows,
                            ratio])
    print(machine(), file=sys.stderr)
    print(f"{args.rows:,} requests a round, {args.concurrency} in flight, latency 0")
    print(table(["round", "bare loop requests/s", "bare loop CPU ms/request", "hf_synth requests/s",
                 "hf_synth CPU ms/request", "vs bare loop"], results))
    print(f"hf_synth vs the bare loop, median of {args.rounds} rounds: {statistics.median(ratios):.2f} "
          f"(from {min(ratios):.2f} to {max(ratios):.2f})")
    if args.profile:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
