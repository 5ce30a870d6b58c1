"""Faults injected into the fake endpoint, alone and mixed: every row comes out, in order, with a
result or an error naming the cause; retries stay within their budgets; the run finishes."""
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit
from faults import KINDS, MAX_RETRIES, RETRIED, alpaca, run

from hf_synth import LLM, CoEvolTransform, EndpointError
from hf_synth.llm.door import endpoints


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS), ids=[str(k) for k in KINDS])
def test_each_fault_alone_at_30_percent(kind):
    outcome = run([kind])
    assert outcome.rows_out == outcome.rows_in and outcome.in_order
    assert sum(outcome.injected.values()) > 0
    assert all(KINDS[kind] in error for error in outcome.errors), outcome.errors
    assert outcome.sent <= outcome.minimum * (MAX_RETRIES + 1)
    assert outcome.max_attempts <= (MAX_RETRIES + 1 if kind in RETRIED else 1)
    if kind in RETRIED:
        # P(six faults in a row) = 0.3^6 per request: retries save (almost) every row
        # measured: 0-2 rows of 20 (retries come in bursts)
        assert outcome.rows_with_errors <= 2
        assert outcome.sent > outcome.minimum
    else:
        # never retried: the reply is kept in the cache and its row is marked
        assert outcome.rows_with_errors > 0 and outcome.sent <= outcome.minimum


@pytest.mark.parametrize("method", ["coevol", "review", "r2s"])
def test_all_faults_mixed_at_30_percent(method):
    outcome = run(list(KINDS), rows=30, seed=1, method=method)
    assert outcome.rows_out == 30 and outcome.in_order
    assert len(outcome.injected) >= 6
    causes = tuple(KINDS.values())
    assert all(any(cause in error for cause in causes) for error in outcome.errors), outcome.errors
    assert outcome.sent <= outcome.minimum * (MAX_RETRIES + 1) and outcome.max_attempts <= MAX_RETRIES + 1
    # the retry budget: retries add at most half the requests plus 20, and 429s (exempt) at most one each
    retried_429 = sum(n for kind, n in outcome.injected.items() if kind.startswith("HTTP 429"))
    assert outcome.sent <= outcome.minimum * 1.5 + 20 + retried_429
    # 3 of the 12 kinds are never retried (7.5% of requests): a row of k requests fails with
    # probability 1 - 0.925^k; allow twice that share before calling it a regression
    per_row = outcome.minimum / outcome.rows_in
    assert outcome.rows_with_errors <= 2 * outcome.rows_in * (1 - 0.925 ** per_row) + 1, outcome.rows_with_errors


def test_a_verdict_cut_before_its_label_is_never_read_and_one_cut_after_it_is():
    # the judge's replies are cut in half: "Output: <assistant 2>\nmore edits" becomes "Output: <assista"
    with FakeOpenAI(coevol_replies(lambda messages: "Output: " + prefer_edit(messages))) as server:
        server.fault_for = lambda body: ("finish", "length") if "checking the quality" in str(body) else None
        out = alpaca(3).map(CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    assert out["coevol_error"] == [None] * 3 and out["coevol_rounds"] == [0] * 3
    assert all(round_[0]["parsed_verdicts"] == [None, None] for round_ in out["coevol_trace"])
    assert out["coevol_output"] == alpaca(3)["output"]  # no edit accepted on half a verdict

    # cut after the label (a long explanation, or "<assistant 2" without its bracket): the verdict is read,
    # as the authors' parse_jdg reads it
    long_reason = lambda messages: prefer_edit(messages) + " because" * 50  # noqa: E731
    with FakeOpenAI(coevol_replies(long_reason)) as server:
        server.fault_for = lambda body: ("finish", "length") if "checking the quality" in str(body) else None
        out = alpaca(3).map(CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    assert out["coevol_error"] == [None] * 3 and out["coevol_rounds"] == [1] * 3


def test_an_endpoint_gone_bad_stops_the_run_and_keeps_what_finished(tmp_path):
    rows = 200
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        llm = LLM(model="m", base_url=server.url, max_concurrency=8)
        done = alpaca(rows).select(range(50)).map(CoEvolTransform(llm, mode="edit", max_rounds=1), batched=True)
        assert done["coevol_error"] == [None] * 50
        paid = len(server.requests)

        server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"})  # the endpoint breaks
        with pytest.raises(EndpointError, match=r"is failing: its last 1\d attempts failed with none completing meanwhile, "
                                                r"and it no longer completes a request it completed before"):
            alpaca(rows).map(CoEvolTransform(llm, mode="edit", max_rounds=1), batched=True)
        failed_run = len(server.requests) - paid
        # it stops once ten attempts in a row failed with nothing completing: those and what was in
        # flight; not 150 rows x 6 attempts
        assert failed_run <= 10 + 8 + 1, failed_run  # (and the request it completed before, asked again)


        server.fault_for = None  # the endpoint recovers: finished requests are not paid again
        before = len(server.requests)
        out = alpaca(rows).map(CoEvolTransform(llm, mode="edit", max_rounds=1), batched=True)
    assert out["coevol_error"] == [None] * rows
    # the 150 rows not done yet, plus at most the 8 requests in flight when the run stopped, which can
    # reach the server after it did
    assert 0 <= len(server.requests) - before - (rows - 50) * (paid // 50) <= 8


def test_a_canary_failed_by_a_sprinkled_error_does_not_stop_a_run_whose_requests_complete():
    # A hosted API answers errors at once and completions in their time: at a run's start, the errors
    # of its first burst come back before any completion, the endpoint is looked at, and its canary may
    # draw an error too. The requests in flight then complete: the endpoint serves, the run goes on.
    with FakeOpenAI(coevol_replies(prefer_edit), latency=1.0) as server:  # (a second for the errors to come back)
        llm = LLM(model="m", base_url=server.url, max_concurrency=32)
        alpaca(2).map(CoEvolTransform(llm, mode="edit"), batched=True)  # the endpoint served this job
        canary, sprinkled = endpoints(llm)[0].canary, iter(range(12))
        server.fault_for = lambda body: ("status", 503, {}) if body == canary or next(sprinkled, None) is not None \
            else None
        out = alpaca(34).select(range(2, 34)).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 32
    assert server.injected["HTTP 503"] >= 13  # twelve rows' first attempts and the canary, asked again


def test_concurrency_adapts_to_a_rate_limited_endpoint():
    rows = 60
    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as server:
        server.capacity = 6  # more at once get 429, without Retry-After
        llm = LLM(model="m", base_url=server.url, max_concurrency=64, max_retries=10)
        out = alpaca(rows).map(CoEvolTransform(llm, mode="edit", max_rounds=1), batched=True)
    engine = endpoints(llm)[0]
    assert out["coevol_error"] == [None] * rows
    limited = server.injected["HTTP 429"]
    assert engine.limit.cuts >= 3 and engine.limit.limit < 64
    # the first wave (all 60 rows at once) meets 54 refusals; then the run converges instead of
    # hammering: a fixed limit of 64 would meet about as many again at every wave of retries
    assert limited - (rows - server.capacity) <= 20, limited
