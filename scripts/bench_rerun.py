"""Re-run: the single-call job (CoEvol's `edit` mode) over 10,000 rows, then the same job again after it
finished. Twice again: on a dataset loaded from files, where `datasets` reuses the cached result of the
identical `map`, and on an in-memory dataset, which `datasets` cannot cache, so every row runs and every
request is answered by the request cache. Both must send zero requests.

Usage: python scripts/bench_rerun.py [--rows 10000] [--mode edit]
"""
from __future__ import annotations

import argparse
import sys

import datasets
from benchlib import fake_server, machine, sample_rows, scratch, table, timed

from hf_synth import LLM, CoEvolTransform
from hf_synth.status import counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--mode", default="edit", help="CoEvol mode; 'full' makes 24 requests per row")
    args = parser.parse_args()
    datasets.disable_progress_bars()
    folder = scratch()
    datasets.Dataset.from_dict(sample_rows(args.rows)).save_to_disk(f"{folder}/rows")
    on_disk = datasets.load_from_disk(f"{folder}/rows")
    in_memory = datasets.Dataset.from_dict(on_disk.to_dict())
    results = []
    with fake_server(replies="coevol") as url:
        transform = CoEvolTransform(LLM(model="m", base_url=url), mode=args.mode, cache=f"{folder}/requests")
        for label, dataset in (("first run", on_disk), ("again, files (datasets' cache)", on_disk),
                               ("again, in memory (request cache)", in_memory)):
            sent, cached = counts().sent, counts().cached
            with timed() as run:
                out = dataset.map(transform, batched=True)
            assert out["coevol_error"].count(None) == args.rows
            results.append([label, args.rows, counts().sent - sent, counts().cached - cached, run["wall"], run["cpu"]])
    print(machine(), file=sys.stderr)
    print(f"CoEvol {args.mode} mode, {args.rows} rows, latency 0")
    print(table(["run", "rows", "requests sent", "answered from the request cache", "wall s", "CPU s"], results))


if __name__ == "__main__":
    main()
