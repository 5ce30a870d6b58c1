"""The live status: its numbers are the run's own accounting, workers report into it, it advances
while the run goes, and without a terminal it is a log line."""
import io
import logging
import re
import threading

import datasets
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform, status


def rows(count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(count)],
                                       "output": [f"answer {i}" for i in range(count)]})


def test_the_counts_are_the_runs_own_accounting():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        server.fault_for = lambda body: 400 if "task 3\n" in body["messages"][-1]["content"] else None
        llm = LLM(model="m", base_url=server.url)
        with status.show(total=10, stream=io.StringIO()) as live:
            out = rows(10).map(CoEvolTransform(llm, mode="edit"), batched=True)
            again = rows(10).map(CoEvolTransform(llm, mode="edit"), batched=True)  # from the request cache
    counts = live.counts
    assert counts.rows == 20 and counts.rows_failed == 2 and counts.in_flight == 0
    assert counts.rows_paid == 11  # the first run's 10, and the refused row asked again; 9 rows were free
    # the row refused with a 400 is asked again by the second run (failures are not cached)
    assert counts.sent == 9 and counts.failed == 2 and len(server.requests) == 11
    assert counts.cached == 9
    usage = [u for u in out["coevol_usage"]]
    assert counts.prompt_tokens == sum(u["prompt_tokens"] for u in usage)  # the first run's, all sent
    assert counts.completion_tokens == sum(u["completion_tokens"] for u in usage)
    assert again["coevol_error"] == out["coevol_error"]


def test_num_proc_workers_report_into_the_same_status():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        with status.show(total=12, stream=io.StringIO()) as live:
            rows(12).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True,
                         batch_size=3, num_proc=2)
    assert live.counts.rows == 12 and live.counts.sent == len(server.requests) == 12


def test_it_advances_while_the_run_goes_and_logs_without_a_terminal(caplog):
    seen = []
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.2) as server, caplog.at_level(logging.INFO, "hf_synth.status"):
        llm = LLM(model="m", base_url=server.url, max_concurrency=2)
        with status.show(total=20, stream=io.StringIO(), every=0.1, log_every=0.5, prices=(1.0, 2.0)) as live:
            done = threading.Event()

            def watch():  # what a person watching would see, sampled while the map runs
                while not done.wait(0.1):
                    seen.append(status.read(status.os.environ[status.FOLDER_VARIABLE]).rows)

            watcher = threading.Thread(target=watch)
            watcher.start()
            rows(20).map(CoEvolTransform(llm, mode="edit"), batched=True)
            done.set()
            watcher.join()
    assert any(0 < n < 20 for n in seen), seen  # at least 10 requests of 0.2 s, 2 at a time: ≥ 2 s
    lines = [r.getMessage() for r in caplog.records if r.name == "hf_synth.status"]
    assert len(lines) >= 2 and lines[-1].startswith("rows 20/20 | requests 20 answered, 0 cached, 0 in flight")
    cost = (live.counts.prompt_tokens * 1.0 + live.counts.completion_tokens * 2.0) / 1e6
    assert lines[-1].endswith(f"${cost:.2f}")


def test_the_line_says_time_left_and_the_projected_cost():
    counts = status.RunStats(rows=25, rows_failed=1, rows_paid=25, sent=100, cached=20, in_flight=4, retries=2,
                             prompt_tokens=2_000_000, completion_tokens=500_000)
    assert status.line(counts, 50.0, total=100, prices=(0.15, 0.60)) == (
        "rows 25/100 (1 failed) | requests 100 answered, 20 cached, 4 in flight, 2 retries | tokens 2.0M in, 500k out "
        "| 2.0 req/s | left ~2m30s | $0.60 (~$2.40 in all)")


def test_time_left_and_cost_follow_the_rows_that_were_paid_for():
    # a resumed run: 20 rows came whole from the cache in no time, 5 took the 50 s
    counts = status.RunStats(rows=25, rows_paid=5, sent=20, cached=160, prompt_tokens=400_000, completion_tokens=100_000)
    said = status.line(counts, 50.0, total=100, prices=(0.15, 0.60))
    assert "| left ~12m30s |" in said  # 75 rows at 10 s each, not at 2 s
    assert said.endswith("$0.12 (~$1.92 in all)")  # $0.024 a paid row
    assert "left" not in status.line(status.RunStats(rows=25, cached=200), 1.0, total=100)  # no pace to go by yet


SCRIPT = """
import sys, datasets
from hf_synth import LLM, CoEvolTransform, status
datasets.disable_progress_bars()
rows = datasets.Dataset.from_dict({"instruction": ["a", "b"], "output": ["x", "y"]})
with status.show(total=2):
    rows.map(CoEvolTransform(LLM(model="m", base_url=sys.argv[1]), mode="edit"), batched=True)
print("IPython imported:", "IPython" in sys.modules)
"""


def test_without_a_terminal_or_logging_set_up_the_status_is_written_to_stderr(server):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", SCRIPT, server.url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "hf_synth: rows 2/2 | requests 2 answered, 0 cached, 0 in flight" in result.stderr
    # a script is not a notebook: telling them apart did not import IPython (installed here; a tenth of a
    # second of the run's time)
    assert result.stdout.strip().endswith("IPython imported: False")


def test_a_killed_runs_status_folder_is_removed_by_the_next_run(tmp_path, monkeypatch):
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    import time

    from test_cli import SAMPLE

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.5) as slow:
        run = subprocess.Popen([sys.executable, "-m", "hf_synth.cli", "coevol", str(SAMPLE), "--output",
                                str(tmp_path / "out"), "--model", "m", "--base-url", slow.url],
                               env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not slow.requests and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signal.SIGKILL)
        run.wait()
    left = list(scratch.glob("hf_synth_status_*"))
    assert len(left) == 1                                   # a SIGKILL leaves no chance to clean up
    unrelated = scratch / "hf_synth_status_not_ours"        # (no owner file: not ours to remove)
    unrelated.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with status.show(total=1, stream=io.StringIO()):
        assert len(list(scratch.glob("hf_synth_status_*"))) == 2   # this run's own, and the unrelated one
    assert not left[0].exists() and unrelated.exists()


def test_a_slow_request_is_shown_waiting_so_the_run_never_looks_hung():
    import time

    counts = status.RunStats(rows=0, sent=0, in_flight=3, request_since=int(time.time()) - 95)
    assert "3 in flight (the oldest waiting 1m3" in status.line(counts, 100.0, total=10)
    # answered requests took 4 s on average: one waiting ~95 s is far behind them
    counts.sent, counts.request_ms = 10, 40_000
    assert re.search(r"3 in flight \(the oldest waiting 1m3\ds, (23|24)x the average request\)",
                     status.line(counts, 100.0, total=10))
    counts.request_ms = 600_000  # 60 s on average: not far behind
    assert re.search(r"3 in flight \(the oldest waiting 1m3\ds\),", status.line(counts, 100.0, total=10))
    counts.request_since = int(time.time())   # a request just sent: nothing to say yet
    assert "3 in flight," in status.line(counts, 100.0, total=10)
    # the door keeps the oldest request's time while requests are in flight, and clears it after
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        server.fault_for = lambda body: ("sleep", 1.0)
        seen = []
        done = threading.Event()

        def watch():
            while not done.is_set():
                seen.append(status.counts().request_since if status.counts().in_flight else None)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        started = time.time()
        rows(2).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit", max_rounds=1), batched=True)
        done.set()
        watcher.join()
    assert any(since and started - 1 <= since <= time.time() for since in seen)
    assert status.counts().in_flight == 0 and status.counts().request_since == 0
