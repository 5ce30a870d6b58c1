"""The same CoEvol job (full mode, up to 3 rounds, every edit accepted: 24 calls per row) against the
fake server answering after a fixed latency, with `Dataset.map(num_proc=2)` and with `hf_synth.ray.run` on
a local Ray cluster of 2 CPUs (2 actors); the job-wide concurrency is the same for both. Each run starts
from an empty request cache. Reports rows/s with start-up (Ray's cluster start, map's worker start) and
without it, and Ray's ratio to map.

    python scripts/bench_ray.py [--rows 500] [--latency 0.2] [--concurrency 64]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import datasets  # noqa: E402
from benchlib import fake_server, machine, sample_rows, scratch, table  # noqa: E402

from hf_synth import LLM, CoEvolTransform  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    datasets.disable_caching()
    dataset = datasets.Dataset.from_dict(sample_rows(args.rows))
    rows = []
    with fake_server(latency=args.latency, replies="coevol") as url:
        llm = LLM(model="fake-model", base_url=url, max_concurrency=args.concurrency)
        batch = args.concurrency // 2

        os.environ["HF_SYNTH_CACHE"] = scratch("hf_synth_bench_ray_")
        started = time.perf_counter()
        # num_proc=2: each worker gets half the concurrency, as the CLI's --num-proc does
        half = LLM(model="fake-model", base_url=url, max_concurrency=args.concurrency // 2)
        dataset.map(CoEvolTransform(half), batched=True, batch_size=batch, num_proc=2)
        map_wall = time.perf_counter() - started
        rows.append(["Dataset.map(num_proc=2)", map_wall, args.rows / map_wall])

        import ray

        from hf_synth.ray import run

        os.environ["HF_SYNTH_CACHE"] = scratch("hf_synth_bench_ray_")
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            ray.data.DataContext.get_current().enable_progress_bars = False
            up = time.perf_counter()
            run(dataset, CoEvolTransform(llm), actors=2, batch_size=batch)
            done = time.perf_counter()
        finally:
            ray.shutdown()
        rows.append(["hf_synth.ray.run, 2 actors, with start-up", done - started, args.rows / (done - started)])
        rows.append(["hf_synth.ray.run, 2 actors, once started", done - up, args.rows / (done - up)])
    print(f"{args.rows} rows × 24 calls, latency {args.latency} s, concurrency {args.concurrency} for the job; "
          f"{machine()}\n")
    print(table(["run", "wall s", "rows/s"], rows))
    print(f"\nRay / map: {rows[1][2] / rows[0][2]:.2f} with start-up, {rows[2][2] / rows[0][2]:.2f} once started")


if __name__ == "__main__":
    main()
