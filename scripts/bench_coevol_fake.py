"""Throughput of CoEvol (full mode, 3 accepted rounds = 24 calls/row) against the loopback fake
server, and the cost of a re-run. Usage: python scripts/bench_coevol_fake.py [ROWS] [LATENCY_S]"""
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ["HF_SYNTH_CACHE"] = tempfile.mkdtemp(prefix="hf_synth_bench_")

import datasets  # noqa: E402
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit  # noqa: E402

from hf_synth import LLM, CoEvolTransform  # noqa: E402
from hf_synth.runner import stats  # noqa: E402


def main(rows: int = 200, latency: float = 0.0) -> None:
    datasets.disable_progress_bars()
    with FakeOpenAI(coevol_replies(prefer_edit), latency=latency) as server:
        ds = datasets.Dataset.from_dict({"instruction": [f"q{i}" for i in range(rows)],
                                         "output": [f"a{i}" for i in range(rows)]})
        llm = LLM(model="m", base_url=server.url)
        for label in ("first run", "re-run"):
            sent, wall, cpu = stats().sent, time.perf_counter(), time.process_time()
            ds.map(CoEvolTransform(llm, max_rounds=3), batched=True, batch_size=rows)
            wall, cpu, sent = time.perf_counter() - wall, time.process_time() - cpu, stats().sent - sent
            print(f"| {label} | {rows} | {sent} | {wall:.2f} | {cpu:.2f} | {rows / wall:.1f} |")


if __name__ == "__main__":
    print("| run | rows | requests sent | wall s | CPU s (client + server) | rows/s |\n|---|---|---|---|---|---|")
    main(*(convert(arg) for convert, arg in zip((int, float), sys.argv[1:])))
