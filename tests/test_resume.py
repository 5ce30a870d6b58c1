"""A run killed with SIGKILL and started again pays only for the requests that had not completed."""
import os
import signal
import subprocess
import sys
import time

import datasets
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

ROWS = 40
CALLS_PER_ROW = 8          # one full CoEvol round
CONCURRENCY = 8

JOB = """
import sys, datasets
from hf_synth import LLM, CoEvolTransform
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train")
llm = LLM(model="m", base_url=sys.argv[2], max_concurrency={concurrency})
ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=1000).save_to_disk(sys.argv[3])
""".format(concurrency=CONCURRENCY)


def test_killed_runs_resume_and_pay_only_for_the_rest(tmp_path):
    data = tmp_path / "rows.jsonl"
    datasets.Dataset.from_dict({"instruction": [f"q{i}" for i in range(ROWS)],
                                "output": [f"a{i}" for i in range(ROWS)]}).to_json(data)
    output = tmp_path / "out"
    env = {**os.environ, "HF_SYNTH_CACHE": str(tmp_path / "requests")}
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.02) as server:
        command = [sys.executable, "-c", JOB, str(data), server.url, str(output)]
        kills = 0
        for kill_after in (60, 180):   # requests seen by the server when we kill the run
            job = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while len(server.requests) < kill_after and job.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            assert job.poll() is None, "the run finished before it could be killed"
            job.send_signal(signal.SIGKILL)
            job.wait()
            kills += 1
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=300)
        sent = len(server.requests)
    minimum = ROWS * CALLS_PER_ROW
    assert kills == 2
    assert minimum <= sent <= minimum + kills * CONCURRENCY   # at most the in-flight requests are paid twice
    result = datasets.load_from_disk(str(output))
    assert result["coevol_output"] == [f"a{i} [edited]" for i in range(ROWS)]
    assert result["coevol_error"] == [None] * ROWS
