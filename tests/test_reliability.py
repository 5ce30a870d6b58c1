"""The promises of docs/reliability.md under the conditions that broke them: bad rows among good ones,
a failing window carried between runs, dropped connections, two keys, spawn workers, replies that are
not completions, a trickling server, a damaged cache. Real HTTP on loopback through the online transport."""
import contextlib
import dataclasses
import json
import os
import pickle
import re
import socket
import sqlite3
import subprocess
import sys

import datasets
import pytest
from command import hf_synth_cli
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform, EndpointError
from hf_synth.errors import CacheError, ConfigError
from hf_synth.llm.cache import RequestCache
from hf_synth.llm.door import forget_endpoints, request_cache, shared
from hf_synth.llm.failures import ENDPOINT, ConnectionFailed, Failure, classify, describe
from hf_synth.retry import retry_failed
from hf_synth.status import counts

URL = "http://127.0.0.1:9/v1"  # nothing listens: for LLMs that are made, never asked
CONTEXT = "This model's maximum context length is 8192 tokens; your messages resulted in 9000 tokens."


def rows(count: int, long_from: int | None = None) -> datasets.Dataset:
    """`count` Alpaca rows; from `long_from` on, instructions too long for the fake model's context."""
    long_from = count if long_from is None else long_from
    return datasets.Dataset.from_dict({
        "instruction": [f"task {i}" + (" word" * 3000 if i >= long_from else "") for i in range(count)],
        "output": [f"answer {i}" for i in range(count)]})


def beyond_context(body) -> object:
    return ("status", 400, {}) if len(str(body["messages"])) > 10_000 else None


@pytest.fixture
def server():
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        fake.error_message = CONTEXT
        yield fake


# -- 1. a bad row fails that row only

def test_rows_beyond_the_context_fail_alone_on_every_run(server):
    server.fault_for = beyond_context
    llm = LLM(model="m", base_url=server.url, max_retries=3)
    for _ in range(2):  # the same job again, in memory: datasets has nothing cached
        out = rows(128, long_from=110).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True, batch_size=16)
        errors = out["coevol_error"]
        assert errors[:110] == [None] * 110
        assert all(e.startswith(f"LLM call failed: HTTP 400: {CONTEXT}") and "after 1 attempt)" in e
                   for e in errors[110:]), errors[110:]
    assert len(server.requests) == 2 * 128  # 400s are not retried


def test_the_failure_window_starts_fresh_with_each_run(server):
    llm = LLM(model="m", base_url=server.url, max_retries=1, max_concurrency=4)
    server.fault_for = lambda body: ("status", 503, {"Retry-After": "0"})  # an outage
    with pytest.raises(EndpointError, match="is failing|completed none"):
        rows(40).map(CoEvolTransform(llm, mode="edit"), batched=True)
    server.fault_for = beyond_context  # the endpoint is back; the next job has over-long rows first
    out = rows(12, long_from=0).select(range(12)).map(CoEvolTransform(llm, mode="edit"), batched=True)
    out2 = rows(30).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert all("HTTP 400" in e for e in out["coevol_error"]) and out2["coevol_error"] == [None] * 30


@pytest.mark.slow
@pytest.mark.parametrize("fault", [("status", 504, {"Retry-After": "0"}), ("status", 502, {"Retry-After": "0"}),
                                   ("sleep", 3)], ids=["504", "502", "slower than timeout"])
def test_rows_a_proxy_times_out_fail_alone_on_every_run(server, fault):
    # 60 over-long rows sorted last among 128: more than any run of failures that stops a run, and
    # the last batch holds only 4 others
    server.fault_for = lambda body: fault if len(str(body["messages"])) > 10_000 else None
    llm = LLM(model="m", base_url=server.url, max_retries=2, timeout=1.5)
    for run in range(2):  # the second run: the good rows come from the cache, the bad ones fail again
        out = rows(128, long_from=68).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=64)
        assert out["coevol_error"][:68] == [None] * 68
        assert all(error and ("HTTP 50" in error or "timeout=1.5s" in error) for error in out["coevol_error"][68:])
    # every bad row asked again on each run, within its retries (and the retry budget: most of the batch
    # fails), plus the few requests the endpoint completed before, asked again to see it still serves
    assert 68 + 2 * 60 <= len(server.requests) <= 68 + 2 * 60 * 3 + 10


def test_rows_that_always_get_a_500_spread_through_a_big_batch_fail_alone(server):
    # 5% of the rows, evenly spread, in datasets' default batch of 1,000 rows
    def row_of(body) -> int:
        return int(re.search(r"task (\d+)\n", body["messages"][-1]["content"]).group(1))

    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if row_of(body) % 20 == 7 else None
    out = rows(400).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit", cache=False),
                        batched=True, batch_size=1000)
    assert [i for i, error in enumerate(out["coevol_error"]) if error] == [i for i in range(400) if i % 20 == 7]


@pytest.mark.parametrize("cached", [False, True], ids=["served in this process", "served in an earlier run"])
def test_an_endpoint_that_stops_serving_mid_job_stops_it_early(server, cached):
    llm = LLM(model="m", base_url=server.url, max_concurrency=4, max_retries=1)
    assert rows(20).map(CoEvolTransform(llm, mode="edit"), batched=True)["coevol_error"] == [None] * 20
    if cached:  # a new process: all it knows of the endpoint is what the cache holds
        forget_endpoints()
    server.fault_for = lambda body: ("status", 503, {"Retry-After": "0"})  # its models may still be listed
    before = len(server.requests)
    with pytest.raises(EndpointError) as error:
        rows(300).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert re.fullmatch(r"\S+ is failing: its last 1\d attempts failed with none completing meanwhile, and it no longer "
                        r"completes a request it completed before \(HTTP 503: .*\) \(the last: HTTP 503: .*\); "
                        r"completed requests are cached, so the same run resumes when the endpoint is well\.",
                        str(error.value)), str(error.value)
    assert len(server.requests) - before <= 10 + 4 + 1  # ten failed attempts, what was in flight, the request asked again


