"""ReviewInstruct's protocol, driven with scripted replies (no server)."""
import pytest
from conftest import drive

from hf_synth.methods import review_instruct as ri
from hf_synth.methods import review_instruct_prompts as prompts
from hf_synth.protocol import CallFailed, Chat, RowError


def scripted(verdicts=("insufficient",) * 5, chairman=None):
    """Replies: "answer N" to the N-th question; reviewer i writes "review i.N" ending in verdicts[i-1];
    the Chairman asks "question N+1" with the direction it is told, or `chairman(chat)` when given."""
    def answer(chat: Chat) -> str:
        asked = sum(m["role"] == "user" for m in chat.messages)
        if chat.agent == "candidate":
            return f"answer {asked}"
        prompt = chat.messages[-1]["content"]
        rounds_so_far = prompt.split("[Conversation so far]\n", 1)[1].split("\n\n", 1)[0].count("User: ")
        if chat.agent.startswith("reviewer_"):
            number = int(chat.agent.split("_")[1])
            return f"review {number}.{rounds_so_far}: needs more\nVerdict: {verdicts[number - 1]}"
        if chairman is not None:
            return chairman(chat)
        direction = "breadth" if "so move in breadth" in prompt else "depth"
        return f"Direction: {direction}\nReasoning: because.\nQuestion: question {rounds_so_far + 1}"
    return answer


@pytest.mark.parametrize("rounds", [1, 2, 3, 5])
def test_r_rounds_give_r_answered_user_turns(rounds):
    result, _ = drive(ri.grow("seed?", rounds=rounds), scripted())
    roles = [m["role"] for m in result.messages]
    assert roles == ["user", "assistant"] * rounds
    assert [m["content"] for m in result.messages[0::2]] == ["seed?"] + [f"question {n}" for n in range(2, rounds + 1)]
    assert [m["content"] for m in result.messages[1::2]] == [f"answer {n}" for n in range(1, rounds + 1)]
    assert len(result.trace) == rounds
    assert [r.next_instruction for r in result.trace] == [f"question {n}" for n in range(2, rounds + 1)] + [None]
    assert result.trace[-1].reviews == [] and result.trace[-1].direction is None  # the last answer is not reviewed


@pytest.mark.parametrize("reviewers", [0, 1, 3, 5])
def test_call_counts_of_the_ablations(reviewers):
    rounds = 3
    _, sent = drive(ri.grow("seed?", rounds=rounds, perspectives=prompts.PERSPECTIVES[:reviewers]), scripted())
    agents = [chat.agent for chat in sent]
    assert agents.count("candidate") == rounds
    assert agents.count("chairman") == rounds - 1
    assert sum(a.startswith("reviewer_") for a in agents) == reviewers * (rounds - 1)
    assert len(sent) == rounds + (rounds - 1) * (reviewers + 1)


def test_reviewers_run_in_parallel_with_different_perspectives():
    protocol = ri.grow("seed?", rounds=2)
    assert next(protocol).agent == "candidate"
    batch = protocol.send("answer 1")
    assert isinstance(batch, list) and [c.agent for c in batch] == ["reviewer_1", "reviewer_2", "reviewer_3"]
    systems = [c.messages[0]["content"] for c in batch]
    assert len(set(systems)) == 3
    assert all(p in s for p, s in zip(prompts.PERSPECTIVES, systems))
    assert all("answer 1" in c.messages[-1]["content"] and "seed?" in c.messages[-1]["content"] for c in batch)


def test_the_chairman_sees_the_conversation_and_every_review():
    _, sent = drive(ri.grow("seed?", rounds=3), scripted())
    chairman = [c for c in sent if c.agent == "chairman"]
    assert len(chairman) == 2
    second = chairman[1].messages[-1]["content"]
    for number in (1, 2, 3):
        assert f"review {number}.2: needs more" in second
        assert f"Reviewer {number} ({prompts.PERSPECTIVES[number - 1]})" in second
    assert "review 1.1" not in second                       # only the latest answer's reviews
    assert "User: seed?" in second and "Assistant: answer 2" in second
    assert "- seed?\n- question 2" in second                 # earlier questions, not to repeat


