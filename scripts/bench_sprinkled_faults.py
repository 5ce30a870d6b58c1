"""Throughput and lost rows when a hosted API sprinkles faults: 5,000 rows (CoEvol edit, one request a
row) at 256 in flight against 200 ms of latency, with no faults, with 5% of the requests answered 429
at random (no Retry-After), and with 10% answered 503 at random. The fake server runs in a process of
its own.

Usage: python scripts/bench_sprinkled_faults.py [--rows 5000] [--concurrency 256] [--latency 0.2]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import datasets
from benchlib import fake_server, machine, sample_rows, scratch, table, timed

from hf_synth import LLM, CoEvolTransform
from hf_synth.llm.door import endpoints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    logging.disable(logging.WARNING)
    os.environ["HF_SYNTH_CACHE"] = scratch()
    dataset = datasets.Dataset.from_dict(sample_rows(args.rows))
    results, fault_free = [], None
    for label, inject, status in (("no faults", 0.0, 503), ("5% answered 429 at random", 0.05, 429),
                                  ("10% answered 503 at random", 0.10, 503)):
        with fake_server(args.latency, replies="echo", inject=inject, status=status) as url:
            llm = LLM(model="m", base_url=url, max_concurrency=args.concurrency)
            with timed() as took:
                out = dataset.map(CoEvolTransform(llm, mode="edit", cache=False), batched=True, batch_size=args.rows)
            endpoint = endpoints(llm)[0]
            failed = sum(error is not None for error in out["coevol_error"])
            fault_free = fault_free or took["wall"]
            results.append([label, took["wall"], took["wall"] / fault_free, failed, endpoint.limit.cuts,
                            int(endpoint.limit.limit)])
    print(machine(), file=sys.stderr)
    print(table(["faults", "wall s", "vs no faults", "rows failed", "limit cuts", "limit at the end"], results))


if __name__ == "__main__":
    main()