@pytest.mark.parametrize("fault, cause", [("close", "ContentLengthError"), ("hang_up", "ServerDisconnectedError")])
def test_dropped_connections_are_retried_not_an_unreachable_endpoint(server, fault, cause):
    server.faults = [fault] * 8
    llm = LLM(model="m", base_url=server.url, max_retries=5, max_concurrency=4)
    out = rows(4).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 4 and server.injected[fault] == 8
    server.faults = [fault]
    once = LLM(model="m", base_url=server.url, max_retries=0)
    out = datasets.Dataset.from_dict({"instruction": ["one more", "and another"], "output": ["x", "y"]}).map(
        CoEvolTransform(once, mode="edit"), batched=True)
    errors = [error for error in out["coevol_error"] if error]
    assert len(errors) == 1 and f"connection dropped ({cause})" in errors[0], errors


@contextlib.contextmanager
def silent_port():
    """A loopback port whose connections are never answered: it never accepts and its backlog is
    full, so the kernel drops every new handshake, as a firewall that drops packets does."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        queued = [socket.socket() for _ in range(3)]
        for sock in queued:
            sock.setblocking(False)
            sock.connect_ex(listener.getsockname())
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        finally:
            for sock in queued:
                sock.close()


@pytest.mark.parametrize("where, cause", [("no such host", "gaierror"),
                                          ("connections dropped unanswered", "ConnectionTimeoutError")])
def test_an_endpoint_no_connection_reaches_stops_the_run_early_with_one_sentence(where, cause):
    with contextlib.ExitStack() as stack:
        url = "http://no-such-host.invalid/v1" if where == "no such host" else stack.enter_context(silent_port())
        llm = LLM(model="m", base_url=url, timeout=4, max_retries=5, max_concurrency=8)
        with pytest.raises(EndpointError) as error:
            rows(40).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=40)
    assert re.fullmatch(rf"Cannot reach the LLM endpoint \S+ \(could not connect \({cause}\) 8 times in a row\): "
                        r"is the server running and base_url right\?", str(error.value)), str(error.value)



def test_an_error_whose_causes_loop_is_still_described():
    # chained exceptions can refer back to each other (a library re-raising what it caught)
    outer, inner = ConnectionFailed("ClientOSError"), OSError("reset")
    outer.__cause__, inner.__context__ = inner, outer
    assert classify(outer) == Failure(ENDPOINT, retry=True, unreachable=False)
    assert describe(outer, timeout=5) == "connection dropped (OSError)"

# -- 2. each LLM sends its own key, in every kind of worker

def test_two_llms_on_one_endpoint_send_their_own_keys():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        first = LLM(model="m", base_url=server.url, api_key="sk-first-key")
        second = LLM(model="m", base_url=server.url + "/", api_key="sk-second-key")
        rows(3).map(CoEvolTransform(first, mode="edit", cache=False), batched=True)
        rows(3).map(CoEvolTransform(second, mode="edit", cache=False), batched=True)
    sent = [h["Authorization"] for h in server.headers]
    assert sent == ["Bearer sk-first-key"] * 3 + ["Bearer sk-second-key"] * 3


SPAWN_JOB = """
import sys, multiprocess, datasets
from hf_synth import LLM, CoEvolTransform
multiprocess.set_start_method("spawn", force=True)
if __name__ == "__main__":
    ds = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(8)], "output": ["a"] * 8})
    out = ds.map(CoEvolTransform(LLM(model="m", base_url=sys.argv[1], api_key=sys.argv[2]), mode="edit"),
                 batched=True, batch_size=2, num_proc=2)
    print(list(out["coevol_error"]))
