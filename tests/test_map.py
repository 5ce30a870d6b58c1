"""CoEvolTransform through Dataset.map, the online transport and a fake server over real HTTP."""
import time

import datasets
import pytest
from fake_openai import FakeOpenAI

from hf_synth import LLM, CoEvolTransform, EndpointError, InputError
from hf_synth.status import counts

ALPACA = {"id": [0, 1, 2], "instruction": ["Say hi", "Add", "Name a fruit"], "input": ["", "2 and 2", ""],
          "output": ["hi", "4", "apple"]}


def test_batched_map_keeps_rows_and_columns_and_adds_typed_columns(llm, server):
    ds = datasets.Dataset.from_dict(ALPACA)
    out = ds.map(CoEvolTransform(llm, max_rounds=2), batched=True, batch_size=2)
    assert out["id"] == [0, 1, 2] and out["instruction"] == ALPACA["instruction"] and out["output"] == ALPACA["output"]
    assert out["coevol_output"] == ["hi [edited] [edited]", "4 [edited] [edited]", "apple [edited] [edited]"]
    assert out["coevol_rounds"] == [2, 2, 2]
    assert out["coevol_error"] == [None, None, None]
    assert [u["calls"] for u in out["coevol_usage"]] == [16, 16, 16]
    # the fake server counts words: every request's prompt and every reply, summed over the rows
    assert sum(u["prompt_tokens"] for u in out["coevol_usage"]) == sum(
        len(m["content"].split()) for body in server.requests for m in body["messages"])
    assert sum(u["completion_tokens"] for u in out["coevol_usage"]) == sum(
        len(server.reply(body["messages"]).split()) for body in server.requests)
    assert len(server.requests) == 48
    trace = out[0]["coevol_trace"]
    assert [r["accepted"] for r in trace] == [True, True] and trace[0]["parsed_verdicts"] == ["2", "1"]
    assert out.features["coevol_error"] == datasets.Value("string")   # typed although every value is None


def test_unbatched_map_gives_the_same_result(llm):
    ds = datasets.Dataset.from_dict(ALPACA)
    batched = ds.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    unbatched = ds.map(CoEvolTransform(llm, max_rounds=1))
    assert unbatched.to_list() == batched.to_list()


def test_requests_carry_the_model_and_sampling_parameters(server):
    llm = LLM(model="m1", base_url=server.url, temperature=0.0, top_p=1.0, max_tokens=123, seed=7)
    datasets.Dataset.from_dict(ALPACA).select([0]).map(CoEvolTransform(llm, mode="edit"), batched=True)
    body = server.requests[0]
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == ("m1", 0.0, 1.0, 123, 7)


def test_the_embedded_model_alone_gets_its_budget_and_repetition_penalty_unless_the_user_chose(server):
    from hf_synth import ReviewInstructTransform

    embedded = ReviewInstructTransform(LLM()).llm  # the authors' 8,192 tokens would be a loop on a 135M model
    assert (embedded.max_tokens, embedded.extra_body) == (1024, {"repeat_penalty": 1.3})
    assert CoEvolTransform(LLM()).llm.max_tokens == 1000  # a method's smaller budget stands
    chosen = ReviewInstructTransform(LLM(max_tokens=4000, extra_body={"repeat_penalty": 1.0})).llm
    assert (chosen.max_tokens, chosen.extra_body) == (4000, {"repeat_penalty": 1.0})
    assert ReviewInstructTransform(LLM()).fingerprint_state() != ReviewInstructTransform(
        LLM(extra_body={"repeat_penalty": 1.1})).fingerprint_state()  # what is sent is what is fingerprinted
    hosted = LLM(model="m", base_url=server.url)
    datasets.Dataset.from_dict(ALPACA).select([0]).map(ReviewInstructTransform(hosted, rounds=1), batched=True)
    assert {body["max_tokens"] for body in server.requests} == {8192}
    assert not any("repeat_penalty" in body for body in server.requests)


def test_each_agent_can_have_its_own_llm(server):
    judge = LLM(model="judge-model", base_url=server.url)
    llm = LLM(model="main-model", base_url=server.url)
    datasets.Dataset.from_dict(ALPACA).select([0]).map(CoEvolTransform(llm, max_rounds=1, llms={"judge": judge}),
                                                      batched=True)
    models = [body["model"] for body in server.requests]
    assert models.count("judge-model") == 2 and models.count("main-model") == 6


