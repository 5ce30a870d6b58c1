"""The Batch API transport against the fake server's /v1/files and /v1/batches, over real HTTP."""
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import datasets
import pytest
from conftest import drive
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit, review_replies

from hf_synth import LLM, CoEvolTransform, EndpointError, ReviewInstructTransform
from hf_synth.methods import coevol
from hf_synth.protocol import Chat

ROWS = datasets.Dataset.from_dict({"instruction": [f"Say {i}" for i in range(6)], "input": [""] * 6,
                                   "output": [f"reply {i}" for i in range(6)]})


def steps_of(protocol, answer) -> list[int]:
    """The requests a protocol sends at each of its steps (a step: a request, or requests sent together)."""
    sizes = []
    original_send = protocol.send

    class Counting:
        def __iter__(self):
            return self

        def _counted(self, request):
            sizes.append(1 if isinstance(request, Chat) else len(request))
            return request

        def __next__(self):
            return self._counted(next(protocol))

        def send(self, value):
            return self._counted(original_send(value))

    drive(Counting(), answer)
    return sizes


def batch_llm(fake, **settings):
    return LLM(model="fake-model", base_url=fake.url, batch=True, batch_poll=0.02, **{"max_retries": 3, **settings})


def test_coevol_through_batches_gives_the_online_outputs_one_batch_per_step(tmp_path):
    replies = coevol_replies(prefer_edit)
    sample = coevol.Sample(instruction="Say 0", input="", response="reply 0")
    steps = steps_of(coevol.evolve(sample, max_rounds=2, mode="full"), lambda chat: replies(list(chat.messages)))
    with FakeOpenAI(replies) as fake:
        online = ROWS.map(CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=2,
                                          cache=str(tmp_path / "online")), batched=True)
        needed = len(fake.requests)
        fake.requests.clear()
        batched = ROWS.map(CoEvolTransform(batch_llm(fake), max_rounds=2, cache=str(tmp_path / "batch")), batched=True)
        assert fake.requests == []                         # not one online request
        assert len(fake.batches) == len(steps) == 10       # a batch per step of the protocol, for all rows at once
        assert len(fake.batch_requests) == needed          # every request paid once
        assert batched["coevol_output"] == online["coevol_output"] and batched["coevol_error"] == [None] * 6
        assert [u["calls"] for u in batched["coevol_usage"]] == [u["calls"] for u in online["coevol_usage"]]
        # sibling requests (the two debaters, the two judge orders) went in the same batch
        assert [batch["request_counts"]["total"] for batch in fake.batches.values()] == [6 * size for size in steps]
        # the replies are in the request cache: the same job again, online or by batch, pays for nothing
        again = ROWS.map(CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=2,
                                         cache=str(tmp_path / "batch")), batched=True, load_from_cache_file=False)
        assert again["coevol_output"] == online["coevol_output"] and fake.requests == [] and len(fake.batches) == 10


def test_the_batch_switch_changes_neither_the_fingerprint_nor_the_request_cache_keys(tmp_path):
    from datasets.fingerprint import Hasher

    url = "http://127.0.0.1:9/v1"
    online, batch = LLM(model="m", base_url=url), LLM(model="m", base_url=url, batch=True, batch_poll=5)
    assert Hasher.hash(CoEvolTransform(online)) == Hasher.hash(CoEvolTransform(batch))
    assert online.identity() == batch.identity()
    with pytest.raises(Exception, match="the embedded model has none"):
        LLM(batch=True)


