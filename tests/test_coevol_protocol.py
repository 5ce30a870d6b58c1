"""CoEvol's logic driven by scripted replies: no server, every branch of Algorithm 1."""
import pytest
from conftest import drive
from fake_openai import agent_of

from hf_synth.conversations import normalize
from hf_synth.methods import coevol
from hf_synth.methods.coevol import Sample, evolve, evolve_conversation
from hf_synth.protocol import RowError

SAMPLE = Sample(instruction="Explain tides.", input="", response="The moon.")


def scripted(verdicts):
    """Replies per agent; the judge answers from `verdicts`, a list of (forward, reverse) per round."""
    rounds = iter(verdicts)
    pending = []
    edits = iter(range(1, 100))

    def answer(chat):
        agent = agent_of(list(chat.messages))
        if agent == "judge":
            if not pending:
                pending.extend(next(rounds))
            return pending.pop(0)
        if agent == "editor":
            return f"### Response:\nedit {next(edits)}"
        if agent == "advisor":
            return "1. Mention the sun.\n2. Give an example."
        return f"{agent} argument {len(chat.messages)}"
    return answer


def test_both_orders_prefer_the_edit_continue_until_max_rounds():
    result, sent = drive(evolve(SAMPLE, max_rounds=3), scripted([("<assistant 2>", "<assistant 1>")] * 3))
    assert result.rounds == 3 and len(result.trace) == 3
    assert result.response == "edit 3"              # the echoed "### Response:" header is dropped
    assert len(sent) == 24                            # 8 calls per round (Algorithm 1)
    assert [r.accepted for r in result.trace] == [True, True, True]
    # each round edits the previous round's accepted response
    editor_prompts = [c.messages[-1]["content"] for c in sent if c.agent == "editor"]
    assert "### Previous Response:\nThe moon." in editor_prompts[0]
    assert "### Previous Response:\nedit 1" in editor_prompts[1]


def test_tie_stops_and_keeps_the_previous_response():
    result, sent = drive(evolve(SAMPLE), scripted([("<equal>", "<equal>")]))
    assert (result.response, result.rounds, len(sent)) == ("The moon.", 0, 8)
    assert result.trace[0].edited == "edit 1" and not result.trace[0].accepted


def test_split_verdict_stops():
    result, _ = drive(evolve(SAMPLE), scripted([("<assistant 2>", "<assistant 2>")]))
    assert (result.response, result.rounds) == ("The moon.", 0)
    assert (result.trace[0].score_previous, result.trace[0].score_edited) == (0.5, 0.5)


def test_second_round_rejection_keeps_the_first_edit():
    result, sent = drive(evolve(SAMPLE), scripted([("<assistant 2>", "<assistant 1>"), ("<assistant 1>", "<assistant 2>")]))
    assert (result.response, result.rounds, len(sent)) == ("edit 1", 1, 16)


def test_an_unparsable_verdict_is_recorded_and_the_other_decides_alone():
    result, _ = drive(evolve(SAMPLE), scripted([("I like both", "<assistant 2>")]))
    assert result.response == "The moon." and result.rounds == 0   # the reverse order keeps the original
    assert result.trace[0].verdicts == ["I like both", "<assistant 2>"]
    assert result.trace[0].parsed_verdicts == [None, "2"]
    result, _ = drive(evolve(SAMPLE, max_rounds=1), scripted([("I like both", "<assistant 1>")]))
    assert (result.response, result.rounds) == ("edit 1", 1)      # it prefers the edit: kept (merge_jdg_res)


def test_a_reply_cut_in_a_later_round_keeps_the_edits_accepted_before():
    """The authors' loop keeps what a sample had when a round cannot finish; the row is not failed."""
    from hf_synth.errors import CallFailed

    script = scripted([("<assistant 2>", "<assistant 1>")] * 3)
    editors = iter(range(3))

    def answer(chat):
        if chat.agent == "editor" and next(editors) == 1:   # the second round's edit is cut at max_tokens
            return CallFailed("the editor's reply was cut at max_tokens=1000 (finish_reason=length)")
        return script(chat)

    result, sent = drive(evolve(SAMPLE, max_rounds=3), answer)
    assert (result.response, result.rounds) == ("edit 1", 1)
    assert [r.accepted for r in result.trace] == [True, False]
    assert "cut at max_tokens" in result.trace[1].failure and result.trace[0].failure is None
    assert result.trace[1].suggestions and result.trace[1].edited is None


