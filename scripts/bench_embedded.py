"""The embedded model: completion tokens per second of CoEvol (`edit` mode, then full mode, 1 round) on
the embedded llama.cpp servers, against a bare aiohttp loop sending the same edit requests to the same
servers, and to one server using every core. llama-cpp-python's server has no parallel slots (it
answers one request at a time), so the embedded default runs one single-threaded server per core.

Usage: python scripts/bench_embedded.py [--rows 8] [--max-tokens 128]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys

import aiohttp
import datasets
from benchlib import edit_requests, machine, sample_rows, table, timed

from hf_synth import LLM, CoEvolTransform
from hf_synth.llm.local import _start, _wait_until_answering, embedded_server_urls


async def bare_loop(urls: list[str], bodies: list[dict]) -> int:
    """Sends the bodies, one at a time per server; returns the completion tokens received."""
    queue = list(bodies)
    tokens = 0

    async def worker(session, url):
        nonlocal tokens
        while queue:
            async with session.post(f"{url}/chat/completions", json=queue.pop(0)) as response:
                tokens += (await response.json())["usage"]["completion_tokens"]

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session, url) for url in urls))
    return tokens


def llama_server(threads: int) -> tuple[subprocess.Popen, str]:
    """One more llama.cpp server, started the way the embedded model starts its own."""
    server, url, log = _start(threads)
    _wait_until_answering(server, url, log)
    return server, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    rows = sample_rows(args.rows)
    llm = LLM(max_tokens=args.max_tokens)
    bodies = [{"model": "embedded", "messages": messages, **llm.sampling()} for messages in edit_requests(rows)]
    results = []

    def bare(label, urls):
        asyncio.run(bare_loop(urls, bodies[:len(urls)]))  # warm up
        with timed() as run:
            tokens = asyncio.run(bare_loop(urls, bodies))
        results.append([label, len(bodies), tokens, run["wall"], tokens / run["wall"]])

    def stack(label, transform):
        with timed() as run:
            out = datasets.Dataset.from_dict(rows).map(transform, batched=True)
        usage = out["coevol_usage"]
        tokens = sum(u["completion_tokens"] for u in usage)
        results.append([label, sum(u["calls"] for u in usage), tokens, run["wall"], tokens / run["wall"]])

    cores = os.cpu_count() or 1
    server, url = llama_server(threads=cores)
    try:
        bare(f"bare loop, 1 server × {cores} threads", [url])
    finally:
        server.kill()
    urls = embedded_server_urls()
    bare(f"bare loop, {len(urls)} servers × {max(1, cores // len(urls))} thread (the embedded default)", urls)
    stack("hf_synth CoEvol edit, embedded default", CoEvolTransform(llm, mode="edit", cache=False))
    stack("hf_synth CoEvol full, 1 round, embedded default", CoEvolTransform(llm, max_rounds=1, cache=False))
    print(machine(), file=sys.stderr)
    print(f"SmolLM2-135M-Instruct Q4_1 on llama-cpp-python's server, {args.rows} rows, max_tokens {args.max_tokens}; "
          "the bare loops send the edit requests, one at a time per server")
    print(table(["run", "requests", "completion tokens", "wall s", "tokens/s"], results))


if __name__ == "__main__":
    main()