"""


def test_spawned_workers_send_the_llms_key_not_the_environments(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit), api_key="sk-given-key") as server:
        script = tmp_path / "job.py"
        script.write_text(SPAWN_JOB)
        env = {**os.environ, "OPENAI_API_KEY": "sk-environment-key"}
        result = subprocess.run([sys.executable, str(script), server.url, "sk-given-key"], capture_output=True,
                                text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == str([None] * 8)
        assert [h["Authorization"] for h in server.headers] == ["Bearer sk-given-key"] * 8


def test_a_worker_that_cannot_find_the_key_says_how_to_pass_it(server):
    transform = CoEvolTransform(LLM(model="m", base_url=server.url, api_key="sk-travelling-key"), mode="edit")
    variable = transform.llm.api_key.env
    shipped = pickle.dumps(transform)
    assert b"sk-travelling-key" not in shipped
    key = os.environ.pop(variable)  # a worker whose environment lacks it (a Ray worker, say)
    try:
        with pytest.raises(EndpointError, match="did not reach this worker process") as error:
            rows(2).map(pickle.loads(shipped), batched=True)
        assert "api_key_env" in str(error.value) and "\n" not in str(error.value)
    finally:
        os.environ[variable] = key
    assert server.requests == []


@pytest.mark.parametrize("key", ["sk-key-with-newline\n", "sk key", "sk-\x00", "sk-\x7f", "sk-ключ"])
def test_a_malformed_key_is_refused_when_the_llm_is_made(key):
    with pytest.raises(ConfigError, match=r"^LLM\(api_key=...\): the API key contains") as error:
        LLM(model="m", base_url=URL, api_key=key)
    assert key.strip() not in str(error.value)


@pytest.mark.parametrize("key, says", [(b"sk-bytes", "must be text, not bytes"), ("", "is empty")])
def test_a_key_that_is_not_text_or_is_empty_is_refused_with_what_it_is(key, says):
    with pytest.raises(ConfigError, match=rf"^LLM\(api_key=...\): the API key {says}\.$"):
        LLM(model="m", base_url=URL, api_key=key)


def test_credentials_in_the_url_are_refused_and_never_shown():
    with pytest.raises(ConfigError, match="carries credentials") as error:
        LLM(model="m", base_url="http://user:hunter2@127.0.0.1:9/v1")
    assert "hunter2" not in str(error.value) and "http://127.0.0.1:9/v1" in str(error.value)
    with pytest.raises(ConfigError, match="http"):
        LLM(model="m", base_url="127.0.0.1:9/v1")




@pytest.mark.parametrize("settings, says", [
    ({"base_url": URL}, r"^LLM\(base_url='http://127.0.0.1:9/v1'\) needs model=: pass the model name"),
    ({"model": "m", "base_url": 8000}, r"^LLM\(base_url=8000\): give an http\(s\) URL"),
    ({"model": "m", "base_url": [URL, ""]}, r"^LLM\(base_url=''\): give an http\(s\) URL"),
    *(({"model": "m", "base_url": URL, name: value}, "must be >= 1, max_retries >= 0, timeout > 0")
      for name, value in [("max_concurrency", 0), ("max_retries", -1), ("timeout", 0), ("max_tokens", 0)]),
    ({"model": "m", "base_url": URL, "max_tokens": 1000, "tokens_per_minute": 999},
     r"tokens_per_minute >= max_tokens \(1000\), since every request counts its max_tokens")])
def test_settings_no_request_could_succeed_with_are_refused_when_the_llm_is_made(settings, says):
    with pytest.raises(ConfigError, match=says):
        LLM(**settings)


def test_the_least_an_llm_takes_is_accepted_and_the_url_defaults_to_openai_base_url_then_openai(monkeypatch):
    least = LLM(model="m", base_url=URL, max_concurrency=1, max_retries=0, timeout=0.001, max_tokens=1,
                requests_per_minute=1, tokens_per_minute=1)
    assert (least.max_tokens, least.timeout, least.max_retries) == (1, 0.001, 0)
    monkeypatch.setenv("OPENAI_BASE_URL", URL)
    assert LLM(model="m").base_url == URL and LLM(model="m").replicas == (URL,)
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert LLM(model="m").base_url == "https://api.openai.com/v1"


def test_the_openai_api_without_a_key_stops_before_any_request(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EndpointError, match=r"^No API key for the OpenAI API: set OPENAI_API_KEY or pass "
                                            r"LLM\(api_key=...\)\.$"):
        rows(1).map(CoEvolTransform(LLM(model="gpt-4o-mini"), mode="edit"), batched=True)


def test_two_llms_without_a_key_are_the_same_llm(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert LLM(model="m", base_url=URL) == LLM(model="m", base_url=URL)
    assert LLM(model="m", base_url=URL) != LLM(model="m", base_url=URL, api_key="sk-some-key-000000")

# -- 3. failures are never frozen into later runs

def test_retry_failed_runs_only_the_failed_rows(server, tmp_path):
    datasets.Dataset.from_dict(rows(10).to_dict()).to_json(tmp_path / "in.jsonl")
    source = datasets.load_dataset("json", data_files=str(tmp_path / "in.jsonl"), split="train")
    broken = ("task 3", "task 7")
    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if any(
        f"{b}\n" in str(body["messages"][-1]["content"]) for b in broken) else None  # reads `broken` when called
    transform = CoEvolTransform(LLM(model="m", base_url=server.url, max_retries=1), mode="edit")
    out = source.map(transform, batched=True)
    failed = [i for i, e in enumerate(out["coevol_error"]) if e]
    assert failed == [3, 7]
    sent = len(server.requests)
    again = source.map(transform, batched=True)  # datasets reuses the finished map, failures and all
    assert again["coevol_error"] == out["coevol_error"] and len(server.requests) == sent

    broken = ("task 3",)  # row 7 is well again, row 3 not yet: 1 request + 2 attempts
    partly = retry_failed(again, transform)
    assert [i for i, e in enumerate(partly["coevol_error"]) if e] == [3] and len(server.requests) == sent + 3
    server.fault_for = None
    fixed = retry_failed(again, transform)  # never answered by datasets' cache of the last retry
    assert len(server.requests) == sent + 4  # row 3 only: row 7's reply is in the request cache
    assert fixed["coevol_error"] == [None] * 10
    assert fixed["instruction"] == source["instruction"] and fixed.features == out.features
    assert [fixed["coevol_output"][i] for i in range(10) if i not in failed] == \
           [out["coevol_output"][i] for i in range(10) if i not in failed]
    assert retry_failed(fixed, transform)["coevol_error"] == [None] * 10 and len(server.requests) == sent + 4


@pytest.mark.parametrize("fault", ["dict_content", "cut_json", "not_json"])
def test_an_endpoint_that_speaks_no_usable_protocol_stops_the_run_and_caches_nothing(server, tmp_path, fault):
    datasets.Dataset.from_dict(rows(4).to_dict()).to_json(tmp_path / "in.jsonl")
    source = datasets.load_dataset("json", data_files=str(tmp_path / "in.jsonl"), split="train")
    server.fault_for = lambda body: fault
    transform = CoEvolTransform(LLM(model="m", base_url=server.url, max_retries=1), mode="edit")
    with pytest.raises(EndpointError, match="completed none of this job's requests") as error:
        source.map(transform, batched=True)
    assert "not a chat completion" in str(error.value) and "\n" not in str(error.value)
    server.fault_for = None  # the endpoint is fixed: the same job runs, nothing was frozen
    assert source.map(transform, batched=True)["coevol_error"] == [None] * 4


def test_content_as_a_list_of_text_parts_is_read_as_its_text(server):
    llm = LLM(model="m", base_url=server.url)
    plain = rows(3).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True)
    server.fault_for = lambda body: "parts"
    parts = rows(3).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True)
    assert parts["coevol_output"] == plain["coevol_output"] and parts["coevol_error"] == [None] * 3
    assert server.injected["parts"] == 3


# -- 4. timeout bounds a whole request

@pytest.mark.parametrize("part", ["body", "headers"])
def test_timeout_is_a_deadline_for_the_whole_request(server, part):
    # row 0's reply comes at 0.05 s a byte, ~20 s in all: every gap is short, the whole is not
    server.fault_for = lambda body: ("trickle", part, 0.05) if "task 0\n" in body["messages"][-1]["content"] else None
    llm = LLM(model="m", base_url=server.url, timeout=1, max_retries=0)
    out = rows(3).map(CoEvolTransform(llm, mode="edit", cache=False), batched=True)
    assert out["coevol_error"][0] == "LLM call failed: no complete reply within timeout=1s (after 1 attempt)"
    assert out["coevol_error"][1:] == [None, None]


# -- 5. the request cache is never a reason to lose a row

def cached_run(server, count=100, **options):
    llm = LLM(model="m", base_url=server.url)
    return rows(count).map(CoEvolTransform(llm, **(options or {"mode": "edit"})), batched=True)


def cache_file() -> str:
    return os.path.join(os.environ["HF_SYNTH_CACHE"], "requests.sqlite")


def checkpoint_and_forget() -> None:
    """Write the WAL into the file and drop this process's connections, as a new process would start."""
    for cache in shared().caches.values():
        cache.close()
    shared().caches.clear()
    with sqlite3.connect(cache_file()) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@pytest.mark.parametrize("requests", ["one a row", "sixteen a row, one after another"])
