"""Overhead per call: requests per second the whole stack sustains on one process (Dataset.map →
CoEvolTransform → runner → the LLM door and its request cache → endpoint → online transport) against
a bare aiohttp loop sending the same requests, both to the fake server (latency 0) in a process of its
own.

Usage: python scripts/bench_overhead.py [--rows 5000] [--concurrency 64] [--profile]
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile

import aiohttp
import datasets
from benchlib import edit_requests, fake_server, machine, sample_rows, table, timed

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
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--profile", action="store_true", help="print where the stack's CPU goes")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    os.environ["HF_SYNTH_CACHE"] = tempfile.mkdtemp(prefix="hf_synth_bench_")
    rows = sample_rows(args.rows)
    with fake_server(replies="echo") as url:
        llm = LLM(model="m", base_url=url, max_concurrency=args.concurrency)
        transform = CoEvolTransform(llm, mode="edit")
        bodies = [{"model": llm.model, "messages": messages, **llm.sampling()} for messages in edit_requests(rows)]
        asyncio.run(bare_loop(url, bodies[:500], args.concurrency))  # warm up the server
        with timed() as bare:
            asyncio.run(bare_loop(url, bodies, args.concurrency))

        dataset = datasets.Dataset.from_dict(rows)
        dataset.select(range(100)).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True)  # warm up
        profiler = cProfile.Profile()
        if args.profile:  # the engine runs on the process loop's thread: profile that thread
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), loop.process_loop()).result()
            loop.process_loop().call_soon_threadsafe(profiler.enable)
        sent = counts().sent
        with timed() as stack:
            out = dataset.map(transform, batched=True, batch_size=1000)
        if args.profile:
            loop.process_loop().call_soon_threadsafe(profiler.disable)
        sent = counts().sent - sent
        # the same map on new rows with the live status shown (counts written twice a second, a display
        # thread), then once more without it: the request cache grows with every run, so the status is
        # compared with the runs on either side of it
        def fresh(tag):
            return datasets.Dataset.from_dict({**rows, "instruction": [f"{i} {tag}" for i in rows["instruction"]]})

        with timed() as shown, status.show(total=args.rows, stream=io.StringIO()) as live:
            fresh("again").map(transform, batched=True, batch_size=1000)
        with timed() as after:
            fresh("once more").map(transform, batched=True, batch_size=1000)
    assert sent == args.rows and out["coevol_error"].count(None) == args.rows, "every row must be served"
    assert live.counts.sent == args.rows, "the status counts every request"
    print(machine(), file=sys.stderr)
    ratio = (args.rows / stack["wall"]) / (args.rows / bare["wall"])
    print(table(["client", "requests", "wall s", "requests/s", "CPU ms/request", "vs bare loop"], [
        ["bare aiohttp loop", args.rows, bare["wall"], args.rows / bare["wall"], 1000 * bare["cpu"] / args.rows, 1.0],
        ["hf_synth (Dataset.map, CoEvol edit)", sent, stack["wall"], sent / stack["wall"],
         1000 * stack["cpu"] / sent, ratio],
        ["the same with the live status shown", args.rows, shown["wall"], args.rows / shown["wall"],
         1000 * shown["cpu"] / args.rows, (args.rows / shown["wall"]) / (args.rows / bare["wall"])],
        ["the same again, without it", args.rows, after["wall"], args.rows / after["wall"],
         1000 * after["cpu"] / args.rows, (args.rows / after["wall"]) / (args.rows / bare["wall"])],
    ]))
    if args.profile:
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
