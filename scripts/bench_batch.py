"""The Batch API path, per method: how many batches a run needs (the protocol's steps, whatever the
number of rows), the requests paid against the requests the online run needs, and the wall time
against steps × the batch latency. The fake server (in this process) holds each batch for
`--batch-latency` seconds; the transport looks every `--poll` seconds.

Usage: python scripts/bench_batch.py [--rows 200] [--batch-latency 1.0] [--poll 0.2]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import datasets
from benchlib import machine, sample_rows, scratch, table, timed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit, r2s_replies, review_replies  # noqa: E402

from hf_synth import LLM, CoEvolTransform, R2STransform, ReviewInstructTransform  # noqa: E402

DOCUMENT = ("Tides are caused by the Moon's gravity pulling on the oceans. The Sun adds a smaller pull. "
            "When both line up, the tides are highest; these are spring tides.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--batch-latency", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.2)
    args = parser.parse_args()
    datasets.disable_progress_bars()
    logging.disable(logging.WARNING)
    alpaca = datasets.Dataset.from_dict(sample_rows(args.rows))
    documents = datasets.Dataset.from_dict({"text": [f"{DOCUMENT} ({i})" for i in range(args.rows)]})
    methods = [("CoEvol, full, 3 rounds", coevol_replies(prefer_edit), alpaca,
                lambda llm, cache: CoEvolTransform(llm, max_rounds=3, cache=cache)),
               ("ReviewInstruct, 3 rounds, 3 reviewers", review_replies(), alpaca,
                lambda llm, cache: ReviewInstructTransform(llm, rounds=3, cache=cache)),
               ("R2S, 3 turns", r2s_replies(), documents, lambda llm, cache: R2STransform(llm, turns=3, cache=cache))]
    results = []
    for label, replies, data, transform in methods:
        with FakeOpenAI(replies) as fake:
            fake.record = True
            data.map(transform(LLM(model="m", base_url=fake.url), scratch()), batched=True,
                     batch_size=args.rows, load_from_cache_file=False)
            needed = len(fake.requests)
            fake.batch_latency = args.batch_latency
            llm = LLM(model="m", base_url=fake.url, batch=True, batch_poll=args.poll)
            os.environ["HF_SYNTH_CACHE"] = scratch()
            with timed() as took:
                data.map(transform(llm, scratch()), batched=True, batch_size=args.rows,
                         load_from_cache_file=False)
            batches = len(fake.batches)
            results.append([label, args.rows, needed, len(fake.batch_requests), len(fake.requests) - needed, batches,
                            took["wall"], batches * args.batch_latency])
    print(machine(), file=sys.stderr)
    print(table(["method", "rows", "requests needed (online)", "paid by batch", "sent online", "batches",
                 "wall s", "batches × latency s"], results))


if __name__ == "__main__":
    main()