def test_the_candidate_sees_the_whole_conversation():
    _, sent = drive(ri.grow("seed?", rounds=3), scripted())
    last = [c for c in sent if c.agent == "candidate"][-1]
    assert [m["role"] for m in last.messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in last.messages[1:]] == ["seed?", "answer 1", "question 2", "answer 2", "question 3"]


@pytest.mark.parametrize("verdicts, direction", [
    (("sufficient", "sufficient", "insufficient"), "breadth"),
    (("insufficient", "insufficient", "sufficient"), "depth"),
    (("sufficient", "unclear", "unclear"), "breadth"),       # majority of the parsed verdicts
])
def test_the_reviews_majority_sets_the_direction(verdicts, direction):
    result, sent = drive(ri.grow("seed?", rounds=2, direction="majority"), scripted(verdicts))
    prompt = next(c for c in sent if c.agent == "chairman").messages[-1]["content"]
    assert prompts.DIRECTION_BY_MAJORITY[direction] in prompt
    other = {"depth": "breadth", "breadth": "depth"}[direction]
    assert prompts.DIRECTION_BY_MAJORITY[other] not in prompt
    assert result.trace[0].direction == direction
    assert result.trace[0].verdicts == [v if v != "unclear" else None for v in verdicts]
    # the question the Chairman wrote for that direction is the next user turn
    assert result.messages[2]["content"] == "question 2"


def test_a_split_panel_lets_the_chairman_choose_and_records_its_choice():
    chairman = lambda chat: "Direction: breadth\nReasoning: solid answer.\nQuestion: What about tides?"
    result, sent = drive(ri.grow("seed?", rounds=2, perspectives=prompts.PERSPECTIVES[:2], direction="majority"),
                         scripted(("sufficient", "insufficient"), chairman))
    prompt = next(c for c in sent if c.agent == "chairman").messages[-1]["content"]
    assert prompts.DIRECTION_SPLIT in prompt
    assert (result.trace[0].direction, result.trace[0].reasoning) == ("breadth", "solid answer.")
    assert result.messages[2]["content"] == "What about tides?"


def test_without_reviewers_the_chairman_asks_without_reviewing_the_answer():
    chairman = lambda chat: "Question: Why?"
    result, sent = drive(ri.grow("seed?", rounds=2, perspectives=()), scripted(chairman=chairman))
    assert [c.agent for c in sent] == ["candidate", "chairman", "candidate"]
    prompt = sent[1].messages[-1]["content"]
    assert "[The panel" not in prompt and prompts.DIRECTION_WITHOUT_REVIEWS in prompt
    assert "Assistant: answer 1" in prompt
    # the Ask-Respond ablation: nothing asks the Chairman to judge the answer or pick a direction
    assert prompts.REPLY_QUESTION_ONLY in prompt and "Direction:" not in prompt and "insufficient" not in prompt
    assert result.trace[0].reviews == [] and result.trace[0].direction is None
    assert result.messages[2]["content"] == "Why?"


def test_by_default_reviewers_criticise_and_the_chairman_infers_the_direction():
    chairman = lambda chat: "Question: And the tides?\nDirection: breadth\nReasoning: the comments were mild."
    result, sent = drive(ri.grow("seed?", rounds=2), scripted(chairman=chairman))
    reviews = [c.messages[-1]["content"] for c in sent if c.agent.startswith("reviewer_")]
    assert len(reviews) == 3 and all("criticise the inadequacies and flaws" in r for r in reviews)
    assert not any("Verdict:" in r for r in reviews)  # no verdict line is asked for: the Chairman weighs
    prompt = next(c for c in sent if c.agent == "chairman").messages[-1]["content"]
    assert prompts.DIRECTION_FROM_REVIEWS in prompt and "review 1.1: needs more" in prompt
    assert result.trace[0].verdicts == [] and result.trace[0].direction == "breadth"