def test_damaged_pages_are_misses_and_every_row_comes_out(server, caplog, requests):
    # (sixteen: the later requests of rows are looked up together, a turn of the event loop at a time)
    options = {"mode": "edit"} if requests == "one a row" else {"max_rounds": 2}
    first = cached_run(server, **options)
    checkpoint_and_forget()
    with sqlite3.connect(cache_file()) as db:
        keys = [key for (key,) in db.execute("SELECT key FROM replies")]
    size = os.path.getsize(cache_file())
    with open(cache_file(), "r+b") as file:  # overwrite the middle third of the file's pages
        file.seek(size // 3)
        file.write(os.urandom(size // 3))
    looked_at = RequestCache(os.environ["HF_SYNTH_CACHE"])
    unreadable = sum(looked_at.get(key) is None for key in keys)  # each entry looked up alone
    looked_at.close()
    caplog.clear()
    sent = len(server.requests)
    again = cached_run(server, **options)
    assert again["coevol_error"] == [None] * 100 and again["coevol_output"] == first["coevol_output"]
    assert 0 < len(server.requests) - sent == unreadable  # what could not be read was asked again, nothing more
    warnings = [r.getMessage() for r in caplog.records if "could not" in r.getMessage()]
    assert len(warnings) == 1 and re.fullmatch(  # once per run, not once per damaged entry
        rf"The request cache {re.escape(str(cache_file()))} could not read an entry, so it is requested again "
        r"\(.+\); the run goes on\.", warnings[0]), warnings


@pytest.mark.parametrize("statement", ["INSERTs from json_each", "executemany (SQLite without JSON)"])
def test_when_map_returns_its_replies_are_committed_for_any_other_process(server, statement, monkeypatch):
    from hf_synth.llm import cache

    llm = LLM(model="m", base_url=server.url)
    if statement.startswith("executemany"):
        request_cache()._json_each = False
    monkeypatch.setattr(cache, "INSERT_AT_MOST", 4)  # (a commit of 10 replies: three INSERTs)
    out = rows(25).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=10)
    with sqlite3.connect(cache_file()) as db:  # (another connection: what another process would read)
        stored = dict(db.execute("SELECT key, reply FROM replies"))
    assert len(stored) == 25 == len(server.requests)
    assert sorted(json.loads(reply)["text"] for reply in stored.values()) == sorted(out["coevol_output"])


def test_the_writer_copies_the_wal_into_the_file_as_replies_accumulate(server, monkeypatch):
    import time

    from hf_synth.llm import cache

    monkeypatch.setattr(cache, "CHECKPOINT_AFTER", 20)
    llm = LLM(model="m", base_url=server.url)
    rows(1).map(CoEvolTransform(llm, mode="edit"), batched=True)
    empty = os.path.getsize(cache_file())  # (SQLite's own checkpoint comes only at 40,000 pages)
    rows(60).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=20)
    deadline = time.monotonic() + 30  # (after the commit's waiters are released, so a moment later)
    while os.path.getsize(cache_file()) == empty and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.getsize(cache_file()) > empty


def test_a_batchs_first_requests_are_looked_up_in_one_query(server):
    llm = LLM(model="m", base_url=server.url)
    rows(30).map(CoEvolTransform(llm, mode="edit"), batched=True)  # cached: one request a row
    statements = []
    cache = request_cache()  # (this test's folder: HF_SYNTH_CACHE)
    cache._db.set_trace_callback(statements.append)
    try:
        again = rows(30).map(CoEvolTransform(llm, mode="edit"), batched=True, batch_size=10, load_from_cache_file=False)
    finally:
        cache._db.set_trace_callback(None)
    looked_up = [s for s in statements if s.startswith("SELECT")]
    assert again["coevol_error"] == [None] * 30 and len(server.requests) == 30  # all served from the cache
    assert len(looked_up) == 3 and all(len(re.findall(r"[0-9a-f]{64}", s)) == 10 for s in looked_up)  # a query a batch


def test_later_requests_asked_at_once_are_looked_up_in_one_query(server):
    llm = LLM(model="m", base_url=server.url)
    full = CoEvolTransform(llm, max_rounds=2)  # each row's requests wait for one another: 16 a row
    first = rows(20).map(full, batched=True)
    sent = len(server.requests)
    statements = []
    cache = request_cache()
    cache._db.set_trace_callback(statements.append)
    try:
        again = rows(20).map(full, batched=True, load_from_cache_file=False)
    finally:
        cache._db.set_trace_callback(None)
    looked_up = [s for s in statements if s.startswith("SELECT")]
    assert sent == 20 * 16 and len(server.requests) == sent  # the re-run is all served from the cache
    assert again["coevol_output"] == first["coevol_output"]
    # the 20 rows ask their n-th requests in the same turn of the event loop: a query per step, not per request
    assert len(looked_up) <= 16 and sum(len(re.findall(r"[0-9a-f]{64}", s)) for s in looked_up) == 20 * 16


@pytest.mark.parametrize("damage", ["header overwritten", "truncated to half"])
def test_a_damaged_header_is_set_aside_and_the_run_goes_on(server, caplog, damage):
    cached_run(server, 10)
    checkpoint_and_forget()
    if damage == "header overwritten":
        with open(cache_file(), "r+b") as file:
            file.write(b"this is no database" * 10)
    else:
        os.truncate(cache_file(), os.path.getsize(cache_file()) // 2)
    out = cached_run(server, 10)
    assert out["coevol_error"] == [None] * 10 and len(server.requests) == 20
    assert "was damaged: moved to" in caplog.text
    assert any(".damaged-" in name for name in os.listdir(os.environ["HF_SYNTH_CACHE"]))
    checkpoint_and_forget()
    assert len(cached_run(server, 10)) == 10 and len(server.requests) == 20  # the new cache works


@pytest.mark.parametrize("where", ["a file", "inside a file", "a folder as the database"])
def test_a_cache_that_cannot_be_opened_stops_the_run_before_any_request(server, tmp_path, monkeypatch, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    path = {"a file": blocker, "inside a file": blocker / "cache", "a folder as the database": tmp_path / "c"}[where]
    if where == "a folder as the database":
        (path / "requests.sqlite").mkdir(parents=True)
    monkeypatch.setenv("HF_SYNTH_CACHE", str(path))
    with pytest.raises(CacheError, match="cache=False / --no-cache") as error:
        rows(3).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert "\n" not in str(error.value) and server.requests == []


def test_identical_requests_in_flight_are_sent_once(server):
    server.latency = 0.2
    llm = LLM(model="m", base_url=server.url)
    same = datasets.Dataset.from_dict({"instruction": ["the same task"] * 10, "output": ["the same answer"] * 10})
    before = dataclasses.replace(counts())
    out = same.map(CoEvolTransform(llm, max_rounds=1, cache=False), batched=True)
    assert len(set(out["coevol_output"])) == 1 and out["coevol_error"] == [None] * 10
    assert len(server.requests) == 8 and counts().sent - before.sent == 8  # one row's eight calls, shared by ten rows
    assert counts().cached - before.cached == 9 * 8  # the other nine rows wait for them
    assert counts().prompt_tokens - before.prompt_tokens == out["coevol_usage"][0]["prompt_tokens"] > 0
    assert counts().completion_tokens - before.completion_tokens == out["coevol_usage"][0]["completion_tokens"] > 0
    assert out["coevol_usage"] == [out["coevol_usage"][0]] * 10 and out["coevol_usage"][0]["calls"] == 8


def test_identical_requests_in_flight_share_their_failure_too(server):
    server.latency = 0.2
    server.fault_for = lambda body: ("status", 400, {})  # a request the endpoint rejects: no retry
    same = datasets.Dataset.from_dict({"instruction": ["the same task"] * 10, "output": ["the same answer"] * 10})
    out = same.map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit", cache=False), batched=True)
    assert len(server.requests) == 1
    assert len(set(out["coevol_error"])) == 1 and out["coevol_error"][0].startswith("LLM call failed: ")


def test_a_cache_folder_that_does_not_exist_yet_is_made_and_used(server, tmp_path):
    folder = tmp_path / "not" / "yet"
    rows(2).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit", cache=str(folder)), batched=True)
    assert (folder / "requests.sqlite").is_file() and not os.path.exists(cache_file())

# -- 6. the edges of the CLI and the input

cli = hf_synth_cli


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_empty_and_missing_input_is_one_sentence(server, tmp_path):
    url = ("--model", "m", "--base-url", server.url)
    (tmp_path / "empty.jsonl").write_text("")
    result = cli("coevol", str(tmp_path / "empty.jsonl"), "--output", str(tmp_path / "o1"), *url)
    assert result.returncode == 1 and last_line(result).startswith("error: ") and "is empty" in last_line(result)
    assert "Traceback" not in result.stderr

    datasets.Dataset.from_dict({"instruction": [], "output": []}).to_parquet(tmp_path / "empty.parquet")
    result = cli("coevol", str(tmp_path / "empty.parquet"), "--output", str(tmp_path / "o2"), *url)
    assert result.returncode == 0, result.stderr
    out = datasets.load_from_disk(str(tmp_path / "o2"))
    assert len(out) == 0 and out.column_names == ["instruction", "output", "coevol_output", "coevol_rounds",
                                                  "coevol_trace", "coevol_error", "coevol_usage"]

    result = cli("coevol", str(tmp_path / "empty.parquet"), "--output", str(tmp_path / "o3"), "--limit", "-1", *url)
    assert result.returncode == 2 and "'-1' is not a number of rows" in result.stderr

    splits = datasets.DatasetDict({"test": rows(2)})
    splits.save_to_disk(str(tmp_path / "dict"))
    result = cli("coevol", str(tmp_path / "dict"), "--output", str(tmp_path / "o4"), *url)
    assert result.returncode == 1 and "has no split 'train'; it has 'test': pass --split" in last_line(result)
    assert "Traceback" not in result.stderr and server.requests == []


def test_the_cli_says_when_a_map_was_reused_and_retries_only_the_failed_rows(server, tmp_path):
    rows(6).to_json(tmp_path / "in.jsonl")
    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if "task 2\n" in body["messages"][-1]["content"] else None
    job = ("coevol", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"), "--mode", "edit",
           "--model", "m", "--base-url", server.url, "--max-retries", "1")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    first = cli(*job, env=env)
    assert first.returncode == 0 and "rows: 6, failed: 1" in first.stdout, first.stderr
    second = cli(*job, env=env)
    assert "datasets reused the finished map of this input and settings (6 rows, 1 failed; no request sent); " \
           "to run the failed rows again, add --retry-failed" in second.stderr
    sent = len(server.requests)
    server.fault_for = None
    third = cli(*job, "--retry-failed", env=env)
    assert third.returncode == 0 and "retrying 1 failed rows of 6" in third.stderr, third.stderr
    assert len(server.requests) == sent + 1
    out = datasets.load_from_disk(str(tmp_path / "out"))
    assert out["coevol_error"] == [None] * 6 and out["instruction"] == [f"task {i}" for i in range(6)]


def num_proc_run_sending(server, tmp_path) -> subprocess.Popen:
    """The CLI over 200 rows with two num_proc workers, in its own process group, once both are sending."""
    import time

    rows(200).to_json(tmp_path / "in.jsonl")
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_synth.cli", "coevol", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o"),
         "--model", "m", "--base-url", server.url, "--num-proc", "2", "--max-concurrency", "8"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    while len(server.requests) < 4 and process.poll() is None:  # both workers are sending
        time.sleep(0.1)
    return process


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_interrupting_a_num_proc_run_stops_it_once_and_leaves_no_worker(tmp_path, signal_name):
    import signal

    import psutil

    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.5) as server:
        process = num_proc_run_sending(server, tmp_path)
        workers = psutil.Process(process.pid).children(recursive=True)
        assert len(workers) >= 2
        if signal_name == "SIGINT":  # Ctrl-C reaches the whole process group
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: completed requests are cached")
    assert "Traceback" not in stderr
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert alive == []


PYTHON_CTRL_C = """
import os, signal, sys, threading, time
import datasets
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit
from hf_synth import LLM, CoEvolTransform, status
with FakeOpenAI(coevol_replies(prefer_edit), latency=0.5) as server:
    ds = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(200)], "output": ["a"] * 200})
    def ctrl_c_once_both_workers_send():
        while len(server.requests) < 4:
            time.sleep(0.1)
        os.killpg(0, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
    threading.Thread(target=ctrl_c_once_both_workers_send, daemon=True).start()
    try:
        with status.show(stream=open(os.devnull, "w")):
            ds.map(CoEvolTransform(LLM(model="m", base_url=server.url, max_concurrency=8), cache=False),
                   batched=True, num_proc=2)
    except BaseException as exc:
        print(type(exc).__name__)
"""


def test_ctrl_c_on_a_num_proc_map_in_python_is_a_keyboard_interrupt(tmp_path):
    # datasets raises its pool's TimeoutError while it handles the interrupt; the status block says what happened
    env = {**os.environ, "PYTHONPATH": os.path.dirname(__file__), "HF_DATASETS_CACHE": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PYTHON_CTRL_C], capture_output=True, text=True, env=env,
                            timeout=300, start_new_session=True)
    assert result.stdout.strip() == "KeyboardInterrupt", result.stderr[-3000:]


