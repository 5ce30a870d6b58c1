"""Print the "Real conditions" table of docs/reliability.md: each condition that once broke a promise,
run against the fake OpenAI-compatible server on loopback through the online transport, with what
happened and how long it took.

    python scripts/reliability_table.py
"""
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import datasets  # noqa: E402
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit  # noqa: E402

from hf_synth import LLM, CoEvolTransform, HFSynthError  # noqa: E402
from hf_synth.retry import retry_failed  # noqa: E402

CONTEXT = "This model's maximum context length is 8192 tokens."


def rows(count: int, long_from: int | None = None) -> datasets.Dataset:
    long_from = count if long_from is None else long_from
    return datasets.Dataset.from_dict({
        "instruction": [f"task {i}" + (" word" * 3000 if i >= long_from else "") for i in range(count)],
        "output": [f"answer {i}" for i in range(count)]})


def beyond_context(body):
    return ("status", 400, {}) if len(str(body["messages"])) > 10_000 else None


def edit(llm, **options):
    return CoEvolTransform(llm, mode="edit", **options)


def outcome(out) -> str:
    failed = sum(e is not None for e in out["coevol_error"])
    return f"{len(out) - failed} done, {failed} marked"


def attempt(run) -> str:
    try:
        return run()
    except HFSynthError as error:
        return f"stopped: {type(error).__name__}: {str(error)[:90]}…"


def bad_rows(server):
    server.fault_for, server.error_message = beyond_context, CONTEXT
    llm = LLM(model="m", base_url=server.url, max_retries=3)
    runs = [outcome(rows(128, 110).map(edit(llm, cache=False), batched=True, batch_size=16)) for _ in range(2)]
    return f"run 1: {runs[0]}; run 2: {runs[1]}; {len(server.requests)} requests for 256 rows"


def proxy_timeouts(fault):
    def scenario(server):
        server.fault_for = lambda body: fault if len(str(body["messages"])) > 10_000 else None
        llm = LLM(model="m", base_url=server.url, max_retries=2, timeout=1.5)
        runs = [attempt(lambda: outcome(rows(128, 68).map(edit(llm), batched=True, batch_size=64))) for _ in range(2)]
        return f"run 1: {runs[0]}; run 2: {runs[1]}; {len(server.requests)} requests"
    return scenario


def spread_500s(server):
    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if int(
        body["messages"][-1]["content"].split("task ", 1)[1].split("\n", 1)[0]) % 20 == 7 else None
    return attempt(lambda: outcome(rows(1000).map(edit(LLM(model="m", base_url=server.url), cache=False),
                                                  batched=True, batch_size=1000)))


def stops_serving(server):
    llm = LLM(model="m", base_url=server.url, max_concurrency=4, max_retries=1)
    rows(20).map(edit(llm), batched=True)
    server.fault_for = lambda body: ("status", 503, {"Retry-After": "0"})
    before = len(server.requests)
    said = attempt(lambda: outcome(rows(300).map(edit(llm), batched=True)))
    return f"{said.split(' (the last')[0]}; {len(server.requests) - before} requests after the outage began"


def key_variables(_):
    from hf_synth.llm.secret import GIVEN_PREFIX

    before = {name for name in os.environ if name.startswith(GIVEN_PREFIX)}
    llms = [LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-one-key-0000000000") for _ in range(30_000)]
    added = len({name for name in os.environ if name.startswith(GIVEN_PREFIX)} - before)
    del llms
    left = len({name for name in os.environ if name.startswith(GIVEN_PREFIX)} - before)
    return f"{added} variable while they lived, {left} after"


def window(server):
    llm = LLM(model="m", base_url=server.url, max_retries=1, max_concurrency=4)
    server.fault_for = lambda body: ("status", 503, {"Retry-After": "0"})
    first = attempt(lambda: outcome(rows(40).map(edit(llm), batched=True)))
    server.fault_for, server.error_message = beyond_context, CONTEXT
    second = attempt(lambda: outcome(rows(12, 0).map(edit(llm), batched=True)))
    return f"outage run: {first.split(':')[0]}; next run (12 over-long rows first): {second}"


def dropped(server):
    server.faults = ["close"] * 8
    out = rows(4).map(edit(LLM(model="m", base_url=server.url, max_concurrency=4)), batched=True)
    return f"{outcome(out)}; {len(server.requests)} requests"


def refused(_):
    with FakeOpenAI() as down:
        url = down.url
    return attempt(lambda: outcome(rows(100).map(CoEvolTransform(LLM(model="m", base_url=url), max_rounds=1),
                                                 batched=True)))


def two_keys(server):
    for key in ("sk-first", "sk-second"):
        rows(3).map(edit(LLM(model="m", base_url=server.url + ("/" if key == "sk-second" else ""), api_key=key),
                         cache=False), batched=True)
    return "keys sent: " + ", ".join(h["Authorization"].removeprefix("Bearer ") for h in server.headers)


SPAWN = """
import sys, multiprocess, datasets
from hf_synth import LLM, CoEvolTransform
multiprocess.set_start_method("spawn", force=True)
if __name__ == "__main__":
    ds = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(8)], "output": ["a"] * 8})
    ds.map(CoEvolTransform(LLM(model="m", base_url=sys.argv[1], api_key="sk-given"), mode="edit"),
           batched=True, batch_size=2, num_proc=2)
"""


def spawn(server):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "job.py").write_text(SPAWN)
        subprocess.run([sys.executable, str(Path(folder) / "job.py"), server.url], capture_output=True, timeout=300,
                       env={**os.environ, "OPENAI_API_KEY": "sk-environment"}, check=True)
    sent = [h["Authorization"].removeprefix("Bearer ") for h in server.headers]
    return f"{len(sent)} requests, keys sent: {sorted(set(sent))}"


