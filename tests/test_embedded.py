"""End to end on the embedded default: a real llama.cpp server with SmolLM2-135M-Instruct."""
import os
import re

import datasets
import psutil
import pytest

from hf_synth import LLM, CoEvolTransform
from hf_synth.status import counts

# one worker runs them all, so the model starts once (pytest-xdist)
pytestmark = [pytest.mark.embedded, pytest.mark.xdist_group("embedded")]


def cut(error: str | None, max_tokens: int, agents: str = r"\w+") -> bool:
    """Whether `error` says that one of `agents`' replies was cut at `max_tokens`."""
    return re.fullmatch(rf"(.*: )?LLM call failed: (round \d+: )?the ({agents})'s reply was cut at max_tokens={max_tokens} "
                        r"\(finish_reason=length\); give the LLM a larger max_tokens", error or "") is not None


def test_coevol_runs_on_the_embedded_model():
    ds = datasets.Dataset.from_dict({"instruction": ["Why is the sky blue?"], "output": ["Because of the ocean."]})
    transform = CoEvolTransform(LLM(max_tokens=160, extra_body={"stop": ["\n"]}), max_rounds=1)
    out = ds.map(transform, batched=True)
    row = out[0]
    assert row["coevol_error"] is None
    assert row["coevol_usage"]["calls"] == 8 and row["coevol_usage"]["completion_tokens"] > 0
    round_ = row["coevol_trace"][0]
    for field in ("positive", "critical", "positive_free", "critical_free", "suggestions", "edited"):
        assert isinstance(round_[field], str) and round_[field]
    # held to Table 9's format by a llama.cpp grammar (the embedded model's default), every verdict is
    # read; free, the 135M model writes a readable verdict 0 times in 8 on the README's sample
    assert [verdict.split("\n")[0] in ("<assistant 1>", "<assistant 2>", "<equal>") for verdict in round_["verdicts"]] == [True, True]
    assert None not in round_["parsed_verdicts"]
    sent = counts().sent
    again = ds.map(CoEvolTransform(LLM(max_tokens=160, extra_body={"stop": ["\n"]}), max_rounds=1), batched=True)
    assert counts().sent == sent and again.to_list() == out.to_list()


def test_review_instruct_runs_on_the_embedded_model():
    from hf_synth import ReviewInstructTransform

    seeds = datasets.Dataset.from_dict({"instruction": ["Give three tips for staying healthy.",
                                                        "What is the capital of France?"]})
    make = lambda: ReviewInstructTransform(LLM(temperature=0.1, max_tokens=64, seed=1), rounds=2, num_reviewers=1)
    out = seeds.map(make(), batched=True)
    for row in out:
        if row["review_error"] is None:
            messages = row["review_messages"]
            assert [m["role"] for m in messages] == ["user", "assistant"] * 2
            assert messages[0]["content"] == row["instruction"] and all(m["content"].strip() for m in messages)
            assert row["review_usage"]["calls"] == 4
            assert messages[2]["content"] == row["review_trace"][0]["next_instruction"]
        else:
            # held to its format by the grammar, the Chairman always asks; but a 135M model rambles past
            # max_tokens in its free replies, here the reviewer's (a cut reply is never used): the row is
            # then kept and marked
            assert cut(row["review_error"], 64)
            assert 1 <= row["review_usage"]["calls"] <= 3 and row["review_messages"] is None
    sent = counts().sent
    assert seeds.map(make(), batched=True).to_list() == out.to_list() and counts().sent == sent
    # the difficulty judge, held to its label line by the grammar, labels every user turn (free, this
    # model named a label in none of the 6 replies of the shipped ReviewInstruct run)
    from hf_synth.transforms import DifficultyTransform

    conversation = [{"role": "user", "content": "Give three tips for staying healthy."},
                    {"role": "assistant", "content": "Sleep, eat vegetables, walk."},
                    {"role": "user", "content": "How does sleep affect memory consolidation?"},
                    {"role": "assistant", "content": "During deep sleep the brain replays the day."}]
    labelled = datasets.Dataset.from_dict({"messages": [conversation]}).map(DifficultyTransform(LLM(max_tokens=48)),
                                                                             batched=True)
    assert labelled[0]["difficulty_error"] is None
    assert all(label in ("easy", "medium", "hard") for label in labelled[0]["difficulty_labels"])
    assert len(labelled[0]["difficulty_labels"]) == 2


