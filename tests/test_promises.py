"""Promises of the README and docs/reliability.md that a deliberate bug once slipped past: each test
sets the fake server up to trigger the promise, over real HTTP, and fails when the promise breaks."""
import dataclasses
import email.utils
import time
from pathlib import Path

import datasets
import pytest
from command import hf_synth_cli
from fake_openai import FakeOpenAI, agent_of, coevol_replies, prefer_edit, r2s_replies, review_replies

import hf_synth
from hf_synth import LLM, CoEvolTransform, EndpointError, R2STransform, ReviewInstructTransform
from hf_synth.llm.door import endpoints
from hf_synth.llm.endpoint import wait_before_retry
from hf_synth.llm.failures import MAX_RETRY_AFTER, StatusError
from hf_synth.status import counts

SAMPLE = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"


def rows(count: int, prefix: str = "task") -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [f"{prefix} {i}" for i in range(count)],
                                       "output": [f"answer {i}" for i in range(count)]})


def endpoint_of(llm):
    return endpoints(llm)[0]


def edit(llm, **options):
    return CoEvolTransform(llm, mode="edit", **options)


@pytest.fixture
def server():
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        yield fake


# -- Retry-After

def test_retry_after_is_honoured(server):
    # backoff alone would wait at most 1 s before the first retry; the server asks for 2
    server.faults = [("status", 429, {"Retry-After": "2"})]
    started = time.monotonic()
    out = rows(1).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    assert out["coevol_error"] == [None] and len(server.requests) == 2
    assert time.monotonic() - started >= 2.0  # measured on the client: a busy machine only stretches it


@pytest.mark.parametrize("header, waits", [({"Retry-After": "3600"}, MAX_RETRY_AFTER), ({"retry-after-ms": "1500"}, 1.5),
                                           ({"Retry-After": "7"}, 7.0)])
def test_retry_after_is_read_from_the_reply_headers_and_capped(header, waits):
    assert wait_asked_by(header) == waits