@pytest.mark.parametrize("word_limit", [300, 120, None])
def test_every_agent_is_asked_to_keep_within_the_word_limit(word_limit):
    _, sent = drive(ri.grow("seed?", rounds=2, word_limit=word_limit), scripted())
    said = {c.agent: c.messages[0]["content"] + c.messages[-1]["content"] for c in sent}
    assert set(said) == {"candidate", "reviewer_1", "reviewer_2", "reviewer_3", "chairman"}
    for agent, text in said.items():
        assert (f"within {word_limit} words" in text) == (word_limit is not None), agent
    assert "thoroughly" not in said["candidate"]


def test_a_failed_call_says_its_round():
    protocol = ri.grow("seed?", rounds=2)
    request = next(protocol)
    while not (isinstance(request, Chat) and request.agent == "candidate"
               and sum(m["role"] == "user" for m in request.messages) == 2):
        request = protocol.send([scripted()(c) for c in request] if isinstance(request, list) else scripted()(request))
    with pytest.raises(CallFailed, match=r"^round 2: the candidate's reply was cut") as error:
        protocol.throw(CallFailed("the candidate's reply was cut at max_tokens=8192", "row"))
    assert error.value.blame == "row"


def test_a_chairman_without_a_question_or_an_empty_answer_marks_the_row():
    with pytest.raises(RowError, match="no next question in round 1"):
        drive(ri.grow("seed?", rounds=2), scripted(chairman=lambda chat: "Direction: depth\nReasoning: x"))
    with pytest.raises(RowError, match="answer in round 1 is empty"):
        drive(ri.grow("seed?", rounds=2), lambda chat: "  ")


@pytest.mark.parametrize("instruction, input, expected", [
    ("Translate", "bonjour", "Translate\n\nbonjour"),
    ("  Say hi ", None, "Say hi"),
    ("Say hi", "  ", "Say hi"),
])
def test_seed_instruction(instruction, input, expected):
    assert ri.seed_instruction(instruction, input) == expected


@pytest.mark.parametrize("instruction, input, message", [
    (None, None, "instruction is None"), ("  ", None, "instruction is empty"),
    (3, None, "instruction is a int, expected text"), ("x", 5, "input is a int, expected text"),
])
def test_bad_seeds_raise_row_errors(instruction, input, message):
    with pytest.raises(RowError, match=message):
        ri.seed_instruction(instruction, input)


@pytest.mark.parametrize("reply, expected", [
    ("Direction: depth\nReasoning: weak on X.\nQuestion: \"Why X?\"", ("depth", "weak on X.", "Why X?")),
    ("**Direction:** Breadth\n**Reasoning:** fine\n**Question:** What about Y?\nIt matters.",
     ("breadth", "fine", "What about Y?\nIt matters.")),
    ("What about Z?", (None, None, "What about Z?")),
    ("Direction: depth or breadth\nReasoning: hmm\nQuestion: Q?", (None, "hmm", "Q?")),
    ("Direction: depth\nReasoning: thin\nHow does it scale?", ("depth", "thin\nHow does it scale?", "How does it scale?")),
    ("", (None, None, "")),
    ("Direction: depth\nReasoning: x\nQuestion: <the next question>", ("depth", "x", "")),
])
def test_parse_chairman(reply, expected):
    assert ri.parse_chairman(reply) == expected


@pytest.mark.parametrize("review, verdict", [
    ("Good.\nVerdict: sufficient", "sufficient"), ("Weak.\nVERDICT: Insufficient.", "insufficient"),
    ("**Verdict:** not sufficient", "insufficient"), ("Nice answer overall.", None),
    ("Verdict: sufficient? No.\nVerdict: insufficient", "insufficient"), (None, None),
])
def test_parse_verdict(review, verdict):
    assert ri.parse_verdict(review) == verdict


@pytest.mark.parametrize("verdicts, direction", [
    (["sufficient", "sufficient", "insufficient"], "breadth"), (["insufficient", None, None], "depth"),
    (["sufficient", "insufficient"], None), ([None, None], None), ([], None),
])
def test_majority_direction(verdicts, direction):
    assert ri.majority_direction(verdicts) == direction
