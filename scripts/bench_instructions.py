"""Instructions per request: the machine instructions the client executes for one request, the whole
stack (as in bench_overhead.py: Dataset.map → CoEvolTransform → runner → door → online transport)
against the bare aiohttp loop, counted by valgrind.

Requests per second on shared virtual cores drift by ±20% from minute to minute; a count of
instructions does not: the same code gives the same count, busy machine or quiet. It is not a time (a
cache miss costs more than an add), so it complements bench_overhead.py rather than replacing it: a
change that takes instructions off the hot path shows here on any machine, whatever the minute.

Each side runs twice under valgrind (callgrind, counting only), with `--small` and `--large`
requests; the difference over the difference in requests leaves out what does not grow with them
(starting Python, imports, opening the cache). The fake server runs outside valgrind.

Usage: python scripts/bench_instructions.py [--small 300] [--large 1300]   (needs valgrind)
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys

import datasets
from bench_overhead import bare_loop
from benchlib import edit_requests, fake_server, machine, sample_rows, scratch, table

from hf_synth import LLM, CoEvolTransform

CONCURRENCY = 64


def run_side(side: str, url: str, rows: int) -> None:
    """One side's requests, in this process (the one valgrind counts)."""
    llm = LLM(model="m", base_url=url, max_concurrency=CONCURRENCY)
    sample = sample_rows(rows)
    if side == "bare":
        bodies = [{"model": llm.model, "messages": messages, **llm.sampling()} for messages in edit_requests(sample)]
        asyncio.run(bare_loop(url, bodies, CONCURRENCY))
    else:
        datasets.disable_progress_bars()
        out = datasets.Dataset.from_dict(sample).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=1000)
        assert out["coevol_error"].count(None) == rows, "every row must be served"


def instructions(side: str, url: str, rows: int) -> int:
    """The instructions valgrind counts in a process that runs `rows` requests of `side`."""
    environment = {**os.environ, "HF_SYNTH_CACHE": scratch()}  # (a new cache: every request is sent)
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
                           "--side", side, "--url", url, "--rows", str(rows)],
                          capture_output=True, text=True, env=environment)
    counted = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or not counted:
        raise SystemExit(f"the {side} side failed under valgrind:\n{done.stderr[-3000:]}")
    return int(counted.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=1300)
    parser.add_argument("--side", choices=("bare", "stack"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args.side, args.url, args.rows)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_instructions.py counts instructions with valgrind, which is not installed here "
                         "(apt install valgrind).")
    per_request = {}
    with fake_server(replies="echo") as url:
        for side in ("bare", "stack"):
            small, large = instructions(side, url, args.small), instructions(side, url, args.large)
            per_request[side] = (large - small) / (args.large - args.small)
    print(machine(), file=sys.stderr)
    print(f"{args.large - args.small:,} requests counted ({args.small:,} and {args.large:,}), {CONCURRENCY} in flight, "
          "latency 0")
    print(table(["side", "instructions per request"], [[side, f"{count:,.0f}"] for side, count in per_request.items()]))
    print(f"the bare loop's instructions per request over the stack's: {per_request['bare'] / per_request['stack']:.2f}")


if __name__ == "__main__":
    main()
