"""The online transport on the wire, against the fake server over real HTTP: what it sends, how it reads
what comes back (bodies that are not UTF-8, redirects, errors that echo the key, rate-limit headers),
and the request keys it shares with every cache made before it."""
import hashlib
import json

import datasets
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform, EndpointError, InputError
from hf_synth.llm.cache import request_key
from hf_synth.llm.transport import Headroom, _duration, headroom


def rows(count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(count)],
                                       "output": [f"answer {i}" for i in range(count)]})


@pytest.fixture
def server():
    with FakeOpenAI(coevol_replies(prefer_edit)) as fake:
        yield fake


def stdlib_key(identity, messages, constraint=None) -> str:
    """How request keys were made before orjson: the standard library's canonical JSON, hashed."""
    request = {"llm": identity, "messages": list(messages)}
    if constraint:
        request["constraint"] = constraint
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("content", ["plain", "é, 中文, emoji 🎉", 'quotes " and \\ backslash', "tab\tnew\nline\r\x00\x1f\x7f",
                                     "\u2028\u2029 separators", ""])
def test_request_keys_are_those_of_every_earlier_cache(content):
    identity = {"endpoint": "http://127.0.0.1:1/v1", "model": "m", "temperature": 0.0, "top_p": 1.0, "max_tokens": 1000,
                "extra_body": {"top_k": 5, "a": [1, 2.5]}, "structured": "vllm"}
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": content, "name": "x"})
    constraint = {"structured_outputs": {"regex": "(?:<assistant 1>|<assistant 2>)\\n[^\\n]{0,500}"}}
    assert request_key(identity, messages) == stdlib_key(identity, messages)
    assert request_key(identity, messages, constraint) == stdlib_key(identity, messages, constraint)
    assert request_key(identity, messages, constraint) != request_key(identity, messages)


def test_a_reply_whose_body_is_not_utf8_is_retried_then_marks_its_row(server):
    server.faults = ["not_utf8"]
    out = rows(1).map(CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == [None] and len(server.requests) == 2  # retried, then answered

    server.fault_for = lambda body: "not_utf8" if "task 1\n" in body["messages"][-1]["content"] else None
    out = rows(3).map(CoEvolTransform(LLM(model="m", base_url=server.url, max_retries=1), mode="edit",
                                      cache=False), batched=True)
    assert out["coevol_error"][0] is None and out["coevol_error"][2] is None
    assert out["coevol_error"][1] == ("LLM call failed: the endpoint's reply was not a chat completion (its body is "
                                      "not UTF-8) (after 2 attempts)")


@pytest.mark.parametrize("code", [301, 302, 307])
def test_a_redirect_stops_the_run_with_one_sentence_naming_base_url(server, code):
    server.fault_for = lambda body: ("redirect", code)
    with pytest.raises(EndpointError) as error:
        rows(20).map(CoEvolTransform(LLM(model="m", base_url=server.url, max_concurrency=2), mode="edit"),
                     batched=True)
    assert str(error.value) == (f"{server.url} answered with a redirect ({code} to /elsewhere/v1/chat/completions): "
                                "check base_url= (its scheme, host and path, usually ending in /v1).")
    assert len(server.requests) <= 2


@pytest.mark.parametrize("before", [130, 145, 160])  # the key straddles the 200-character cut
def test_a_key_the_endpoint_echoes_is_masked_before_the_error_is_cut(server, before):
    key = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123456789"
    server.error_message = "x" * before + f" Incorrect API key provided: {key}. See your account."
    server.fault_for = lambda body: 400
    out = rows(1).map(CoEvolTransform(LLM(model="m", base_url=server.url, api_key=key), mode="edit"), batched=True)
    error = out["coevol_error"][0]
    assert error.startswith("LLM call failed: HTTP 400: xxx")
    pieces = {key[i:i + 6] for i in range(len(key) - 5)}  # no six characters of the key in a row
    assert not any(piece in error for piece in pieces), error


def test_a_lone_surrogate_given_to_a_transform_is_refused_naming_where_it_is():
    with pytest.raises(InputError) as error:
        CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1"), mode="edit", cache=False)(
            {"instruction": ["fine", "fix \ud800 this"], "output": ["x", "y"]})
    assert str(error.value).startswith("column 'instruction', row 1, holds text that is not valid Unicode")
    assert "errors='replace'" in str(error.value)


def test_rate_limit_headers_hold_new_requests_until_the_reset_instead_of_drawing_429s(server):
    # a hosted API's headroom: the first reply says no request is left for 1.5 s
    server.reply_headers = lambda n: {"x-ratelimit-remaining-requests": "0" if n == 0 else "99",
                                      "x-ratelimit-reset-requests": "1.5s", "x-ratelimit-remaining-tokens": "90000",
                                      "x-ratelimit-reset-tokens": "6m0s"}
    llm = LLM(model="m", base_url=server.url, max_concurrency=1)
    out = rows(3).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"] == [None] * 3 and len(server.requests) == 3
    gaps = [later - earlier for earlier, later in zip(server.arrivals, server.arrivals[1:])]
    assert gaps[0] >= 1.5  # measured on the server's clock: a busy machine only stretches it
    assert gaps[1] < 1.5   # the second reply left room: no pause


@pytest.mark.parametrize("text, seconds", [("1.5s", 1.5), ("20ms", 0.02), ("1m0.5s", 60.0), ("6m0s", 60.0),
                                           ("0.25", 0.25), ("1h", 60.0), ("soon", 0.0), (None, 0.0)])
def test_reset_durations_are_read_and_capped_at_a_minute(text, seconds):
    assert _duration(text) == pytest.approx(seconds)


def test_headroom_pauses_only_for_a_limit_that_cannot_take_one_more_request():
    assert headroom({}) is None
    assert headroom({"x-ratelimit-remaining-requests": "3"}) == Headroom(3, 0.0, None, 0.0)
    assert Headroom(0, 2.0, 50_000, 9.0).pause(tokens_needed=1000) == 2.0
    assert Headroom(5, 2.0, 800, 9.0).pause(tokens_needed=1000) == 9.0  # too few tokens for max_tokens
    assert Headroom(5, 2.0, 5000, 9.0).pause(tokens_needed=1000) == 0.0
