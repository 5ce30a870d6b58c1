"""Filters: plain predicates on hand-made datasets; LLM-judged filters against the fake HTTP server."""
import logging
import re

import datasets
import pytest
from datasets.fingerprint import Hasher
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

from hf_synth import LLM, InputError
from hf_synth.filters import ConversationShape, Evolved, Grounded, QualityFilter, Succeeded, WinFilter
from hf_synth.methods.quality import parse_score
from hf_synth.transforms import PairwiseJudgeTransform, QualityTransform


def both_ways(ds, predicate):
    """The rows kept by ds.filter(predicate), checked to be the same batched and unbatched."""
    unbatched = ds.filter(predicate)
    batched = ds.filter(predicate, batched=True, batch_size=2)
    assert unbatched.to_list() == batched.to_list()
    return unbatched


def conv(*texts):
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)]


def test_succeeded_for_one_prefix_or_every_transform():
    ds = datasets.Dataset.from_dict({
        "id": [0, 1, 2, 3], "coevol_error": [None, "LLM call failed", None, None],
        "coevol_usage": [{"calls": 1}] * 4, "quality_error": [None, None, "response is empty", None],
        "quality_usage": [{"calls": 1}] * 4, "note_error": ["not ours", None, None, "not ours"]})
    assert both_ways(ds, Succeeded("coevol"))["id"] == [0, 2, 3]
    assert both_ways(ds, Succeeded("quality"))["id"] == [0, 1, 3]
    assert both_ways(ds, Succeeded())["id"] == [0, 3]            # note_error has no note_usage: not a transform's
    with pytest.raises(InputError, match="no column 'r2s_error'"):
        ds.filter(Succeeded("r2s"))
    with pytest.raises(InputError, match="no <prefix>_error column"):
        datasets.Dataset.from_dict({"x": [1]}).filter(Succeeded())


def test_evolved_single_turn_and_conversations():
    single = datasets.Dataset.from_dict({"id": [0, 1, 2, 3], "coevol_rounds": [0, 1, 3, None],
                                         "coevol_error": [None, None, None, "failed"]})
    assert both_ways(single, Evolved())["id"] == [1, 2]
    assert both_ways(single, Evolved(min_rounds=2))["id"] == [2]
    multi = datasets.Dataset.from_dict({"id": [0, 1, 2, 3], "coevol_rounds": [[0, 2], [1, 1], [0, 0], []],
                                        "coevol_error": [None] * 4})
    assert both_ways(multi, Evolved())["id"] == [0, 1]
    assert both_ways(multi, Evolved(turns="all"))["id"] == [1]
    assert both_ways(multi, Evolved(min_rounds=2))["id"] == [0]


def test_grounded_by_share_of_found_spans():
    def turn(*grounded):
        return {"type": "Question-Answer", "find": [{"span": f"s{i}", "grounded": g} for i, g in enumerate(grounded)]}

    ds = datasets.Dataset.from_list([
        {"id": 0, "r2s_error": None, "r2s_cod": [turn(True, True), turn(True)]},
        {"id": 1, "r2s_error": None, "r2s_cod": [turn(True, False), turn(True, True)]},   # 3 of 4
        {"id": 2, "r2s_error": None, "r2s_cod": [turn(), turn()]},                      # no spans at all
        {"id": 3, "r2s_error": "failed", "r2s_cod": None},
    ])
    assert both_ways(ds, Grounded())["id"] == [0]
    assert both_ways(ds, Grounded(min_share=0.75))["id"] == [0, 1]
    with pytest.raises(ValueError, match="between 0 and 1"):
        Grounded(min_share=75)


def test_conversation_shape_turns_emptiness_and_tokens():
    ds = datasets.Dataset.from_dict({"id": [0, 1, 2, 3], "messages": [
        conv("q1", "a1"), conv("q1", "a1", "q2", "a2"), conv("q1", " ", "q2", "a2"),
        conv("q1 " * 50, "a1", "q2", "a2 " * 50)]})
    assert both_ways(ds, ConversationShape(min_turns=2))["id"] == [1, 3]          # id 2 has an empty answer
    assert both_ways(ds, ConversationShape(min_turns=2, non_empty=False))["id"] == [1, 2, 3]
    assert both_ways(ds, ConversationShape(max_turns=1))["id"] == [0]
    words = lambda text: text.split()
    assert both_ways(ds, ConversationShape(max_tokens=10, tokenizer=words))["id"] == [0, 1]
    sharegpt = datasets.Dataset.from_dict({"conversations": [[{"from": "human", "value": "hi"},
                                                              {"from": "gpt", "value": "hello"}]]})
    assert len(both_ways(sharegpt, ConversationShape(min_turns=1))) == 1