def test_expired_and_failed_lines_are_sent_again_and_a_bad_row_fails_alone(tmp_path):
    replies = review_replies()
    with FakeOpenAI(replies) as fake:
        seen = set()

        def fault(body, index):
            text = body["messages"][-1]["content"]
            if "Seed 5" in text:
                return 400                                  # this row's request is refused: its row fails
            if index == 0 and zlib.crc32(text.encode()) % 3 == 0 and text not in seen:
                seen.add(text)
                return "expire"                             # a third of the first batch expires
            if index == 1 and text not in seen:
                seen.add(text)
                return 503                                  # the next batch's first lines fail once
            return None

        fake.batch_fault_for = fault
        seeds = datasets.Dataset.from_dict({"instruction": [f"Seed {i}" for i in range(6)]})
        out = seeds.map(ReviewInstructTransform(batch_llm(fake), rounds=2, num_reviewers=1), batched=True)
    assert out["review_error"][:5] == [None] * 5 and "HTTP 400" in out["review_error"][5]
    assert all(len(messages) == 4 for messages in out["review_messages"][:5])
    assert fake.requests == []
    # nothing paid twice: expired and failed lines are not paid; 5 rows × (2 answers, a review, the Chairman)
    answered = [json.dumps(body, sort_keys=True) for body in fake.batch_requests]
    assert len(answered) == len(set(answered)) == 5 * 4
    assert len(fake.batches) > 3  # (the 3 steps, and the lines sent again)


def test_a_full_queue_on_creating_a_batch_is_waited_out(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        fake.batch_create_faults = [429, 429]
        llm = batch_llm(fake, max_retries=0)  # (waited out, not retried: no request failed)
        out = ROWS.select(range(2)).map(CoEvolTransform(llm, max_rounds=1, mode="edit"), batched=True)
    assert out["coevol_error"] == [None, None] and fake.requests == [] and fake.batch_create_faults == []


def test_a_batch_the_api_refuses_stops_the_run_naming_the_reason(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        fake.batch_validation_error = ("model_not_found", "The model 'fake-model' does not support the Batch API")
        with pytest.raises(EndpointError, match="refused batch batch_1: model_not_found: The model 'fake-model' does "
                                                "not support the Batch API"):
            ROWS.map(CoEvolTransform(batch_llm(fake), max_rounds=1), batched=True)


def test_a_wrong_key_stops_the_run_in_one_sentence(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit), api_key="sk-right-000000000000") as fake:
        llm = batch_llm(fake, api_key="sk-wrong-000000000000")
        with pytest.raises(EndpointError, match=r"rejected the API key \(401\)") as stopped:
            ROWS.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert "sk-wrong" not in str(stopped.value) and "\n" not in str(stopped.value)


RUN = """
import sys
sys.path.insert(0, {tests!r})
import datasets
from hf_synth import LLM, CoEvolTransform
rows = datasets.Dataset.from_dict({rows!r})
llm = LLM(model="fake-model", base_url={url!r}, batch=True, batch_poll=0.02)
rows.map(CoEvolTransform(llm, max_rounds=1, cache={cache!r}), batched=True)
"""


@pytest.mark.parametrize("journaled", ["batch id", "input file only"])
def test_a_run_killed_with_a_batch_in_flight_attaches_to_it_when_run_again(tmp_path, journaled):
    """Nothing paid twice: the batch made before the kill carries on, and the run started again waits for
    it instead of sending its requests anew — also when it was killed before it could write the batch's id
    (the batch is found again by the journal id in its metadata)."""
    cache = str(tmp_path / "cache")
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        online = ROWS.map(CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=1,
                                          cache=str(tmp_path / "online")), batched=True)
        needed = len(fake.requests)
        fake.requests.clear()
        fake.hold_batches = True
        script = RUN.format(tests=str(Path(__file__).parent), rows=ROWS.to_dict(), url=fake.url, cache=cache)
        first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        journal = Path(cache) / "batches"

        def journaled():  # the batch is made and its id written down
            return [entry for entry in map(lambda path: json.loads(path.read_text()), journal.glob("*.json"))
                    if entry["batch_id"]]

        deadline = time.monotonic() + 120
        while not journaled() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert len(fake.batches) == 1, first.stderr.read().decode()[-2000:]
        [entry_file] = journal.glob("*.json")
        entry = json.loads(entry_file.read_text())
        assert entry["batch_id"] == "batch_1" and len(entry["custom_ids"]) == 12
        if journaled == "input file only":
            entry_file.write_text(json.dumps({**entry, "batch_id": None}))
        fake.hold_batches = False
        again = ROWS.map(CoEvolTransform(batch_llm(fake), max_rounds=1, cache=cache), batched=True)
    assert again["coevol_output"] == online["coevol_output"]
    assert len(fake.batch_requests) == needed and fake.requests == []   # requests paid = requests needed
    assert len(fake.batches) == 5                                        # the first one was not made again


