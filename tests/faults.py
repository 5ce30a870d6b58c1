"""Fault-injection scenarios, shared by tests/test_faults.py and scripts/fault_table.py: CoEvol over
Alpaca rows against the fake server with faults injected at random, through `Dataset.map` and the
the real online transport."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import datasets
from fake_openai import FakeOpenAI, coevol_replies, fault_kind, prefer_edit, r2s_replies, review_replies

from hf_synth import LLM, CoEvolTransform, R2STransform, ReviewInstructTransform

FAST_RETRY = (("Retry-After", "0"),)  # keeps the suite fast; 429 without it is its own kind
KINDS = {  # fault -> what a row's error says when the fault wins
    ("status", 429, FAST_RETRY): "HTTP 429",
    ("status", 429, ()): "HTTP 429",
    ("status", 500, FAST_RETRY): "HTTP 500",
    ("status", 502, FAST_RETRY): "HTTP 502",
    ("status", 503, FAST_RETRY): "HTTP 503",
    ("sleep", 2): "no complete reply within timeout",
    "close": "connection dropped",
    "not_json": "not a chat completion (not JSON)",
    "no_choices": "not a chat completion (no choices)",
    "not_utf8": "not a chat completion (its body is not UTF-8)",
    "empty": "reply was empty",
    ("finish", "length"): "cut at max_tokens",
    ("finish", "content_filter"): "content filter",
}
RETRIED = {kind for kind in KINDS if kind not in ("empty", ("finish", "length"), ("finish", "content_filter"))}
MAX_RETRIES = 5


@dataclass
class Outcome:
    faults: str
    rows_in: int
    rows_out: int
    in_order: bool
    rows_with_errors: int
    errors: list
    sent: int
    minimum: int
    max_attempts: int   # the most times one request was sent
    injected: dict


def alpaca(rows: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"id": list(range(rows)), "instruction": [f"Task {i}: say something" for i in range(rows)],
                                       "input": [""] * rows, "output": [f"answer {i}" for i in range(rows)]})


def documents(rows: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"id": list(range(rows)), "text": [
        f"Town {i} lies on a river. It has {i} bridges. Its market opens on Mondays." for i in range(rows)]})


METHODS = {  # method -> (transform, replies, data)
    "coevol": (lambda llm: CoEvolTransform(llm, max_rounds=1, cache=False), lambda: coevol_replies(prefer_edit), alpaca),
    "review": (lambda llm: ReviewInstructTransform(llm, rounds=2, cache=False), review_replies, alpaca),
    "r2s": (lambda llm: R2STransform(llm, turns=2, cache=False), r2s_replies, documents),
}


def run(kinds: list, rate: float = 0.3, rows: int = 20, seed: int = 0, method: str = "coevol") -> Outcome:
    """`method` (CoEvol full mode, one round; ReviewInstruct, 2 rounds; R2S, 2 turns) over `rows` rows
    with `kinds` of fault injected into `rate` of the requests; `minimum` is what the same run sends
    with no fault."""
    transform, replies, rows_of = METHODS[method]
    data = rows_of(rows)
    with FakeOpenAI(replies()) as clean:
        data.map(transform(LLM(model="m", base_url=clean.url)), batched=True, load_from_cache_file=False)
        minimum = len(clean.requests)
    with FakeOpenAI(replies()) as server:
        server.inject(rate, kinds, seed)
        # a deadline well under the 2 s a "sleep" fault holds its reply, and far above what a healthy
        # reply takes on a busy machine (at 0.5 s, tracing under mutmut timed out healthy replies)
        llm = LLM(model="m", base_url=server.url, timeout=1.5, max_retries=MAX_RETRIES)
        step = transform(llm)
        out = data.map(step, batched=True, load_from_cache_file=False)
    errors = [e for e in out[f"{step.prefix}_error"] if e is not None]
    return Outcome(", ".join(fault_kind(k) for k in kinds) if len(kinds) < 3 else f"all {len(kinds)} kinds mixed",
                   rows, len(out), out["id"] == data["id"], len(errors), errors, len(server.requests), minimum,
                   max(Counter(json.dumps(body["messages"]) for body in server.requests).values()),
                   dict(server.injected))