def no_protocol(kind):
    def scenario(server):
        server.fault_for = lambda body: kind
        llm = LLM(model="m", base_url=server.url, max_retries=1)
        stopped = attempt(lambda: outcome(rows(4).map(edit(llm), batched=True)))
        sent = len(server.requests)
        server.fault_for = None
        return f"{stopped.split(':')[0]} after {sent} requests; fixed: {outcome(rows(4).map(edit(llm), batched=True))}"
    return scenario


def trickle(part):
    def scenario(server):
        # row 0's reply takes ~30 s in all, every gap 0.1 s
        server.fault_for = lambda body: ("trickle", part, 0.1) if "task 0\n" in body["messages"][-1]["content"] else None
        llm = LLM(model="m", base_url=server.url, timeout=2, max_retries=0)
        started = time.monotonic()
        out = rows(3).map(edit(llm, cache=False), batched=True)
        return f"{outcome(out)} in {time.monotonic() - started:.1f} s with timeout=2"
    return scenario


def damaged(where):
    def scenario(server):
        llm = LLM(model="m", base_url=server.url)
        rows(100).map(edit(llm), batched=True)
        from hf_synth.llm.door import shared

        for cache in shared().caches.values():
            cache.close()
        shared().caches.clear()
        path = Path(os.environ["HF_SYNTH_CACHE"]) / "requests.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = path.stat().st_size
        with open(path, "r+b") as file:
            file.seek(size // 3 if where == "pages" else 0)
            file.write(os.urandom(size // 3) if where == "pages" else b"no database" * 20)
        before = len(server.requests)
        out = rows(100).map(edit(llm), batched=True)
        return f"{outcome(out)}; {len(server.requests) - before} of 100 requested again"
    return scenario


def cache_is_a_file(server):
    blocker = Path(os.environ["HF_SYNTH_CACHE"]).with_name("a-file")
    blocker.write_text("")
    os.environ["HF_SYNTH_CACHE"] = str(blocker)
    started = time.monotonic()
    result = attempt(lambda: outcome(rows(3).map(edit(LLM(model="m", base_url=server.url)), batched=True)))
    return f"{result.split(':')[0]}: CacheError in {time.monotonic() - started:.2f} s, {len(server.requests)} requests"


def identical(server):
    server.latency = 0.2
    same = datasets.Dataset.from_dict({"instruction": ["one task"] * 10, "output": ["one answer"] * 10})
    out = same.map(CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1, cache=False), batched=True)
    return f"{outcome(out)}; {len(server.requests)} requests (8 per distinct row)"


def retry(server):
    with tempfile.TemporaryDirectory() as folder:
        rows(10).to_json(Path(folder) / "in.jsonl")
        source = datasets.load_dataset("json", data_files=str(Path(folder) / "in.jsonl"), split="train")
        server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if any(
            f"task {i}\n" in body["messages"][-1]["content"] for i in (3, 7)) else None
        transform = edit(LLM(model="m", base_url=server.url, max_retries=1))
        out = source.map(transform, batched=True)
        sent = len(server.requests)
        again = source.map(transform, batched=True)
        rerun, sent = len(server.requests) - sent, len(server.requests)
        server.fault_for = None
        fixed = retry_failed(again, transform)
        return (f"first run {outcome(out)}; re-run {outcome(again)} with {rerun} requests (datasets reused the map); "
                f"retry_failed: {outcome(fixed)} with {len(server.requests) - sent} requests")


def uneven_turn_keys(server):
    turns = [[{"role": "user", "content": "hi", "weight": 0}, {"role": "assistant", "content": "hello", "weight": 1}],
             [{"role": "system", "content": "Be brief.", "name": "rules"}, {"role": "user", "content": "why?"},
              {"role": "assistant", "content": "because"}],
             [{"from": "human", "value": "x?"}, {"from": "gpt", "value": "y", "weight": 1}]] * 10
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chats.jsonl"
        path.write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
        chats = datasets.load_dataset("json", data_files=str(path), split="train")
        out = chats.map(edit(LLM(model="m", base_url=server.url)), batched=True)
    return f"{outcome(out)}; {len(server.requests)} requests (10 copies of 3 conversations: 3 distinct requests)"


def cli_error(*args) -> str:
    result = subprocess.run([sys.executable, "-m", "hf_synth.cli", *args], capture_output=True, text=True, timeout=300)
    lines = result.stderr.strip().splitlines()
    return f"exit {result.returncode}, {len(lines)} line(s) on stderr: `{lines[-1][:110]}…`"


def latin1_byte(server):
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "latin.jsonl"
        data.write_bytes(b'{"instruction": "fine", "output": "x"}\n{"instruction": "caf\xe9", "output": "y"}\n')
        said = cli_error("coevol", str(data), "--output", str(Path(folder) / "out"), "--model", "m",
                         "--base-url", server.url)
    return f"{said.replace(folder, '…')}; {len(server.requests)} requests"


def empty_split(server):
    from hf_synth.runs.inputs import load_input

    features = datasets.Features({"instruction": datasets.Value("string"), "output": datasets.Value("string")})
    with tempfile.TemporaryDirectory() as folder:
        datasets.DatasetDict({"train": rows(2).cast(features), "test": rows(0).cast(features)}).save_to_disk(folder)
        return f"train: {len(load_input(folder, 'train'))} rows; test: {len(load_input(folder, 'test'))} rows, typed"


def killed_worker(server):
    import signal

    import psutil

    server.latency = 0.5
    with tempfile.TemporaryDirectory() as folder:
        rows(200).to_json(Path(folder) / "in.jsonl")
        process = subprocess.Popen(
            [sys.executable, "-m", "hf_synth.cli", "coevol", str(Path(folder) / "in.jsonl"), "--output",
             str(Path(folder) / "o"), "--model", "m", "--base-url", server.url, "--num-proc", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while len(server.requests) < 4:
            time.sleep(0.1)
        senders = [child for child in psutil.Process(process.pid).children() if child.net_connections(kind="tcp")]
        senders[0].send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    lines = stderr.strip().splitlines()
    return f"exit {process.returncode}, {len(lines)} line(s) on stderr: `{lines[-1][:80]}…`"


SCENARIOS = [
    ("128 rows, the last 18 beyond the context (400), batches of 16, run twice", bad_rows),
    ("an outage (every request 503), then a run whose first 12 rows are over-long", window),
    ("128 rows, the last 60 answered 504 by a proxy, batches of 64, run twice", proxy_timeouts(("status", 504, {"Retry-After": "0"}))),
    ("the same, the last 60 slower than timeout=1.5 s", proxy_timeouts(("sleep", 3))),
    ("1,000 rows in one batch, 5% of them (spread) always answered 500", spread_500s),
    ("20 rows served, then every request 503, 300 rows, max_concurrency=4", stops_serving),
    ("30,000 LLM(api_key=...) with one key", key_variables),
    ("8 connections dropped at the start of a 4-row run", dropped),
    ("nobody listening at base_url, 100 rows", refused),
    ("two LLMs on one URL (one with a trailing /), two keys", two_keys),
    ("num_proc=2 with spawn workers, OPENAI_API_KEY set to another key", spawn),
    ("every reply's content is an object, 4 rows", no_protocol("dict_content")),
    ("every reply's JSON is cut halfway, 4 rows", no_protocol("cut_json")),
    ("one of 3 replies trickled one byte every 0.1 s (body)", trickle("body")),
    ("one of 3 replies trickled one byte every 0.1 s (status line and headers too)", trickle("headers")),
    ("a third of the cache file's pages overwritten, 100 rows", damaged("pages")),
    ("the cache file's header overwritten, 100 rows", damaged("header")),
    ("HF_SYNTH_CACHE pointing at a file", cache_is_a_file),
    ("10 identical rows in one batch, CoEvol full mode, 1 round", identical),
    ("2 of 10 rows failed by a lasting 500, then the endpoint recovers", retry),
    ("30 conversations whose turns carry uneven keys (a weight, a name, ShareGPT and OpenAI turns mixed)",
     uneven_turn_keys),
    ("a JSONL with one Latin-1 byte, through the CLI", latin1_byte),
    ("a saved DatasetDict with an empty split", empty_split),
    ("every reply's body is not UTF-8, 4 rows", no_protocol("not_utf8")),
    ("a num_proc=2 worker killed (SIGKILL) mid-run, through the CLI", killed_worker),
]


def main() -> None:
    logging.disable(logging.WARNING)
    datasets.disable_progress_bars()
    print("| condition | what happened | seconds |")
    print("| --- | --- | --- |")
    for title, scenario in SCENARIOS:
        with tempfile.TemporaryDirectory() as folder, FakeOpenAI(coevol_replies(prefer_edit)) as server:
            os.environ["HF_SYNTH_CACHE"] = str(Path(folder) / "cache")
            started = time.monotonic()
            result = scenario(server)
            print(f"| {title} | {result} | {time.monotonic() - started:.1f} |", flush=True)


if __name__ == "__main__":
    main()