def test_multi_turn_messages_and_sharegpt_conversations(llm):
    messages = [[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                 {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]]
    out = datasets.Dataset.from_dict({"messages": messages}).map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert out[0]["coevol_messages"][1]["content"] == "a1 [edited]"
    assert out[0]["coevol_messages"][3]["content"] == "a2 [edited]"
    assert out[0]["coevol_rounds"] == [1, 1] and len(out[0]["coevol_trace"]) == 2
    sharegpt = [[{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}]]
    out = datasets.Dataset.from_dict({"conversations": sharegpt}).map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert out[0]["coevol_messages"] == [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1 [edited]"}]
    assert out[0]["conversations"] == sharegpt[0]


def test_missing_columns_name_what_was_looked_for(llm):
    ds = datasets.Dataset.from_dict({"prompt": ["x"], "answer": ["y"]})
    with pytest.raises(InputError, match=r"'instruction'.*\['prompt', 'answer'\].*instruction_column="):
        ds.map(CoEvolTransform(llm), batched=True)
    out = ds.map(CoEvolTransform(llm, mode="edit", instruction_column="prompt", response_column="answer"), batched=True)
    assert out["coevol_output"] == ["draft [edited]"]


def test_bad_rows_are_marked_and_kept_in_order(llm):
    ds = datasets.Dataset.from_dict({
        "instruction": ["ok", None, "", "ok", "ok"],
        "output": ["fine", "x", "x", None, ""]})
    out = ds.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert out["coevol_error"] == [None, "instruction is None, expected text", "instruction is empty",
                                   out["coevol_error"][3], out["coevol_error"][4]]
    assert out["coevol_error"][3].startswith("response is empty") and out["coevol_error"][4].startswith("response is empty")
    assert out["coevol_output"] == ["fine [edited]", None, None, None, None]
    assert len(out) == 5


def test_malformed_conversation_rows_are_marked(llm):
    ds = datasets.Dataset.from_dict({"messages": [
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        [{"role": "user", "content": "q"}, {"role": "user", "content": "again"}]]})
    out = ds.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert out["coevol_error"][0] is None
    assert "turn 2 is 'user' where 'assistant' was expected" in out["coevol_error"][1]


def test_429_and_500_are_retried(server):
    server.faults = [("status", 429, {"Retry-After": "0"}), ("status", 500, {"Retry-After": "0"}), 503]
    llm = LLM(model="m", base_url=server.url, max_retries=3)
    out = datasets.Dataset.from_dict(ALPACA).select([0]).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"] == [None] and out["coevol_output"] == ["draft [edited]"]
    assert len(server.requests) == 4   # three failures, then the answer
    assert out["coevol_usage"][0]["calls"] == 1


def test_a_request_that_times_out_is_retried(server):
    server.faults = [("sleep", 3)]
    llm = LLM(model="m", base_url=server.url, timeout=0.5, max_retries=2)
    out = datasets.Dataset.from_dict(ALPACA).select([0]).map(CoEvolTransform(llm, mode="edit"), batched=True)
    # the second request's answer: the first was given up on before the server's 3 s were over
    assert out["coevol_output"] == ["draft [edited]"] and len(server.requests) == 2
    assert out["coevol_usage"][0]["calls"] == 1


def test_exhausted_retries_mark_only_that_row(server):
    server.fault_for = lambda body: ("status", 500, {"Retry-After": "0"}) if "Say hi" in str(body) else None
    llm = LLM(model="m", base_url=server.url, max_retries=2)
    out = datasets.Dataset.from_dict(ALPACA).map(CoEvolTransform(llm, mode="edit"), batched=True)
    assert out["coevol_error"][0] == "LLM call failed: HTTP 500: injected 500 (after 3 attempts)"
    assert out["coevol_error"][1:] == [None, None] and out["coevol_output"][1:] == ["draft [edited]"] * 2
    assert len(server.requests) == 5


def test_400_is_not_retried(server):
    server.faults = [400]
    out = datasets.Dataset.from_dict(ALPACA).select([0]).map(
        CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    assert out["coevol_error"] == ["LLM call failed: HTTP 400: injected 400 (after 1 attempt)"]
    assert len(server.requests) == 1


def test_unreachable_endpoint_stops_early_with_one_sentence():
    with FakeOpenAI() as down:
        url = down.url
    llm = LLM(model="m", base_url=url, max_retries=5)
    ds = datasets.Dataset.from_dict({"instruction": ["q"] * 100, "output": ["a"] * 100})
    started = time.monotonic()
    with pytest.raises(EndpointError) as error:
        ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=100)
    message = str(error.value)
    assert message.startswith(f"Cannot reach the LLM endpoint {url}") and "\n" not in message
    assert time.monotonic() - started < 20


def test_invalid_api_key_stops_the_run_and_never_shows_the_key():
    with FakeOpenAI(api_key="sk-right-key-000000000000") as guarded:
        llm = LLM(model="m", base_url=guarded.url, api_key="sk-wrong-key-1111111111111", max_concurrency=4)
        ds = datasets.Dataset.from_dict({"instruction": ["q"] * 50, "output": ["a"] * 50})
        with pytest.raises(EndpointError, match="rejected the API key") as error:
            ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=50)
        assert "sk-wrong" not in str(error.value)
        assert len(guarded.requests) <= 4  # the first wave only, not rows x retries
        assert guarded.headers[0]["Authorization"] == "Bearer sk-wrong-key-1111111111111"


def test_a_rerun_is_served_from_the_request_cache(llm, server):
    ds = datasets.Dataset.from_dict(ALPACA)
    first = ds.map(CoEvolTransform(llm, max_rounds=2), batched=True)
    sent = len(server.requests)
    cached_before = counts().cached
    second = ds.map(CoEvolTransform(llm, max_rounds=2), batched=True)
    assert len(server.requests) == sent and counts().cached - cached_before == sent
    assert second.to_list() == first.to_list()
    third = ds.map(CoEvolTransform(llm, max_rounds=2, cache=False), batched=True)  # the cache can be turned off
    assert len(server.requests) == 2 * sent and third.to_list() == first.to_list()


def test_a_rerun_on_a_dataset_file_reuses_the_datasets_cache(llm, server, tmp_path):
    path = tmp_path / "data.jsonl"
    datasets.Dataset.from_dict(ALPACA).to_json(path)
    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    first = ds.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    sent = len(server.requests)
    cached_before = counts().cached
    # operational settings differ, the output would not: datasets reuses its cache file
    same = LLM(model="fake-model", base_url=server.url, max_retries=9, max_concurrency=3, timeout=9)
    again = ds.map(CoEvolTransform(same, max_rounds=1), batched=True)
    assert len(server.requests) == sent and counts().cached == cached_before  # not even a cache lookup
    assert again.cache_files == first.cache_files


def test_num_proc_2_gives_the_same_dataset(llm, server):
    ds = datasets.Dataset.from_dict({"instruction": [f"q{i}" for i in range(8)], "output": [f"a{i}" for i in range(8)]})
    parallel = ds.map(CoEvolTransform(llm, max_rounds=1, cache=False), batched=True, batch_size=2, num_proc=2)
    assert len(server.requests) == 8 * 8
    single = ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=2)
    assert parallel.to_list() == single.to_list()
    assert parallel["coevol_output"] == [f"a{i} [edited]" for i in range(8)]