def test_a_num_proc_worker_killed_mid_run_is_one_sentence(tmp_path):
    import signal

    import psutil

    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.5) as server:
        process = num_proc_run_sending(server, tmp_path)
        pool = [child for child in psutil.Process(process.pid).children()
                if "resource_tracker" not in " ".join(child.cmdline())]
        senders = [child for child in pool if child.net_connections(kind="tcp")]  # not datasets' manager process
        senders[0].send_signal(signal.SIGKILL)  # as the kernel's out-of-memory killer does
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: A num_proc worker process died"), stderr[-3000:]
    assert "Traceback" not in stderr
    assert not (tmp_path / "o").exists()


def test_mixed_sharegpt_and_openai_conversations_in_one_column(server):
    conversations = [[{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
                     [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "hey there"}]]
    mixed = datasets.Dataset.from_list([{"conversations": c} for c in conversations])
    assert mixed[0]["conversations"][0]["role"] is None  # Arrow gave the ShareGPT turns every key
    out = mixed.map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == [None, None]
    assert [[m["role"] for m in messages] for messages in out["coevol_messages"]] == [["user", "assistant"]] * 2
    assert out["coevol_messages"][0][0]["content"] == "hi"


# -- 3. real-world files

def test_conversations_whose_turns_have_uneven_keys_are_read_from_a_jsonl_file(server, tmp_path):
    # the shape of most public chat data: a `weight` here, a `name` there, ShareGPT and OpenAI turns
    turns = [[{"role": "user", "content": "hi", "weight": 0}, {"role": "assistant", "content": "hello", "weight": 1}],
             [{"role": "system", "content": "Be brief.", "name": "rules"}, {"role": "user", "content": "why?"},
              {"role": "assistant", "content": "because"}],
             [{"from": "human", "value": "x?"}, {"from": "gpt", "value": "y", "weight": 1}]]
    (tmp_path / "chats.jsonl").write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
    chats = datasets.load_dataset("json", data_files=str(tmp_path / "chats.jsonl"), split="train")
    assert "Json" in repr(chats.features["messages"])  # datasets could not give the turns one struct
    out = chats.map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == [None, None, None] and len(server.requests) == 3
    assert [[m["role"] for m in messages] for messages in out["coevol_messages"]] == [
        ["user", "assistant"], ["system", "user", "assistant"], ["user", "assistant"]]
    assert [messages[0]["content"] for messages in out["coevol_messages"]] == ["hi", "Be brief.", "x?"]


def test_a_file_that_is_not_utf8_is_one_sentence_before_any_request(server, tmp_path):
    data = tmp_path / "latin.jsonl"
    data.write_bytes(b'{"instruction": "fine", "output": "x"}\n{"instruction": "caf\xe9 au lait", "output": "y"}\n')
    result = cli("coevol", data, "--output", tmp_path / "out", "--model", "m", "--base-url", server.url)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"error: {data} is not UTF-8: line 2 holds the byte 0xe9; "
                                                      "re-encode the file as UTF-8 (e.g. iconv -f latin1 -t utf-8).")
    assert server.requests == []


