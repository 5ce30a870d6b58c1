"""Replies a method could not use are counted and said, per method and agent: never read as the
model's judgement. The fake server answers in formats the parsers cannot read."""
from pathlib import Path

import datasets
from command import hf_synth_cli
from fake_openai import FakeOpenAI, agent_of, coevol_replies, review_replies

import hf_synth
from hf_synth import LLM, CoEvolTransform, ReviewInstructTransform
from hf_synth.hub import build_card
from hf_synth.replies import ADVICE, unreadable_replies

SAMPLE = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"


def rambling_judge(messages):
    return "Both responses have merits; it is hard to say."


def test_unread_verdicts_give_no_scores_and_are_counted():
    with FakeOpenAI(coevol_replies(rambling_judge)) as server:
        out = datasets.Dataset.from_dict({"instruction": ["a", "b"], "output": ["x", "y"]}).map(
            CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    trace = out["coevol_trace"][0][0]
    assert trace["parsed_verdicts"] == [None, None] and not trace["accepted"]
    assert trace["score_previous"] is None and trace["score_edited"] is None  # not "the judge preferred the original"
    table = unreadable_replies(out)
    assert table.to_dict("records") == [{"method": "CoEvol", "agent": "judge", "unreadable": 4, "cut or empty": 0,
                                         "of": 4}]


def test_one_unread_verdict_still_counts_for_the_previous_response():
    judgments = iter(["<assistant 2>\nbetter", "no idea"])
    with FakeOpenAI(coevol_replies(lambda messages: next(judgments))) as server:
        out = datasets.Dataset.from_dict({"instruction": ["a"], "output": ["x"]}).map(
            CoEvolTransform(LLM(model="m", base_url=server.url, max_concurrency=1), max_rounds=1), batched=True)
    trace = out["coevol_trace"][0][0]
    assert sorted(trace["parsed_verdicts"], key=str) == ["2", None] and trace["score_previous"] is not None


def test_reviewers_without_verdicts_a_chairman_without_a_question_and_cut_replies():
    base = review_replies()

    def reply(messages):
        agent = agent_of(messages)
        if agent == "reviewer" and "Second" in messages[0]["content"]:
            return "Some thoughts, but no verdict line."
        if agent == "chairman" and "seed 1" in str(messages):
            return "Direction: depth\nReasoning: thin."
        return base(messages)

    with FakeOpenAI(reply) as server:
        server.fault_for = lambda body: ("finish", "length") if agent_of(body["messages"]) == "candidate" and \
            "seed 2" in str(body["messages"]) else None
        out = datasets.Dataset.from_dict({"instruction": ["seed 0", "seed 1", "seed 2"]}).map(
            ReviewInstructTransform(LLM(model="m", base_url=server.url), rounds=2, num_reviewers=3, direction="majority",
                                    perspectives=["First reader", "Second reader", "Third reader"]), batched=True)
    assert out["review_error"][1] == "the Chairman wrote no next question in round 1"
    assert "round 1: the candidate's reply was cut at max_tokens=8192" in out["review_error"][2]  # the authors' budget
    records = {r["agent"]: r for r in unreadable_replies(out).to_dict("records")}
    assert records["chairman"]["unreadable"] == 1
    assert records["candidate"]["cut or empty"] == 1
    assert records["reviewer"]["unreadable"] == 1 and records["reviewer"]["of"] == 3  # row 0's three reviews


def test_the_summary_and_the_card_say_so(tmp_path):
    with FakeOpenAI(coevol_replies(rambling_judge)) as server:
        result = hf_synth_cli("coevol", SAMPLE, "--output", tmp_path / "o", "--limit", "2", "--max-rounds", "1",
                              "--model", "m", "--base-url", server.url)
        assert result.returncode == 0, result.stderr
        assert "replies not used: CoEvol judge: 4 unreadable of 4" in result.stdout and ADVICE in result.stdout
        out = datasets.load_from_disk(str(tmp_path / "o"))
        card = str(build_card(out, CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1),
                              license="mit", analysis=None))
    assert "| CoEvol   | judge   |            4 |              0 |    4 |" in card and ADVICE in card


def test_a_clean_run_says_nothing(tmp_path):
    with FakeOpenAI(coevol_replies()) as server:
        out = datasets.Dataset.from_dict({"instruction": ["a"], "output": ["x"]}).map(
            CoEvolTransform(LLM(model="m", base_url=server.url), max_rounds=1), batched=True)
    assert unreadable_replies(out).empty