def test_the_command_line_switch_sends_every_request_by_batch_and_says_so(tmp_path):
    from command import hf_synth_cli
    from test_cli import SAMPLE

    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        out = tmp_path / "out"
        result = hf_synth_cli("coevol", str(SAMPLE), "--output", str(out), "--limit", "3", "--max-rounds", "1",
                              "--mode", "edit", "--model", "m", "--base-url", fake.url, "--batch-api",
                              "--batch-poll", "0.02")
        assert result.returncode == 0, result.stderr
    calls = sum(usage["calls"] for usage in datasets.load_from_disk(str(out))["coevol_usage"])
    assert fake.requests == [] and len(fake.batch_requests) == calls and f"{calls} requests sent" in result.stdout
    assert datasets.load_from_disk(str(out))["coevol_error"] == [None] * 3
    assert "batch batch_1: 3 requests sent to http://127.0.0.1:" in result.stderr and "batch batch_1 completed" in result.stderr


def test_anthropic_message_batches_give_the_online_outputs_one_batch_per_step(tmp_path):
    """The second dialect: requests in the batch itself, the system prompt apart, results as content blocks;
    an expired request is sent again, an errored one fails its row alone."""
    replies = coevol_replies(prefer_edit)
    with FakeOpenAI(replies) as fake:
        online = ROWS.map(CoEvolTransform(LLM(model="fake-model", base_url=fake.url), max_rounds=2,
                                          cache=str(tmp_path / "online")), batched=True)
        needed = len(fake.requests)
        fake.requests.clear()
        expired = set()

        def fault(body, index):
            text = body["messages"][-1]["content"]
            if "Say 5" in text and index == 0:
                return 400
            if index == 1 and text not in expired:
                expired.add(text)
                return "expire"
            return None

        fake.batch_fault_for = fault
        llm = LLM(model="fake-model", base_url=fake.url, batch="anthropic", batch_poll=0.02, api_key="sk-ant-test-000000")
        out = ROWS.map(CoEvolTransform(llm, max_rounds=2, cache=str(tmp_path / "anthropic")), batched=True)
    assert fake.requests == []
    assert out["coevol_output"][:5] == online["coevol_output"][:5] and out["coevol_error"][:5] == [None] * 5
    assert "HTTP 400: invalid_request_error" in out["coevol_error"][5]
    sent = [line["params"] for batch in fake.batches.values() for line in batch["requests"]]
    assert all(p["system"] and all(m["role"] != "system" for m in p["messages"]) and p["max_tokens"] == 1000
               for p in sent)                                     # the system prompt apart, as Anthropic takes it
    paid = [json.dumps(body, sort_keys=True) for body in fake.batch_requests]
    assert len(paid) == len(set(paid)) == needed - needed // 6   # five rows' requests, each paid once
    assert len(fake.batches) == 10 + 1                            # the steps, and one for the expired requests


def test_a_wrong_key_stops_an_anthropic_batch_run_in_one_sentence(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit), api_key="sk-ant-right-0000000") as fake:
        llm = LLM(model="fake-model", base_url=fake.url, batch="anthropic", batch_poll=0.02,
                  api_key="sk-ant-wrong-0000000")
        with pytest.raises(EndpointError, match=r"rejected the API key \(401\)") as stopped:
            ROWS.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert "sk-ant-wrong" not in str(stopped.value) and fake.batches == {}