def test_a_saved_dataset_dict_with_an_empty_split_is_read_split_by_split(tmp_path):
    from hf_synth.runs.inputs import load_input

    features = datasets.Features({"instruction": datasets.Value("string"), "output": datasets.Value("string")})
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"instruction": ["a"], "output": ["b"]}, features=features),
                          "test": datasets.Dataset.from_dict({"instruction": [], "output": []}, features=features)}
                         ).save_to_disk(str(tmp_path / "saved"))
    assert load_input(str(tmp_path / "saved"), "train")["instruction"] == ["a"]
    empty = load_input(str(tmp_path / "saved"), "test")
    assert len(empty) == 0 and empty.features == features


def test_an_explicit_retry_asks_again_for_a_cached_reply_that_failed_its_row(server):
    server.fault_for = lambda body: "empty" if "task 1\n" in body["messages"][-1]["content"] else None
    transform = CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit")
    out = rows(3).map(transform, batched=True)
    assert out["coevol_error"][1] == "LLM call failed: the editor's reply was empty" and len(server.requests) == 3
    server.fault_for = None
    assert rows(3).map(transform, batched=True)["coevol_error"] == out["coevol_error"]  # a plain re-run: cached
    assert len(server.requests) == 3
    fixed = retry_failed(out, transform)
    assert fixed["coevol_error"] == [None, None, None] and len(server.requests) == 4  # row 1's request only