def test_conversation_shape_counts_tokens_with_the_embedded_vocabulary_by_default():
    pytest.importorskip("llama_cpp")
    ds = datasets.Dataset.from_dict({"id": [0, 1], "messages": [conv("Hello there.", "Hi!"),
                                                                 conv("Hello there. " * 40, "Hi!")]})
    kept = both_ways(ds, ConversationShape(max_tokens=20))
    assert kept["id"] == [0]
    # the default counter is a real subword tokenizer, not a word count: a long word is several tokens
    from hf_synth.tokens import token_counter
    count = token_counter()
    assert count("Hello") == 1 and count("antidisestablishmentarianism") > 1


def test_predicates_have_stable_fingerprints_and_readable_reprs():
    assert repr(ConversationShape(max_turns=2)) == ("ConversationShape(min_turns=None, max_turns=2, non_empty=True, "
                                                    "max_tokens=None, tokenizer=None, column=None)")
    assert Hasher.hash(Evolved(2, "all")) == Hasher.hash(Evolved(2, "all")) != Hasher.hash(Evolved(1, "all"))
    assert Hasher.hash(ConversationShape(max_tokens=5)) != Hasher.hash(ConversationShape(max_tokens=6))


# -- LLM-judged filters ---------------------------------------------------------------------------

def quality_reply(messages):
    """The judge's score is written in the response under review: "... (score 4)"."""
    found = re.search(r"\(score (.+?)\)", messages[-1]["content"].split("### Response:", 1)[1])
    return f"{found.group(1)}\nBecause." if found else "I cannot rate this."


RATED = {"id": [0, 1, 2, 3, 4], "instruction": ["a", "b", "c", "d", "e"], "input": ["", "ctx", "", "", ""],
         "output": ["x (score 5)", "x (score 4.5)", "x (score 3)", "x (no score)", "x (score 4/5)"]}


@pytest.fixture
def judge_server():
    with FakeOpenAI(quality_reply) as fake:
        yield fake


def test_quality_filter_keeps_rows_at_or_above_the_threshold(judge_server, caplog):
    llm = LLM(model="judge", base_url=judge_server.url, max_retries=0)
    ds = datasets.Dataset.from_dict(RATED)
    with caplog.at_level(logging.WARNING, logger="hf_synth.filters"):
        kept = ds.filter(QualityFilter(llm), batched=True)
    assert kept["id"] == [0, 1, 3]                  # 5 and 4.5 pass; 3 and 4 do not; id 3 unparsable: kept
    assert "1 of 5 rows could not be judged and were kept (on_failure='keep')" in caplog.text
    assert ds.filter(QualityFilter(llm, on_failure="drop"), batched=True)["id"] == [0, 1]
    assert ds.filter(QualityFilter(llm, threshold=3), batched=True)["id"] == [0, 1, 2, 3, 4]
    assert len(judge_server.requests) == 5          # every later filter was answered by the request cache
    scores = ds.map(QualityTransform(llm), batched=True)
    assert scores["quality_score"] == [5.0, 4.5, 3.0, None, 4.0] and len(judge_server.requests) == 5
    prompts = [body["messages"][-1]["content"] for body in judge_server.requests]
    assert sum("### Input:\nctx\n" in prompt for prompt in prompts) == 1 and sum("### Input" in p for p in prompts) == 1


def test_quality_filter_failed_calls_follow_the_option_and_bad_rows_are_dropped(judge_server, caplog):
    llm = LLM(model="judge", base_url=judge_server.url, max_retries=0)
    ds = datasets.Dataset.from_dict({"instruction": ["a", "b"], "output": ["x (score 5)", None]})
    judge_server.faults = [400]
    with caplog.at_level(logging.WARNING, logger="hf_synth.filters"):
        assert len(ds.filter(QualityFilter(llm, on_failure="drop"))) == 0
    assert "could not be judged and were dropped" in caplog.text and "HTTP 400" in caplog.text
    assert "dropped 1 of 1 rows the judge could not read; first reason: response is None" in caplog.text
    assert len(ds.filter(QualityFilter(llm), load_from_cache_file=False)) == 1   # the call succeeds now


def test_quality_filter_fingerprint_ignores_the_key_and_follows_the_threshold(judge_server):
    make = lambda **kw: QualityFilter(LLM(model="judge", base_url=judge_server.url, api_key=kw.pop("key", None)), **kw)
    assert Hasher.hash(make()) == Hasher.hash(make(key="sk-secret"))
    assert Hasher.hash(make()) != Hasher.hash(make(threshold=4.0))
    assert Hasher.hash(make()) != Hasher.hash(make(on_failure="drop"))