def test_an_endpoint_failure_still_fails_the_row_so_that_a_retry_recovers_it():
    from hf_synth.errors import CallFailed

    def answer(chat):
        if chat.agent == "editor":
            return CallFailed("HTTP 503: overloaded (after 6 attempts)", blame="endpoint")
        return scripted([("<assistant 2>", "<assistant 1>")])(chat)

    with pytest.raises(CallFailed, match="503"):
        drive(evolve(SAMPLE), answer)


def test_a_first_round_that_cannot_finish_marks_the_row():
    """No round finished: the row has no result (not 0 accepted rounds) and says why."""
    from hf_synth.errors import CallFailed

    def answer(chat):
        if chat.agent == "editor":
            return CallFailed("the editor's reply was cut at max_tokens=1000 (finish_reason=length)")
        return scripted([("<assistant 2>", "<assistant 1>")])(chat)

    with pytest.raises(CallFailed, match="cut at max_tokens"):
        drive(evolve(SAMPLE), answer)


def test_an_empty_edit_is_never_adopted():
    def answer(chat):  # the judge prefers whatever is shown second, so the empty edit would win once
        return {"editor": "", "judge": "<assistant 2>"}.get(agent_of(list(chat.messages)), "x")
    result, _ = drive(evolve(SAMPLE), answer)
    assert result.response == "The moon." and result.rounds == 0


def test_debate_is_two_stage_with_own_memory_and_parallel_speakers():
    requests = []
    protocol = evolve(SAMPLE, max_rounds=1)
    first = next(protocol)
    requests.append(first)
    second = protocol.send(["pos review", "crt review"])
    assert [c.agent for c in first] == ["positive", "critical"]          # round 1: concurrently
    assert [c.agent for c in second] == ["positive", "critical"]         # round 2: concurrently
    positive, critical = second
    # each keeps its own round-1 exchange and is shown the other's review
    assert positive.messages[:2] == first[0].messages
    assert positive.messages[2] == {"role": "assistant", "content": "pos review"}
    assert "### Review from others:\ncrt review" in positive.messages[3]["content"]
    assert critical.messages[2] == {"role": "assistant", "content": "crt review"}
    assert "### Review from others:\npos review" in critical.messages[3]["content"]
    advisor = protocol.send(["pos free", "crt free"])
    body = advisor.messages[-1]["content"]
    assert body.index("pos review") < body.index("crt review") < body.index("pos free") < body.index("crt free")
    editor = protocol.send("1. do x")
    assert "### Writing Suggestions:\n1. do x" in editor.messages[-1]["content"]
    judges = protocol.send("new answer")
    forward, reverse = (c.messages[-1]["content"] for c in judges)
    assert forward.index("The moon.") < forward.index("new answer")      # (r, r')
    assert reverse.index("new answer") < reverse.index("The moon.")      # (r', r)


@pytest.mark.parametrize("mode, agents", [
    ("edit", ["editor"]),
    ("advise_without_response", ["advisor", "editor"]),
    ("advise", ["advisor", "editor"]),
    ("debate", ["positive", "critical", "positive", "critical", "advisor", "editor"]),
    ("full", ["positive", "critical", "positive", "critical", "advisor", "editor", "judge", "judge"]),
])
def test_ablation_modes_make_the_right_calls(mode, agents):
    result, sent = drive(evolve(SAMPLE, mode=mode), scripted([("<equal>", "<equal>")]))
    assert [c.agent for c in sent] == agents
    if mode != "full":  # single pass, adopted without a judge
        assert (result.response, result.rounds) == ("edit 1", 1)


def test_advise_without_response_hides_the_response_from_advisor_and_editor():
    _, sent = drive(evolve(SAMPLE, mode="advise_without_response"), scripted([]))
    assert all("The moon." not in c.messages[-1]["content"] for c in sent)
    _, sent = drive(evolve(SAMPLE, mode="advise"), scripted([]))
    assert all("The moon." in c.messages[-1]["content"] for c in sent)


def test_input_switches_the_sample_template():
    with_input = Sample("Translate.", "Bonjour", "Hello")
    _, sent = drive(evolve(with_input, mode="advise"), scripted([]))
    assert "### Input:\nBonjour" in sent[0].messages[-1]["content"]
    assert "paired with an input" in sent[0].messages[-1]["content"]
    _, sent = drive(evolve(SAMPLE, mode="advise"), scripted([]))
    assert "### Input:" not in sent[0].messages[-1]["content"]
    assert "paired with an input" not in sent[0].messages[-1]["content"]