def test_a_cache_another_process_locks_mid_run_neither_stalls_the_run_nor_loses_its_replies(server, caplog):
    cached_run(server, 2)  # the cache file exists
    holder = sqlite3.connect(cache_file(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    out = rows(10).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 10
    assert "locked" in caplog.text and "they are kept until it is free" in caplog.text
    sent = len(server.requests)
    again = rows(10).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert again["coevol_error"] == [None] * 10 and len(server.requests) == sent  # kept replies are served
    holder.execute("ROLLBACK")
    holder.close()
    sent = len(server.requests)
    checkpoint_and_forget()  # closing writes what was kept
    again = rows(10).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert again["coevol_error"] == [None] * 10 and len(server.requests) == sent  # nothing paid twice


def test_the_cache_writer_thread_ends_when_idle_and_the_next_reply_starts_another(server, monkeypatch):
    import threading
    import time

    from hf_synth.llm import cache

    monkeypatch.setattr(cache, "WRITER_IDLE", 0.2)  # (2 s in use)

    def writers():
        return [thread for thread in threading.enumerate() if thread.name == "hf_synth-cache-writer"]

    for count in (3, 6):  # (the second run: three new rows, three from the cache)
        cached_run(server, count)
        deadline = time.monotonic() + 30
        while writers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writers() == []
    checkpoint_and_forget()
    with sqlite3.connect(cache_file()) as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 6 == len(server.requests)


KILLED_JOB = """
import sys, datasets
from hf_synth import LLM, CoEvolTransform
from hf_synth.llm import cache
cache.COMMIT_EVERY = 600  # (no commit before the kill, however slow the machine is to take the lock)
rows = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(40)], "output": ["x"] * 40})
rows.map(CoEvolTransform(LLM(model="m", base_url=sys.argv[1], max_concurrency=4), mode="edit"), batched=True)
"""


@pytest.mark.parametrize("after", ["a new process", "this process, its cache open since before the kill"])
def test_a_process_killed_while_no_reply_can_be_committed_pays_again_only_for_those_in_flight(server, after):
    # (the second: as a Ray actor that lives on and is given the rows of one that was killed)
    import signal
    import time

    cached_run(server, 1)  # the cache file exists
    holder = sqlite3.connect(cache_file(), isolation_level=None)
    server.latency = 0.05
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, server.url], env=os.environ.copy(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(server.requests) < 2 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        holder.execute("BEGIN IMMEDIATE")  # another process writing from now on: nothing is committed
        while len(server.requests) < 21 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert job.poll() is None, "the job finished before it could be killed"
        job.send_signal(signal.SIGKILL)
        job.wait()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    paid = len(server.requests) - 1
    with sqlite3.connect(cache_file()) as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 1  # none of the job's was committed
    if after == "a new process":
        checkpoint_and_forget()  # as a new process would start: it replays what the killed one logged
    llm = LLM(model="m", base_url=server.url, max_concurrency=4)
    out = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(40)], "output": ["x"] * 40}).map(
        CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 40
    paid_again = len(server.requests) - 1 - 40  # (the requests in flight at the kill among them, whenever they arrived)
    assert paid >= 20 and paid_again <= 4, (paid, paid_again)  # at most the 4 in flight at the kill
    assert not [name for name in os.listdir(os.environ["HF_SYNTH_CACHE"]) if ".log-" in name]  # replayed, removed


def test_a_reply_log_left_by_a_process_that_is_gone_is_replayed_once_and_a_live_one_is_left_alone():
    import fcntl

    from hf_synth.llm.cache import RequestCache, key_of

    folder = os.environ["HF_SYNTH_CACHE"]
    os.makedirs(folder)
    reply = {"text": "logged", "finish_reason": "stop", "prompt_tokens": 1, "completion_tokens": 2}
    keys = [key_of(b'{"model":"m"}', [{"role": "user", "content": str(i)}]) for i in range(3)]
    gone, alive = (os.path.join(folder, f"requests.sqlite.log-{name}") for name in ("1-gone", "2-alive"))
    with open(gone, "wb") as file:  # the last line cut by the kill
        file.write(f"{keys[0]}\t{json.dumps(reply)}\n{keys[1]}\tnot a reply\n{keys[2]}\t{{\"te".encode())
    with open(alive, "wb") as file:
        file.write(f"{keys[2]}\t{json.dumps(reply)}\n".encode())
    owner = os.open(alive, os.O_RDONLY)
    fcntl.flock(owner, fcntl.LOCK_EX)  # its process appends to it
    try:
        cache = RequestCache(folder)
        assert cache.get(keys[0]) == reply and cache.get(keys[1]) is None and cache.get(keys[2]) is None
        assert not os.path.exists(gone) and os.path.exists(alive) and len(cache) == 1
        cache.close()
    finally:
        os.close(owner)  # the process is gone
    cache = RequestCache(folder)
    assert cache.get(keys[2]) == reply and not os.path.exists(alive) and len(cache) == 2
    cache.close()


def test_on_a_filesystem_that_cannot_lock_files_the_log_is_off_and_every_reply_is_still_committed(server, monkeypatch,
                                                                                                   caplog):
    import errno
    import fcntl

    flock = fcntl.flock

    def no_locks_for_logs(descriptor, operation):  # (datasets' own file locks still work)
        if ".log-" in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(errno.ENOLCK, "No locks available")
        return flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", no_locks_for_logs)
    out = cached_run(server, 5)
    assert out["coevol_error"] == [None] * 5
    assert caplog.text.count("could not log replies as they completed") == 1
    assert not [name for name in os.listdir(os.environ["HF_SYNTH_CACHE"]) if ".log-" in name]
    checkpoint_and_forget()
    with sqlite3.connect(cache_file()) as db:
        assert db.execute("SELECT COUNT(*) FROM replies").fetchone()[0] == 5 == len(server.requests)


def test_a_start_whose_cache_another_process_holds_waits_a_bounded_time_then_says_so(server, monkeypatch):
    from hf_synth.llm import cache

    cached_run(server, 2)
    checkpoint_and_forget()  # as a new process would start
    monkeypatch.setattr(cache, "OPEN_WAIT", 0.5)  # (10 s in use)
    holder = sqlite3.connect(cache_file(), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    try:
        sent = len(server.requests)
        with pytest.raises(CacheError, match=r"is locked by another process \(still after 0.5 s\): let it finish, "
                                             r"point HF_SYNTH_CACHE \(or cache=\) at another folder"):
            rows(3).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
        assert len(server.requests) == sent  # nothing sent that could not be kept
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    out = rows(3).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 3  # free again: the run goes


def test_retrying_a_saved_run_writes_nothing_into_its_folder(server, tmp_path):
    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if "task 3\n" in body["messages"][-1]["content"] else None
    transform = CoEvolTransform(LLM(model="m", base_url=server.url, max_retries=0), mode="edit")
    rows(6).map(transform, batched=True).save_to_disk(str(tmp_path / "run"))
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    saved = datasets.load_from_disk(str(tmp_path / "run"))
    for _ in range(2):  # still failing: each retry is a full dataset that datasets would write beside the files
        assert retry_failed(saved, transform)["coevol_error"][3] is not None
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_a_retry_that_would_mix_settings_or_inputs_is_refused_and_a_new_budget_is_recorded(server, tmp_path):
    rows(4).to_json(tmp_path / "in.jsonl")
    server.fault_for = lambda body: ("finish", "length") if "task 2\n" in body["messages"][-1]["content"] else None
    job = ("coevol", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out"), "--max-rounds", "1",
           "--model", "m", "--base-url", server.url)
    assert cli(*job).returncode == 0
    server.fault_for = None
    sent = len(server.requests)
    for change, says in ((("--max-rounds", "2"), "the rows in {out} were made with max_rounds=1, not 2"),
                         (("--model", "other"), "the rows in {out} were made with the model 'm', not 'other'")):
        refused = cli(*job, *change, "--retry-failed")
        assert refused.returncode == 1 and says.format(out=tmp_path / "out") in refused.stderr, refused.stderr
    edited = rows(4).to_pandas()
    edited.loc[1, "instruction"] = "task 1, edited"
    datasets.Dataset.from_pandas(edited).to_json(tmp_path / "in.jsonl")
    refused = cli(*job, "--retry-failed")
    assert refused.returncode == 1 and "row 1 of the input differs from the row the run" in refused.stderr
    assert len(server.requests) == sent  # nothing paid for what was refused
    rows(4).to_json(tmp_path / "in.jsonl")
    retried = cli(*job, "--max-tokens", "2000", "--retry-failed")  # a bigger budget for the cut reply
    assert retried.returncode == 0, retried.stderr
    assert "1 of them failed on a reply cut at max_tokens" in retried.stderr
    recipe = json.loads((tmp_path / "out" / "hf_synth_recipe.json").read_text())
    assert recipe["steps"][0]["llm"]["max_tokens"] == 1000  # what made the rows of the first run
    assert [retry["rows"] for retry in recipe["retries"]] == [1]
    assert recipe["retries"][0]["steps"][0]["llm"]["max_tokens"] == 2000
    assert datasets.load_from_disk(str(tmp_path / "out"))["coevol_error"] == [None] * 4