EVOLVED = {"id": [0, 1, 2, 3], "instruction": ["a", "b", "c", "d"], "output": ["r", "r", "r", "r"],
           "coevol_output": ["r [edited]", "r", "r [edited] [edited]", None]}


def test_win_filter_keeps_rows_whose_evolved_response_wins():
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        llm = LLM(model="judge", base_url=server.url)
        ds = datasets.Dataset.from_dict(EVOLVED)
        kept = ds.filter(WinFilter(llm), batched=True)
        assert kept["id"] == [0, 2]                 # 1 is unchanged (a tie, no call); 3 has no evolved response
        assert len(server.requests) == 4            # two orders for rows 0 and 2
        judged = ds.map(PairwiseJudgeTransform(llm), batched=True)
        assert judged["pairwise_winner"] == ["b", "tie", "b", None]
        assert judged["pairwise_parsed"][0] == ["2", "1"]
        assert (judged["pairwise_score_a"][0], judged["pairwise_score_b"][0]) == (0.0, 1.0)
        assert judged["pairwise_error"][3] == "response 'coevol_output' is None, expected text"
        assert len(server.requests) == 4


def test_the_pairwise_judge_names_the_better_response_in_both_orders_and_a_tie_costs_no_call():
    def prefer_blue(messages):
        first = messages[-1]["content"].split("[The Start of Assistant 1's Response]\n", 1)[1].split("\n\n[The End")[0]
        return "<assistant 1>\nbluer" if "Blue" in first else "<assistant 2>\nbluer"

    rows = {"instruction": ["Name the colour of a clear sky."] * 2, "output": ["Blue.", "Grey."],
            "coevol_output": ["Grey.", "Grey."]}
    with FakeOpenAI(coevol_replies(prefer_blue)) as server:
        judged = datasets.Dataset.from_dict(rows).map(PairwiseJudgeTransform(LLM(model="judge", base_url=server.url)),
                                                      batched=True)
    assert judged["pairwise_winner"] == ["a", "tie"]
    assert judged["pairwise_verdicts"] == [["<assistant 1>\nbluer", "<assistant 2>\nbluer"], []]
    assert judged["pairwise_parsed"] == [["1", "2"], []]
    assert (judged["pairwise_score_a"], judged["pairwise_score_b"]) == ([1.0, 1.0], [0.0, 1.0])
    assert len(server.requests) == 2  # the tie asked nothing
    # Table 9's prompt: the task (Table 6's first line), then the request
    assert all("Below is an instruction that describes a task.\n\n### Instruction:\nName the colour of a clear sky."
               in body["messages"][-1]["content"] for body in server.requests)


def test_win_filter_with_a_position_biased_judge_finds_no_winner():
    always_first = lambda messages: "<assistant 1>\nthe first is better"
    with FakeOpenAI(coevol_replies(always_first)) as server:
        ds = datasets.Dataset.from_dict(EVOLVED).select([0])
        judged = ds.map(PairwiseJudgeTransform(LLM(model="judge", base_url=server.url)), batched=True)
        assert judged["pairwise_winner"] == ["tie"]       # each wins once: Eq. 4 scores 0.5 / 0.5
        assert len(ds.filter(WinFilter(LLM(model="judge", base_url=server.url)))) == 0


def test_unparsable_pairwise_verdicts_are_undecided():
    with FakeOpenAI(coevol_replies(lambda m: "Both are fine.")) as server:
        ds = datasets.Dataset.from_dict(EVOLVED).select([0])
        llm = LLM(model="judge", base_url=server.url)
        judged = ds.map(PairwiseJudgeTransform(llm), batched=True)
        assert judged["pairwise_winner"] == [None] and judged["pairwise_parsed"] == [[None, None]]
        assert judged["pairwise_verdicts"] == [["Both are fine.", "Both are fine."]]
        assert len(ds.filter(WinFilter(llm))) == 1
        assert len(ds.filter(WinFilter(llm, on_failure="drop"))) == 0


@pytest.mark.parametrize("judgment, score", [
    ("4.5\nGood.", 4.5), ("Score: 4", 4.0), ("**5**", 5.0), ("4/5 - fine", 4.0), ("\n 3 \n", 3.0),
    ("Great answer.\nScore: 2.5", 2.5), ("7\nout of ten", None), ("No score.", None), ("", None), (None, None),
])
def test_parse_score(judgment, score):
    assert parse_score(judgment) == score


def test_judged_filter_options_are_checked():
    with pytest.raises(ValueError, match="on_failure='maybe'"):
        QualityFilter(LLM(model="m", base_url="http://127.0.0.1:9/v1"), on_failure="maybe")
    with pytest.raises(ValueError, match="turns='some'"):
        Evolved(turns="some")