@pytest.mark.parametrize("sample, mode, message", [
    (Sample("", "", "x"), "full", "instruction is empty"),
    (Sample("Do it", "", "  "), "full", "response is empty"),
    (Sample(42, "", "x"), "full", "instruction is a int"),
])
def test_bad_samples_raise_row_errors(sample, mode, message):
    with pytest.raises(RowError, match=message):
        drive(evolve(sample, mode=mode), scripted([]))


def test_edit_mode_writes_a_response_when_there_is_none():
    result, _ = drive(evolve(Sample("Say hi", "", ""), mode="edit"), scripted([]))
    assert result.response == "edit 1"


CONVERSATION = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
    {"role": "user", "content": "q3"}, {"role": "assistant", "content": "a3"},
    {"role": "user", "content": "q4"}, {"role": "assistant", "content": "a4"},
]


def test_conversation_turns_are_evolved_in_order_with_a_three_round_window():
    verdicts = [("<assistant 2>", "<assistant 1>"), ("<equal>", "<equal>")] * 4  # one accepted edit per turn
    result, sent = drive(evolve_conversation(CONVERSATION, max_rounds=2), scripted(verdicts))
    assert result.rounds == [1, 1, 1, 1]
    assert [m["content"] for m in result.messages if m["role"] == "assistant"] == ["edit 1", "edit 3", "edit 5", "edit 7"]
    assert result.messages[0] == CONVERSATION[0]
    # the instruction for the 4th answer holds rounds 2-3 (already evolved) and q4, not round 1
    context = [c for c in sent if c.agent == "positive" and len(c.messages) == 2][-1].messages[1]["content"]
    assert "USER: q2\nASSISTANT: edit 3\nUSER: q3\nASSISTANT: edit 5\nUSER: q4" in context
    assert "q1" not in context
    # the first turn is shown as is, like a single-turn sample
    first = [c for c in sent if c.agent == "positive"][0].messages[1]["content"]
    assert first.startswith("### Instruction:\nq1\n\n### Response:\na1")


def test_max_turns_limits_the_optimized_turns():
    result, _ = drive(evolve_conversation(CONVERSATION, max_turns=2), scripted([("<equal>", "<equal>")] * 2))
    assert result.rounds == [0, 0] and len(result.trace) == 2
    assert result.messages == CONVERSATION


def test_a_conversation_stops_being_optimized_at_its_token_budget():
    # edit N doubles nothing; the budget counts words of the conversation up to the turn just optimized
    words = lambda text: len(text.split())  # noqa: E731
    verdicts = [("<assistant 2>", "<assistant 1>"), ("<equal>", "<equal>")] * 4
    # "q1 edit 1" = 3 words, + "q2 edit 3" = 6: a budget of 5 stops after the 2nd turn (with the system
    # prompt's 2 words counted, it would stop after the 1st)
    result, _ = drive(evolve_conversation(CONVERSATION, max_rounds=2, max_tokens=5, count_tokens=words),
                      scripted(verdicts))
    assert result.rounds == [1, 1] and len(result.trace) == 2
    assert [m["content"] for m in result.messages if m["role"] == "assistant"] == ["edit 1", "edit 3", "a3", "a4"]
    # max_turns, when given, is the rule instead (as in the reference)
    again, _ = drive(evolve_conversation(CONVERSATION, max_rounds=2, max_tokens=5, count_tokens=words, max_turns=3),
                     scripted(verdicts))
    assert again.rounds == [1, 1, 1]


def test_sharegpt_turns_are_normalized():
    assert normalize([{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]) == [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("turns, message", [
    ([], "non-empty list"),
    (None, "conversation is None"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "turn 2 is 'user' where 'assistant'"),
    ([{"role": "assistant", "content": "a"}], "turn 1 is 'assistant' where 'user'"),
    ([{"role": "robot", "content": "a"}], "unknown role 'robot'"),
    ([{"from": "human", "value": ""}], "empty content"),
    ([{"role": "user", "content": 5}], "a int content"),
    (["hello"], "turn 1 is text"),
    ([{"speaker": "x"}], "expected role/content or from/value"),
])
def test_malformed_conversations_raise_row_errors(turns, message):
    with pytest.raises(RowError, match=message):
        normalize(turns)


def test_modes_and_defaults_follow_the_paper():
    assert coevol.MODES[-1] == "full" and coevol.MAX_ROUNDS == 3 and coevol.CONTEXT_ROUNDS == 3
