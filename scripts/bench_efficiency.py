"""Efficiency against the ideal: CoEvol, full mode, 3 rounds with every edit accepted (24 calls per row),
against the fake server answering after a fixed latency L, with at most C requests in flight.

No run can beat max(critical path, work / concurrency) = max(15 hops × L, calls × L / C); efficiency is
that bound over the measured wall time.

Usage: python scripts/bench_efficiency.py [--rows 1000] [--latency 0.2] [--concurrency 64 256] [--batch-size 0] [--num-proc 1]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys

import datasets
from benchlib import fake_server, machine, sample_rows, scratch, table, timed

from hf_synth import LLM, CoEvolTransform

ROUNDS = 3
CALLS_PER_ROUND = 8   # debate 2 × 2, advise 1, edit 1, judge 2 (both orders)
HOPS_PER_ROUND = 5    # debate 2, advise 1, edit 1, judge 1: the requests that must wait for one another


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch-size", type=int, nargs="+", default=[0],
                        help="Dataset.map batch sizes to try (default: all rows in one batch)")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1],
                        help="Dataset.map workers; the concurrency is divided among them")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    dataset = datasets.Dataset.from_dict(sample_rows(args.rows))
    results = []
    with fake_server(latency=args.latency, replies="coevol") as url:
        for concurrency, batch_size, num_proc in itertools.product(args.concurrency, args.batch_size, args.num_proc):
            batch_size = batch_size or args.rows // num_proc
            llm = LLM(model="m", base_url=url, max_concurrency=concurrency // num_proc)
            transform = CoEvolTransform(llm, max_rounds=ROUNDS, cache=scratch())
            with timed() as run:
                out = dataset.map(transform, batched=True, num_proc=num_proc if num_proc > 1 else None,
                                  batch_size=batch_size, load_from_cache_file=False)
            calls = sum(usage["calls"] for usage in out["coevol_usage"])
            assert calls == args.rows * ROUNDS * CALLS_PER_ROUND and out["coevol_rounds"].count(ROUNDS) == args.rows
            bound = max(ROUNDS * HOPS_PER_ROUND * args.latency, calls * args.latency / concurrency)
            cpu = run["cpu"] if num_proc == 1 else None  # workers' CPU is not this process's
            results.append([concurrency, batch_size, num_proc, calls, bound, run["wall"], bound / run["wall"],
                            "" if cpu is None else 1000 * cpu / calls])
    print(machine(), file=sys.stderr)
    print(f"CoEvol full mode, {ROUNDS} rounds accepted, {args.rows} rows, latency {args.latency * 1000:g} ms")
    print(table(["C", "batch size", "num_proc", "calls", "bound s", "wall s", "efficiency", "client CPU ms/call"], results))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