def test_num_proc_2_passes_an_endpoint_error_through(server):
    llm = LLM(model="m", base_url=server.url, api_key="sk-bad")
    server.api_key = "sk-good"
    ds = datasets.Dataset.from_dict({"instruction": ["q"] * 4, "output": ["a"] * 4})
    with pytest.raises(EndpointError, match="rejected the API key"):
        ds.map(CoEvolTransform(llm, max_rounds=1), batched=True, batch_size=2, num_proc=2)


def test_a_call_leaves_every_transform_as_it_was():
    """What a batch's columns are is worked out per batch, never kept on the transform: a transform
    shared by threads or actors must not carry one batch's columns into another's rows."""
    from hf_synth import R2STransform, ReviewInstructTransform
    from hf_synth.transforms import DialogueEvalTransform, DifficultyTransform, PairwiseJudgeTransform, QualityTransform

    alpaca = {**ALPACA, "coevol_output": ["hello", "four", "pear"]}
    chats = {"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]],
             "text": ["A document."]}
    with FakeOpenAI() as fake:
        llm = LLM(model="fake-model", base_url=fake.url, max_retries=0)
        for transform, batch in [(CoEvolTransform(llm, max_rounds=1), alpaca), (CoEvolTransform(llm, max_rounds=1), chats),
                                 (ReviewInstructTransform(llm, rounds=1), alpaca), (QualityTransform(llm), alpaca),
                                 (PairwiseJudgeTransform(llm), alpaca), (DifficultyTransform(llm), chats),
                                 (R2STransform(llm, turns=1), chats), (DialogueEvalTransform(llm), chats)]:
            before = dict(vars(transform))
            transform(dict(batch))
            assert vars(transform) == before, type(transform).__name__


def test_results_become_the_plain_values_dataclasses_asdict_makes():
    import json
    from dataclasses import asdict, dataclass, field

    from hf_synth.transforms.base import as_plain

    @dataclass
    class Step:
        text: str
        accepted: bool
        score: float | None = None

    @dataclass
    class Result:
        name: str
        steps: list[Step]
        pair: tuple = (1, "two")
        by_agent: dict = field(default_factory=dict)
        nested: list = field(default_factory=list)

    result = Result("r", [Step("a", True, 0.5), Step("b", False)], by_agent={"editor": Step("c", True)},
                    nested=[[Step("d", False)], []])
    plain = as_plain(result)
    assert plain == json.loads(json.dumps(asdict(result)))  # (asdict keeps tuples; Arrow takes lists)
    assert type(plain["pair"]) is list and type(plain["steps"][0]) is dict
