"""What the benchmarks share: the fake server in a process of its own, input rows, the machine's
description, timing and a Markdown table."""
from __future__ import annotations

import atexit
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "hf_synth" / "data" / "alpaca_sample.jsonl"


def scratch(prefix: str = "hf_synth_bench_") -> str:
    """A new temporary folder (request caches, saved datasets), removed when the benchmark exits: a
    run of them would otherwise leave gigabytes in the temporary directory."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, True)
    return folder


@contextmanager
def fake_server(latency: float = 0.0, replies: str = "coevol", inject: float = 0.0, status: int = 503):
    """The loopback fake OpenAI-compatible server (tests/fake_openai.py) in its own process, answering
    a share `inject` of the requests with HTTP `status` at random; yields its base URL."""
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"), "--latency", str(latency),
                               "--replies", replies, "--inject", str(inject), "--status", str(status)],
                              stdout=subprocess.PIPE, text=True)
    try:
        yield server.stdout.readline().strip()
    finally:
        server.kill()
        server.wait()


def sample_rows(count: int) -> dict[str, list]:
    """`count` Alpaca-style rows: the shipped sample, repeated, each row made unique by its number."""
    sample = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    picked = [sample[i % len(sample)] for i in range(count)]
    return {"instruction": [f"{row['instruction']} (#{i})" for i, row in enumerate(picked)],
            "input": [row["input"] for row in picked], "output": [row["output"] for row in picked]}


def edit_requests(rows: dict[str, list]) -> list[list[dict]]:
    """The messages CoEvol's `edit` mode sends for each of `rows` (one request per row)."""
    from hf_synth import CoEvolTransform

    transform = CoEvolTransform(mode="edit")
    transform.input_columns(list(rows))
    return [list(next(transform.protocol(dict(zip(rows, values)))).messages) for values in zip(*rows.values())]


@contextmanager
def timed():
    """Measures wall time and this process's CPU time (both threads) of the block."""
    result = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield result
    result["wall"], result["cpu"] = time.perf_counter() - wall, time.process_time() - cpu


def children_cpu() -> float:
    """CPU seconds used by the finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def memory_peaks(every: float = 0.02):
    """Samples this process's resident memory during the block; yields a dict that then holds the
    peaks, in MiB, of its anonymous part (heap: Python objects, buffers) and of its file-backed part
    (memory-mapped files such as Arrow tables, and loaded libraries)."""
    peaks = {"anon": 0.0, "file": 0.0}
    stop = threading.Event()

    def sample():
        while True:
            for line in Path("/proc/self/status").read_text().splitlines():
                for name, field in (("anon", "RssAnon:"), ("file", "RssFile:")):
                    if line.startswith(field):
                        peaks[name] = max(peaks[name], int(line.split()[1]) / 1024)
            if stop.wait(every):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peaks
    finally:
        stop.set()
        sampler.join()


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    packages = ", ".join(f"{name} {version(name)}" for name in ("datasets", "openai", "aiohttp"))
    return (f"{os.cpu_count()} × {cpu}, {memory:.0f} GiB, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}; {packages}")


def table(headers: list[str], rows: list[list]) -> str:
    def cell(value):
        return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)
