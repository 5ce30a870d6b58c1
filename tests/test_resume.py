"""A run killed with SIGKILL at several points and started again ends with the same dataset as an
uninterrupted run and pays again only for the requests that were in flight at the kills."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import datasets
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

ROWS = 200
CALLS_PER_ROW = 8          # one full CoEvol round
CONCURRENCY = 8
KILL_AFTER = (150, 600, 1200)   # requests the server has seen when we kill the run

JOB = """
import sys, datasets
from hf_synth import LLM, CoEvolTransform
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train")
llm = LLM(model="m", base_url=sys.argv[2], max_concurrency={concurrency})
num_proc = int(sys.argv[4]) or None
ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=50, num_proc=num_proc).save_to_disk(sys.argv[3])
""".format(concurrency=CONCURRENCY)


def cached(folder) -> int:
    with sqlite3.connect(folder / "requests.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


def processes_with(argument: str) -> list[int]:
    """The pids of live processes whose command line holds `argument` (forked workers inherit it)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as file:
                if argument.encode() in file.read().split(b"\0") and \
                        open(f"/proc/{entry}/stat").read().split(") ", 1)[1][0] != "Z":
                    found.append(int(entry))
        except (OSError, ValueError):
            continue
    return found


def settle(server, seconds: float = 1.5) -> None:
    """Wait until the server has seen no request for `seconds` (orphaned workers have stopped)."""
    seen = -1
    while seen != len(server.requests):
        seen = len(server.requests)
        time.sleep(seconds)


@pytest.mark.slow
@pytest.mark.parametrize("num_proc", [0, 2])
def test_killed_runs_resume_and_pay_only_for_the_requests_in_flight(tmp_path, num_proc):
    data = tmp_path / "rows.jsonl"
    datasets.Dataset.from_dict({"instruction": [f"q{i}" for i in range(ROWS)],
                                "output": [f"a{i}" for i in range(ROWS)]}).to_json(data)
    cache = tmp_path / "requests"
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.02) as server:
        def job(output, cache_folder):
            env = {**os.environ, "HF_SYNTH_CACHE": str(cache_folder),
                   "HF_DATASETS_CACHE": str(cache_folder.with_name(cache_folder.name + "_datasets"))}
            command = [sys.executable, "-c", JOB, str(data), server.url, str(output), str(num_proc)]
            return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        assert job(tmp_path / "uninterrupted", tmp_path / "other_requests").wait(300) == 0
        minimum = len(server.requests)
        server.requests.clear()

        for kill_after in KILL_AFTER:
            run = job(tmp_path / "out", cache)
            deadline = time.monotonic() + 120
            while len(server.requests) < kill_after and run.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            assert run.poll() is None, "the run finished before it could be killed"
            run.send_signal(signal.SIGKILL)
            run.wait()
            settle(server)
            # its num_proc workers, busy or idle, exit once their parent is gone (none lingers)
            deadline = time.monotonic() + 60
            while processes_with(str(tmp_path / "out")) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert processes_with(str(tmp_path / "out")) == []
            cached(cache)  # (intact after every kill)
        assert job(tmp_path / "out", cache).wait(300) == 0
        sent = len(server.requests)

    lost = sent - minimum  # paid twice: in flight at a kill
    assert minimum == ROWS * CALLS_PER_ROW and cached(cache) == minimum
    assert lost <= len(KILL_AFTER) * CONCURRENCY * max(num_proc, 1)
    result, uninterrupted = (datasets.load_from_disk(str(tmp_path / name)) for name in ("out", "uninterrupted"))
    assert result.to_list() == uninterrupted.to_list()
    assert result["coevol_error"] == [None] * ROWS and result["coevol_output"][0] == "a0 [edited]"
    print(f"num_proc={num_proc}: {len(KILL_AFTER)} kills, {sent} requests for {minimum} needed ({lost} lost in flight)")