def test_retry_after_as_an_http_date_waits_until_then():
    assert wait_asked_by({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # already past
    then = int(time.time()) + 40  # the header has whole seconds
    before = time.time()
    waits = wait_asked_by({"Retry-After": email.utils.formatdate(then, usegmt=True)})
    assert then - time.time() <= waits <= then - before
    assert 0 < wait_asked_by({"Retry-After": "soon"}) <= 1  # unreadable: the first backoff instead


def wait_asked_by(header: dict) -> float:
    """What the retry policy waits before the first retry of a request answered 429 with `header`."""
    return wait_before_retry(StatusError(429, "slow down", header), 1)


# -- 403 and 404 stop the run

@pytest.mark.parametrize("status, says", [
    (401, "rejected the API key (401): set OPENAI_API_KEY or pass LLM(api_key=...) with a valid key."),
    (403, "refused access to model 'm' (403): check the key's permissions."),
    (404, "has no model 'm' (404); it serves 'fake-model': check model=.")])
def test_401_403_and_404_stop_the_run_with_one_sentence(server, status, says):
    server.fault_for = lambda body: status
    with pytest.raises(EndpointError) as error:
        rows(50).map(edit(LLM(model="m", base_url=server.url, max_concurrency=4)), batched=True)
    assert str(error.value) == f"{server.url} {says}"
    assert len(server.requests) <= 4  # the first wave only: neither retried nor sent for every row


def test_a_404_from_an_endpoint_that_lists_no_models_says_what_to_check(server):
    server.fault_for = lambda body: 404
    server.model = None  # GET /v1/models answers, but with nothing usable
    with pytest.raises(EndpointError) as error:
        rows(2).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    assert str(error.value) == (f"{server.url} has no model 'm' or no chat completions route (404): check model= and "
                                "base_url= (it usually ends in /v1).")


@pytest.mark.parametrize("served, more", [(10, ""), (11, " …")])
def test_a_404_names_the_first_ten_models_an_endpoint_serves(server, served, more):
    server.fault_for = lambda body: 404
    server.listed = [f"model-{i:02d}" for i in range(served)]
    with pytest.raises(EndpointError) as error:
        rows(2).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    named = ", ".join(f"'model-{i:02d}'" for i in range(10))
    assert str(error.value) == f"{server.url} has no model 'm' (404); it serves {named}{more}: check model=."


# -- the adaptive limit

def test_a_wave_of_429s_halves_the_limit_once_and_it_grows_back(server):
    server.latency = 0.02
    server.faults = [("status", 429, {"Retry-After": "0"})] * 64  # the whole first wave is refused
    llm = LLM(model="m", base_url=server.url, max_concurrency=64)
    out = rows(200).map(edit(llm, cache=False), batched=True)
    engine = endpoint_of(llm)
    assert out["coevol_error"] == [None] * 200
    assert engine.limit.cuts == 1  # one round trip, one cut: not 64 cuts down to 1
    assert 32 < engine.limit.limit <= 64  # halved to 32, then grown back with the successes


# -- the breaker

@pytest.mark.parametrize("every", [3, 2])
def test_rows_that_fail_for_good_among_rows_that_complete_never_stop_the_run(server, every):
    # one request at a time, no retries: every `every`-th row fails for good with a 500, while the
    # endpoint completes the others: it is serving the run, so every row comes out
    server.fault_for = lambda body: ("status", 500, {}) if (int(body["messages"][-1]["content"].split(
        "task ", 1)[1].split("\n", 1)[0]) + 1) % every == 0 else None
    llm = LLM(model="m", base_url=server.url, max_concurrency=1, max_retries=0)
    out = rows(100).map(edit(llm, cache=False), batched=True)
    assert sum(e is not None for e in out["coevol_error"]) == 100 // every and len(server.requests) == 100


def test_an_endpoint_that_never_completed_a_request_of_the_job_stops_it_after_ten(server):
    server.fault_for = lambda body: ("status", 500, {})
    llm = LLM(model="m", base_url=server.url, max_concurrency=1, max_retries=0)
    with pytest.raises(EndpointError, match=r"is failing: 10 requests in a row failed after their retries, and it has "
                                            r"completed none of this job's requests \(the last: HTTP 500"):
        rows(100).map(edit(llm, cache=False), batched=True)
    assert len(server.requests) == 10


# -- cut working notes are kept, cut verdicts are not

def test_cut_debate_notes_and_advice_are_kept(server):
    server.fault_for = lambda body: ("finish", "length") if agent_of(body["messages"]) in (
        "positive", "critical", "advisor") else None
    out = rows(2).map(CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    assert out["coevol_error"] == [None, None] and out["coevol_rounds"] == [1, 1]
    trace = out["coevol_trace"][0][0]
    whole = coevol_replies(prefer_edit)([{"role": "system", "content": "advisor"}, {"role": "user", "content": "x"}])
    assert trace["suggestions"] == whole[:len(whole) // 2]  # the cut advice, as it came


# -- unusable replies are cached

@pytest.mark.parametrize("fault, says", [("empty", "the editor's reply was empty"), (("finish", "length"), "cut at max_tokens"),
                                         (("finish", "content_filter"), "content filter")])
def test_empty_cut_and_filtered_replies_are_cached(server, fault, says):
    server.fault_for = lambda body: fault if "task 1\n" in body["messages"][-1]["content"] else None
    llm = LLM(model="m", base_url=server.url)
    first = rows(3).map(edit(llm), batched=True)
    sent = len(server.requests)
    server.fault_for = None  # the same request would now be answered well, but it is not sent again
    again = rows(3).map(edit(llm), batched=True)  # in memory: only the request cache can answer
    assert sent == 3 and len(server.requests) == 3
    assert says in first["coevol_error"][1] and again["coevol_error"] == first["coevol_error"]


# -- the key never leaks, and never keys the cache

def test_a_key_echoed_in_an_error_body_is_masked(server):
    key = "sk-echoed-0123456789abcdef"
    server.error_message = f"Bad request for key {key}: try again"
    server.fault_for = lambda body: ("status", 400, {}) if "task 0\n" in body["messages"][-1]["content"] else (
        ("status", 500, {"Retry-After": "0"}) if "task 1\n" in body["messages"][-1]["content"] else None)
    out = rows(3).map(edit(LLM(model="m", base_url=server.url, api_key=key, max_retries=1)), batched=True)
    assert out["coevol_error"][0] == "LLM call failed: HTTP 400: Bad request for key ***: try again (after 1 attempt)"
    assert out["coevol_error"][1].startswith("LLM call failed: HTTP 500: Bad request for key ***: try again")
    assert not any(key in str(value) for column in out.column_names for value in out[column])


def test_the_request_cache_does_not_depend_on_the_key(server):
    rows(4).map(edit(LLM(model="m", base_url=server.url, api_key="sk-first-key")), batched=True)
    again = rows(4).map(edit(LLM(model="m", base_url=server.url, api_key="sk-rotated-key")), batched=True)
    assert again["coevol_error"] == [None] * 4 and len(server.requests) == 4


def test_llm_reads_openai_api_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    rows(1).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    assert server.headers[0]["Authorization"] == "Bearer sk-from-the-environment"


cli = hf_synth_cli


def test_cli_api_key_env_and_no_cache(server, tmp_path):
    job = ("coevol", str(SAMPLE), "--limit", "2", "--mode", "edit", "--model", "m", "--base-url", server.url,
           "--api-key-env", "MY_ENDPOINT_KEY")
    env = {"MY_ENDPOINT_KEY": "sk-named-variable", "OPENAI_API_KEY": "sk-not-this-one"}
    assert cli(*job, "--output", str(tmp_path / "a"), env=env).returncode == 0
    assert [h["Authorization"] for h in server.headers] == ["Bearer sk-named-variable"] * 2
    assert cli(*job, "--output", str(tmp_path / "b"), env=env).returncode == 0
    assert len(server.requests) == 2  # answered by the request cache
    # --no-cache: sent again (a fresh datasets cache, so that datasets does not answer either)
    third = cli(*job, "--output", str(tmp_path / "c"), "--no-cache", env={**env, "HF_DATASETS_CACHE": str(tmp_path / "d")})
    assert third.returncode == 0 and len(server.requests) == 4


def test_cli_num_proc_divides_the_concurrency_among_workers(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.2) as server:
        datasets.Dataset.from_dict(rows(40).to_dict()).to_json(tmp_path / "in.jsonl")
        result = cli("coevol", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "o"), "--mode", "edit",
                     "--model", "m", "--base-url", server.url, "--num-proc", "2", "--max-concurrency", "4",
                     "--batch-size", "20")
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == 40 and server.peak_in_flight <= 4  # 2 per worker, not 4 each


# -- columns, documents, text and tokens

def test_the_response_column_alias(server):
    aliased = datasets.Dataset.from_dict({"instruction": ["task 0"], "response": ["the old response"]})
    out = aliased.map(CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    assert out["coevol_output"] == ["the old response [edited]"] and out["coevol_rounds"] == [1]
    assert sum("the old response" in m["content"] for body in server.requests for m in body["messages"]) >= 4


def test_r2s_cuts_long_documents_at_its_default_budget_and_says_so():
    sentence = "Tea came from China. "
    document = sentence * 300  # 6,300 characters
    with FakeOpenAI(r2s_replies()) as server:
        out = datasets.Dataset.from_dict({"text": [document, sentence * 10]}).map(
            R2STransform(LLM(model="m", base_url=server.url), turns=1), batched=True)
    seen = [body["messages"][-1]["content"] for body in server.requests if agent_of(body["messages"]) == "questioner"]
    shown = seen[0].split("[Document]\n", 1)[1].split("\n\n[Planned logic flow]", 1)[0]
    # 6,000 characters: above the longest document of the paper's benchmark (4,001, Table 1)
    assert len(shown) <= 6000 and shown.endswith("China.") and shown.count(sentence.strip()) == 6000 // len(sentence)
    assert out["r2s_note"][0] == f"document truncated from {len(document)} to {len(shown)} characters (max_document_chars=6000)"
    assert out["r2s_note"][1] is None


NON_ASCII = "Übersetze 👋 ‏مرحبا 你好 \u202eabc"


@pytest.mark.parametrize("method", ["coevol", "review", "r2s"])
def test_non_ascii_text_passes_through_every_method_unchanged(method):
    replies = {"coevol": coevol_replies(prefer_edit), "review": review_replies(), "r2s": r2s_replies()}[method]
    with FakeOpenAI(replies) as server:
        llm = LLM(model="m", base_url=server.url)
        if method == "coevol":
            out = datasets.Dataset.from_dict({"instruction": [NON_ASCII], "output": [NON_ASCII]}).map(
                CoEvolTransform(llm, max_rounds=1), batched=True)
            assert out["coevol_output"] == [f"{NON_ASCII} [edited]"]
        elif method == "review":
            out = datasets.Dataset.from_dict({"instruction": [NON_ASCII]}).map(
                ReviewInstructTransform(llm, rounds=2, num_reviewers=1), batched=True)
            assert out["review_messages"][0][0]["content"] == NON_ASCII
        else:
            text = f"{NON_ASCII}. Der Tee kam aus China."
            out = datasets.Dataset.from_dict({"text": [text]}).map(R2STransform(llm, turns=1), batched=True)
            assert out["r2s_cod"][0][0]["find"][0]["text"] == f"{NON_ASCII}." and out["r2s_cod"][0][0]["find"][0]["grounded"]
        assert NON_ASCII in server.requests[0]["messages"][-1]["content"]  # sent as it is
        assert out[f"{out.column_names[-1].split('_')[0]}_error"] == [None]


def test_prompt_and_completion_tokens_are_counted_in_their_fields(server):
    # the fake server counts words: the prompt's words in prompt_tokens, the reply's in completion_tokens
    out = rows(1).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    prompt = sum(len(m["content"].split()) for m in server.requests[0]["messages"])
    completion = len(out["coevol_output"][0].split())
    assert prompt > 20 and completion == 2  # "draft [edited]": the two can't be swapped unnoticed
    assert out["coevol_usage"] == [{"calls": 1, "prompt_tokens": prompt, "completion_tokens": completion,
                                    "reasoning_tokens": 0, "cost": None}]  # (no price known for "m")


# -- models without a system role (CoEvol Appendix A.2)

def test_without_a_system_role_the_role_prompt_goes_before_the_first_user_turn(server):
    folded = LLM(model="m", base_url=server.url, system_role=False)
    out = rows(1).map(edit(folded), batched=True)
    sent = server.requests[0]["messages"]
    assert [m["role"] for m in sent] == ["user"] and out["coevol_error"] == [None]
    assert sent[0]["content"].startswith("You are a professional editor") and sent[0]["content"].endswith(
        "### Response:\n")
    # it changes what is asked: its own cache entries and fingerprint, the default's unchanged
    rows(1).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    assert [m["role"] for m in server.requests[1]["messages"]] == ["system", "user"]
    assert edit(folded).fingerprint_state() != edit(LLM(model="m", base_url=server.url)).fingerprint_state()


def test_without_a_system_role_other_conversations_keep_their_turns():
    folded = LLM(model="m", base_url="http://127.0.0.1:9/v1", system_role=False)
    no_system = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}]
    assert folded.messages(no_system) == no_system
    assert folded.messages([{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hi."}]) == [
        {"role": "user", "content": "Be brief."}, {"role": "assistant", "content": "Hi."}]


def test_settings_rebuild_the_llm_without_its_key():
    url, other = "http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"
    chosen = dict(model="m", temperature=0.3, top_p=0.5, max_tokens=77, seed=4, max_concurrency=3, timeout=9.0,
                  max_retries=2, extra_body={"top_k": 5}, requests_per_minute=60, tokens_per_minute=1000,
                  api_key_env="OTHER_KEY", system_role=False, structured="vllm", batch="openai", batch_poll=5.0,
                  prices=(0.15, 0.6))
    one = LLM(base_url=url, api_key="sk-only-here-0000000000", **chosen)
    assert one.settings() == {**chosen, "base_url": url}
    assert LLM(**one.settings(), api_key="sk-only-here-0000000000") == one
    assert LLM(model="m", base_url=[url, other]).settings()["base_url"] == [url, other]
    assert LLM().settings()["base_url"] is None
    assert repr(one) == "LLM('m' at http://127.0.0.1:9/v1, temperature=0.3, top_p=0.5, max_tokens=77)"
    assert repr(LLM()) == "LLM(embedded llama.cpp)"  # sampling left to the method that uses it
    assert repr(LLM().with_defaults(max_tokens=9)) == "LLM(embedded llama.cpp, temperature=0.0, top_p=1.0, max_tokens=9)"
    assert one.with_defaults(max_tokens=9) is one  # what the user set wins


def test_an_llms_rate_limits_make_one_budget_its_replicas_share(server):
    llm = LLM(model="m", base_url=[server.url, server.url], requests_per_minute=600, tokens_per_minute=50_000,
              max_tokens=300)
    assert rows(2).map(edit(llm), batched=True)["coevol_error"] == [None, None]
    engines = endpoints(llm)
    budget = engines[0].budget
    assert len(engines) == 2 and engines[1].budget is budget
    assert (budget.requests.max_rate, budget.tokens.max_rate, budget.max_tokens) == (600, 50_000, 300)


def test_the_run_counts_rows_failed_rows_completions_retries_and_failed_calls(server):
    failed_once = set()

    def fault(body):  # tasks 1 and 2 fail once, then succeed; tasks 3 and 4 always fail
        task = str(body["messages"]).split("task ", 1)[1][0]  # the row's number
        if task in "34" or (task in "12" and task not in failed_once):
            failed_once.add(task)
            return ("status", 500, {"Retry-After": "0"})
        return None

    server.fault_for = fault
    before = dataclasses.replace(counts())
    out = rows(5).map(edit(LLM(model="m", base_url=server.url, max_retries=1)), batched=True)
    after = counts()
    assert [error is not None for error in out["coevol_error"]] == [False, False, False, True, True]
    counted = {name: getattr(after, name) - getattr(before, name) for name in ("rows", "rows_failed", "sent", "retries",
                                                                              "failed")}
    assert counted == {"rows": 5, "rows_failed": 2, "sent": 3, "retries": 2, "failed": 2}
    assert after.in_flight == 0


@pytest.mark.parametrize("status, retried", [(408, True), (409, True), (410, False), (422, False)])
def test_408_and_409_are_retried_other_4xx_mark_the_row(server, status, retried):
    server.faults = [("status", status, {"Retry-After": "0"})]
    out = rows(1).map(edit(LLM(model="m", base_url=server.url)), batched=True)
    assert len(server.requests) == (2 if retried else 1)
    assert out["coevol_error"] == [None] if retried else out["coevol_error"][0].startswith(f"LLM call failed: HTTP {status}")


def test_a_429_that_outlives_its_retries_counts_toward_stopping_the_run(server):
    server.fault_for = lambda body: ("status", 429, {"Retry-After": "0"})
    llm = LLM(model="m", base_url=server.url, max_concurrency=1, max_retries=0)
    with pytest.raises(EndpointError, match=r"is failing: 10 requests in a row failed after their retries"):
        rows(40).map(edit(llm, cache=False), batched=True)
    assert len(server.requests) == 10


def test_a_run_spares_older_objects_from_the_collector_and_hands_them_back(llm):
    import gc
    import weakref

    from hf_synth.llm import loop
    from hf_synth.protocol import Chat, user
    from hf_synth.transforms.runner import Runner

    class Node:
        pass

    seen = {}

    def row():
        seen["frozen during the run"] = gc.get_freeze_count()
        seen["thresholds during the run"] = gc.get_threshold()
        young = Node()
        young.me = young  # cyclic garbage made during the run is still collected during it
        gone = weakref.ref(young)
        del young
        gc.collect()
        seen["young cycle collected"] = gone() is None
        reply = yield Chat("editor", [user("Say something.")])
        return reply

    assert gc.get_freeze_count() == 0
    before = gc.get_threshold()
    gc.set_threshold(900, *before[1:])  # the process's own settings
    try:
        outcomes = loop.run(Runner({}, llm, cache_dir=False).run([row()]))
        assert gc.get_threshold() == (900, *before[1:])  # given back
    finally:
        gc.set_threshold(*before)
    assert outcomes[0].error is None
    assert seen["frozen during the run"] > 10_000  # the modules' objects and everything else that was there
    assert seen["thresholds during the run"] == (50_000, *before[1:])  # young collections less often
    assert seen["young cycle collected"]
    assert gc.get_freeze_count() == 0  # handed back to the collector

    # a process that froze objects itself (a server before it forks) keeps them frozen
    gc.freeze()
    try:
        loop.run(Runner({}, llm, cache_dir=False).run([row()]))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_batchs_outputs_are_built_with_the_collector_eased_too(server):
    import gc

    from hf_synth.transforms.runner import YOUNG_THRESHOLD

    seen = []

    class Watched(CoEvolTransform):  # (a subclass, as a user's own transform would be)
        def output_values(self, result):
            seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
            return super().output_values(result)

    before = gc.get_threshold()
    out = rows(3).map(Watched(LLM(model="m", base_url=server.url), mode="edit", cache=False), batched=True)
    assert out["coevol_error"] == [None] * 3
    assert seen == [(YOUNG_THRESHOLD, True)] * 3 and gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_bug_inside_a_method_marks_its_row_logs_the_traceback_once_and_the_run_goes_on(server, llm, caplog):
    from hf_synth.llm import loop
    from hf_synth.protocol import Chat, user
    from hf_synth.transforms.runner import Runner

    def sound():
        reply = yield Chat("editor", [user("Say something.")])
        return reply.upper()

    def buggy():
        reply = yield Chat("editor", [user("Say something else.")])
        return {"reply": reply}["missing"]  # a KeyError no method should raise

    with caplog.at_level("ERROR", logger="hf_synth.transforms.runner"):
        outcomes = loop.run(Runner({}, llm, cache_dir=False).run([sound(), buggy(), sound()]))
    assert [o.error for o in outcomes] == [None, "KeyError: 'missing'", None]
    assert outcomes[0].result == outcomes[2].result and outcomes[0].result.isupper()
    assert outcomes[1].usage.calls == 1 and not outcomes[1].call_failed
    logged = [r for r in caplog.records if r.getMessage().startswith("unexpected error in a ")]
    assert ".buggy row (the row is marked and the run goes on)" in logged[0].getMessage()
    assert len(logged) == 1 and logged[0].exc_info[0] is KeyError