@pytest.mark.xdist_group("embedded_r2s")  # the longest of them, on a second worker with servers of its own
def test_r2s_runs_on_the_embedded_model_in_english_and_chinese():
    from pathlib import Path

    import hf_synth
    from hf_synth import R2STransform
    from hf_synth.transforms import DialogueEvalTransform

    sample = Path(hf_synth.__file__).parent / "data" / "documents_sample.jsonl"
    docs = datasets.load_dataset("json", data_files=str(sample), split="train").select([1, 6])
    assert docs["language"] == ["en", "zh"]
    make = lambda: R2STransform(LLM(max_tokens=64), turns=2)
    out = docs.map(make(), batched=True)
    for row in out:
        if row["r2s_error"] is None:
            assert [m["role"] for m in row["r2s_messages"]] == ["user", "assistant"] * 2
            assert [t["user"] for t in row["r2s_cod"]] == [m["content"] for m in row["r2s_messages"][::2]]
            assert row["r2s_usage"]["calls"] == 4
            for span in (s for t in row["r2s_cod"] for s in t["find"]):
                assert span["grounded"] == (span["match"] is not None)
        else:
            # held to its format by the grammar, the questioner always writes a User line; but a 135M
            # model rambles past max_tokens: the row is then kept and marked
            assert cut(row["r2s_error"], 64)
            assert row["r2s_messages"] is None and row["r2s_usage"]["calls"] >= 1
    sent = counts().sent
    assert docs.map(make(), batched=True).to_list() == out.to_list() and counts().sent == sent
    # the nine-score judgment, held to its format by the grammar, is read whole (free, this model's
    # judgment of the same dialogue leaves scores unread, so there is no Avg.)
    dialogue = [{"role": "user", "content": "What is this document about?"},
                {"role": "assistant", "content": docs[0]["text"][:200]}]
    scored = docs.select([0]).add_column("messages", [dialogue]).map(DialogueEvalTransform(LLM(max_tokens=200)),
                                                                     batched=True)
    row = scored[0]
    assert row["eval_error"] is None and row["eval_avg"] is not None
    assert all(1 <= row[f"eval_{m}"] <= 5 for m in ("info", "ud", "uf", "fd", "fl", "cs", "co", "ia"))
    assert 0 <= row["eval_cr"] <= 100 and 0 <= row["eval_coverage"] <= 100


def test_the_embedded_servers_inherit_no_key_given_in_code():
    from pathlib import Path

    from hf_synth.llm import local

    keyed = LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-not-for-llama-0000000000")
    local.stop_embedded_server()  # started again, after the key was given
    local.embedded_server_urls()
    for process in local._server["processes"]:
        environment = Path(f"/proc/{process.pid}/environ").read_bytes()
        assert b"sk-not-for-llama" not in environment and b"HF_SYNTH_KEY_" not in environment
    assert keyed.api_key.reveal() == "sk-not-for-llama-0000000000"  # (the LLM still has it)


def test_the_servers_run_with_the_penalty_window_their_name_records():
    from pathlib import Path

    from hf_synth.llm import local

    local.embedded_server_urls()
    window = LLM().endpoint_id.rsplit(":last_n=", 1)[1]  # in the recipe, the card and every cache key
    for process in local._server["processes"]:
        arguments = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        assert arguments[arguments.index(b"--last_n_tokens_size") + 1] == window.encode()


def test_a_ctrl_c_reaches_us_not_the_servers_and_stopping_them_waits_for_no_generation():
    import json
    import signal
    import threading
    import urllib.request

    from hf_synth.llm import local

    urls = local.embedded_server_urls()
    processes = list(local._server["processes"])
    # its own session: a terminal's Ctrl-C (sent to our process group) is ours to handle
    assert all(os.getsid(process.pid) == process.pid != os.getsid(0) for process in processes)

    def generate_at_length():
        body = json.dumps({"messages": [{"role": "user", "content": "Count from 1 to 5000."}], "max_tokens": 4000})
        request = urllib.request.Request(f"{urls[0]}/chat/completions", body.encode(),
                                         {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(request, timeout=600).read()
        except OSError:
            pass  # cut by the stop: what we want

    talker = threading.Thread(target=generate_at_length, daemon=True)
    talker.start()
    while not any(conn.status == "ESTABLISHED" for conn in psutil.Process(processes[0].pid).net_connections()):
        talker.join(0.05)
    logs = list(local._server["logs"])
    assert all(log.exists() for log in logs)
    local.stop_embedded_server()
    # killed, not asked to finish the generation in progress first; their logs removed with them
    assert [process.returncode for process in processes] == [-signal.SIGKILL] * len(processes)
    assert not any(log.exists() for log in logs)
    talker.join(60)
    assert not talker.is_alive()


ORPHANED = """
import json, os, sys, threading, urllib.request
from hf_synth.llm import local
urls = local.embedded_server_urls()
print(" ".join(str(process.pid) for process in local._server["processes"]), flush=True)
body = json.dumps({"messages": [{"role": "user", "content": "Count from 1 to 100000, one number a line."}],
                   "max_tokens": 8000}).encode()
for url in urls:  # every server busy with a long generation
    threading.Thread(target=urllib.request.urlopen, args=(urllib.request.Request(
        url + "/chat/completions", body, {"Content-Type": "application/json"}),), daemon=True).start()
threading.Event().wait()
"""


def test_the_servers_die_with_a_killed_parent_even_mid_generation():
    import signal
    import subprocess
    import sys
    import time

    parent = subprocess.Popen([sys.executable, "-c", ORPHANED], stdout=subprocess.PIPE, text=True)
    servers = [psutil.Process(int(pid)) for pid in parent.stdout.readline().split()]
    while not all(any(c.status == "ESTABLISHED" for c in server.net_connections()) for server in servers):
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    # killed with us, not stopped gracefully (which takes its time over the generations in progress)
    gone, alive = psutil.wait_procs(servers, timeout=5)
    assert alive == []
