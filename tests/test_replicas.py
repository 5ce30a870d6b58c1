"""Several endpoints for one LLM, and request/token budgets: load goes to the replica with the fewest
outstanding requests, a dead replica's work moves to the live ones, and budgets pace what is sent."""
import asyncio
import socket
import time

import datasets
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform
from hf_synth.llm.pacing import RateBudget


def rows(count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [f"question {i}" for i in range(count)],
                                       "output": [f"answer {i}" for i in range(count)]})


def unused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nobody listens once it is closed


def test_replicas_share_the_load_and_name_the_first_in_the_fingerprint():
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as a, \
         FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as b:
        both = CoEvolTransform(LLM(model="m", base_url=[a.url, b.url], max_concurrency=4), mode="edit")
        out = rows(40).map(both, batched=True)
        assert out["coevol_error"] == [None] * 40
        assert len(a.requests) + len(b.requests) == 40
        assert 12 <= len(a.requests) <= 28 and a.peak_in_flight <= 4 and b.peak_in_flight <= 4
        # the same job with only the first replica: same fingerprint, every request from the cache
        alone = CoEvolTransform(LLM(model="m", base_url=a.url, max_concurrency=4), mode="edit")
        assert alone.fingerprint_state() == both.fingerprint_state()
        again = datasets.Dataset.from_dict(rows(40).to_dict()).map(alone, batched=True)
        assert again["coevol_output"] == out["coevol_output"] and len(a.requests) + len(b.requests) == 40


def test_a_dead_replica_passes_its_requests_to_the_live_one():
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.02) as live:
        llm = LLM(model="m", base_url=[unused_url(), live.url], max_concurrency=8, max_retries=3)
        out = rows(30).map(CoEvolTransform(llm, mode="edit"), batched=True)
        assert out["coevol_error"] == [None] * 30
        assert len(live.requests) == 30


def test_requests_per_minute_paces_what_is_sent():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        # a full bucket of 120 requests, then one every half second
        llm = LLM(model="m", base_url=server.url, requests_per_minute=120)
        started = time.monotonic()
        out = rows(124).map(CoEvolTransform(llm, mode="edit"), batched=True)
        took = time.monotonic() - started
        assert out["coevol_error"] == [None] * 124 and len(server.requests) == 124
        # timed on the client, which waits for its budget: a busy machine can stretch this, never
        # shorten it (the server's arrival times can be bunched by a busy server)
        assert took >= 1.5


def test_tokens_per_minute_counts_the_prompt_and_max_tokens():
    async def spend(count):
        budget = RateBudget(None, tokens_per_minute=6000, max_tokens=100)
        messages = [{"role": "user", "content": "x" * 400}]  # 100 + 100 = 200 tokens: 30 fill the bucket
        started, times = time.monotonic(), []
        for _ in range(count):
            await budget.spend(messages)
            times.append(time.monotonic() - started)
        return times

    times = asyncio.run(spend(32))
    assert times[29] < 0.5
    assert times[31] >= 3.0  # 100 tokens a second: two more requests wait about 2 s each
