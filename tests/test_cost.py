"""What a run costs: the hard caps on cost and requests, the prices, and the estimate before paying —
against the fake server, whose replies vary in length and report their usage (a token is a word)."""
import zlib

import datasets
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, CoEvolTransform, ConfigError, estimate, retry_failed

PRICES = (300.0, 600.0)  # US$ per million tokens: dear, so that a few requests cost cents


def rows(count: int) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"instruction": [" ".join(["explain"] * (3 + i % 11)) + f" {i}" for i in range(count)],
                                       "output": [" ".join(["answer"] * (5 + i % 17)) for i in range(count)]})


def varied_judge(messages):
    """Prefers the edit for some rows (they go on to more rounds) and not for others: rows differ in requests."""
    text = messages[-1]["content"]
    keeps = zlib.crc32(text.split("[The Start of Assistant 1's Response]")[0].encode()) % 3 != 0
    return prefer_edit(messages) if keeps else "<equal>\nboth fine"


def paid(server, prices=PRICES) -> float:
    """What the requests the server answered cost, from the usage it reported (words)."""
    from fake_openai import words

    total = 0.0
    for body in server.requests:
        prompt = sum(words(m["content"]) for m in body["messages"])
        completion = words(server.reply(body["messages"]))
        total += (prompt * prices[0] + completion * prices[1]) / 1e6
    return total


def test_the_cost_cap_is_never_passed_and_a_second_run_pays_only_for_the_rest(tmp_path):
    data = rows(40)
    with FakeOpenAI(coevol_replies(varied_judge)) as server:
        llm = LLM(model="m", base_url=server.url, prices=PRICES, max_tokens=50)
        whole = data.map(CoEvolTransform(llm, max_rounds=2, cache=str(tmp_path / "uncapped")), batched=True)
        needed, full_cost = len(server.requests), paid(server)
        server.requests.clear()

        cap = round(full_cost / 3, 4)
        capped = data.map(CoEvolTransform(llm, max_rounds=2, cache=str(tmp_path / "c"), max_cost=cap), batched=True)
        first = paid(server)
        assert first <= cap                                              # never passed
        not_run = [i for i, error in enumerate(capped["coevol_error"]) if error]
        assert not_run and all(capped["coevol_error"][i] == f"not run: the cost cap of ${cap:g} was reached"
                               for i in not_run)
        done = [i for i in range(40) if i not in not_run]
        assert [capped["coevol_output"][i] for i in done] == [whole["coevol_output"][i] for i in done]

        sent_first = len(server.requests)
        finished = retry_failed(capped, CoEvolTransform(llm, max_rounds=2, cache=str(tmp_path / "c")))
        assert finished["coevol_output"] == whole["coevol_output"] and finished["coevol_error"] == [None] * 40
        assert len(server.requests) == needed                            # nothing paid twice
        assert len(server.requests) > sent_first


def test_a_cost_cap_without_prices_is_refused_and_a_request_cap_needs_none(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        with pytest.raises(ConfigError, match=r"max_cost=1 needs the price of every model .* 'local-model' has none in "
                                              r"the price table \(dated 20\d\d-\d\d-\d\d\): pass LLM\(prices="):
            CoEvolTransform(LLM(model="local-model", base_url=server.url), max_cost=1)
        out = rows(12).map(CoEvolTransform(LLM(model="local-model", base_url=server.url), max_rounds=1,
                                           max_requests=20), batched=True)
    assert len(server.requests) <= 20
    assert sum(error == "not run: the request cap of 20 was reached" for error in out["coevol_error"]) >= 12 - 20 // 8


@pytest.mark.slow
def test_the_estimate_of_a_500_row_run_from_20_rows_is_within_a_quarter(tmp_path):
    data = rows(500)
    with FakeOpenAI(coevol_replies(varied_judge)) as server:
        llm = LLM(model="m", base_url=server.url, prices=PRICES)
        guess = estimate(data, CoEvolTransform(llm, max_rounds=3), rows=20)
        sample_requests, sample_cost = len(server.requests), paid(server)
        server.requests.clear()
        data.map(CoEvolTransform(llm, max_rounds=3), batched=True, batch_size=500)
        # the whole run needed the sample's requests too (cached, so not paid again: the run did not send them)
        requests, cost = len(server.requests) + sample_requests, paid(server) + sample_cost
    assert guess.sample == 20 and sample_requests > 20
    assert abs(guess.requests.expected - requests) <= 0.25 * requests
    assert guess.requests.low <= requests <= guess.requests.high
    assert abs(guess.cost.expected - cost) <= 0.25 * cost
    assert guess.batch_cost.expected == pytest.approx(guess.cost.expected / 2)
    assert guess.seconds is not None and "through a batch API" in "\n".join(guess.lines())


def test_the_command_caps_the_cost_says_how_to_go_on_and_estimates(tmp_path):
    from command import hf_synth_cli

    data = tmp_path / "rows.jsonl"
    rows(30).to_json(str(data))
    with FakeOpenAI(coevol_replies(varied_judge)) as server:
        common = ["--model", "m", "--base-url", server.url, "--prices", "3,6", "--max-rounds", "1", "--max-tokens", "50"]
        result = hf_synth_cli("coevol", str(data), "--output", str(tmp_path / "out"), "--max-cost", "0.1", *common)
        assert result.returncode == 0, result.stderr
        assert "rows not run: a cap was reached" in result.stdout and "--retry-failed" in result.stdout
        assert 0 < paid(server, (3, 6)) <= 0.1
        assert "; cost $" in result.stdout
        server.requests.clear()
        estimated = hf_synth_cli("coevol", str(data), "--output", str(tmp_path / "est"), "--estimate",
                                 "--estimate-rows", "5", *common)
        assert estimated.returncode == 0, estimated.stderr
    assert "estimate for 30 rows, from 5 run now" in estimated.stdout and "requests: " in estimated.stdout
    assert "through a batch API" in estimated.stdout and not (tmp_path / "est").exists()


def test_each_row_says_what_it_cost_when_first_paid_and_its_reasoning_tokens(tmp_path):
    data = rows(6)
    with FakeOpenAI(coevol_replies(varied_judge)) as server:
        server.reasoning_tokens = 4
        llm = LLM(model="m", base_url=server.url, prices=PRICES)
        out = data.map(CoEvolTransform(llm, max_rounds=2, cache=str(tmp_path / "c")), batched=True)
        usage = out["coevol_usage"]
        assert sum(u["cost"] for u in usage) == pytest.approx(paid(server))        # the rows' costs add up
        assert [u["reasoning_tokens"] for u in usage] == [4 * u["calls"] for u in usage]
        server.requests.clear()
        # again from the request cache, through a batch API at half the price: nothing is paid this run, and
        # each row still says what it cost when it was first paid
        again = data.map(CoEvolTransform(LLM(model="m", base_url=server.url, prices=PRICES, batch=True),
                                         max_rounds=2, cache=str(tmp_path / "c")), batched=True)
        assert server.requests == [] and server.batches == {}
        assert [u["cost"] for u in again["coevol_usage"]] == pytest.approx([u["cost"] for u in usage])
        # a model without a price (self-hosted): tokens only
        unpriced = rows(1).map(CoEvolTransform(LLM(model="local-model", base_url=server.url), max_rounds=1),
                               batched=True)
    assert unpriced["coevol_usage"][0]["cost"] is None and unpriced["coevol_usage"][0]["calls"] > 0
