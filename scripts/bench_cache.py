"""The request cache as it grows: what a batch's look-up of its first requests and a batch's commit
cost, per reply, in a cache of 5,000 to 200,000 replies.

Each step puts a batch's replies (`--batch`, random keys, as SHA-256 keys are) on an event loop, as a
run does, and times the commit `flush` waits for at the batch's end; then it times `get_many` on a
batch of keys the cache does not hold (a new batch's look-up). A commit's cost grows with the cache,
since each random key lands in an index page of its own once the index has more pages than the batch
has keys: that commit is what the end of a `Dataset.map` batch waits for, once the batch's outputs are
built (docs/performance.md).

Usage: python scripts/bench_cache.py [--batch 1000] [--up-to 200000]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time

from benchlib import machine, scratch, table

from hf_synth.llm.cache import RequestCache

SIZES = (5_000, 20_000, 50_000, 100_000, 200_000)
REPLY = {"text": "A reply of some 500 characters. " * 16, "finish_reason": "stop", "prompt_tokens": 120,
         "completion_tokens": 110}


def keys(start: int, count: int) -> list[str]:
    return [hashlib.sha256(str(number).encode()).hexdigest() for number in range(start, start + count)]


async def put_all(cache: RequestCache, batch: list[str]) -> None:
    for number, key in enumerate(batch):
        cache.put(key, REPLY)
        if number % 16 == 15:  # (replies come back a few to each turn of the event loop)
            await asyncio.sleep(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--up-to", type=int, default=200_000)
    args = parser.parse_args()
    cache = RequestCache(scratch())
    stored, rows = 0, []
    for size in [size for size in SIZES if size <= args.up_to]:
        commits, lookups = [], []
        while stored < size:
            batch = keys(stored, args.batch)
            asyncio.run(put_all(cache, batch))
            started = time.perf_counter()
            cache.flush()
            commits.append(time.perf_counter() - started)
            stored += len(batch)
            unknown = keys(10**9 + stored, args.batch)
            started = time.perf_counter()
            found = cache.get_many(unknown)
            lookups.append(time.perf_counter() - started)
            assert not any(found.values()), "keys never stored must be misses"
        last = commits[-5:]  # (the commits at this size, not on the way to it)
        rows.append([f"{size:,}", 1e6 * statistics.median(last) / args.batch,
                     1000 * statistics.median(last), 1e6 * statistics.median(lookups[-5:]) / args.batch])
    cache.close()
    print(machine())
    print(f"batches of {args.batch:,} replies (about 700 bytes each)")
    print(table(["replies in the cache", "commit µs/reply", "a batch's commit, ms", "look-up µs/key"], rows))


if __name__ == "__main__":
    main()
