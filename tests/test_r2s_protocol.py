"""R2S and its evaluation without a server: parsing the chain's blocks, the grounding check, the
coverage, the Avg. formula, and the protocols driven with scripted replies."""
import pytest
from conftest import drive

from hf_synth.methods import dialogue_eval, grounding, r2s
from hf_synth.protocol import Chat, RowError

DOC = ("Zigui County lies in the west of Hubei Province. It has many tourist attractions, such as Qu Yuan "
       "Temple and Sword Gorge. The Three Gorges Dam is close to the county seat.")
DOC_ZH = "秭归县位于湖北省西部。县内有屈原祠和兵书宝剑峡等景点。三峡大坝离县城很近。"


# -- parsing the blocks

def test_a_well_formed_block():
    block = r2s.parse_block('Dialogue Type: Question-Answer\nUser: What can I visit?\n'
                            'Search: tourist attractions; Qu Yuan\nFind: "It has many tourist attractions"')
    assert block == {"type": "Question-Answer", "user": "What can I visit?", "search": "tourist attractions; Qu Yuan",
                     "find": '"It has many tourist attractions"'}


def test_markdown_brackets_numbering_and_text_around_the_fields():
    reply = ("Sure! Here is turn 2.\n\n**Dialogue Type:** [Opinion-Rebuttal]\n**User 2:** I think Sword Gorge is best.\n"
             "- Search: [Sword Gorge]\n- Find:\n  - Qu Yuan Temple\n  - Sword Gorge\n\nDialogue Type: Question-Answer\n"
             "User: a second turn the model ran on into")
    block = r2s.parse_block(reply)
    assert r2s.dialogue_type(block["type"]) == "Opinion-Rebuttal"
    assert block["user"] == "I think Sword Gorge is best."          # the run-on turn does not overwrite it
    assert r2s.search_phrases(block["search"]) == ["Sword Gorge"]
    assert r2s.find_spans(block["find"]) == ["Qu Yuan Temple", "Sword Gorge"]


def test_missing_fields_are_absent_not_invented():
    block = r2s.parse_block("User: Tell me about the dam.")
    assert block == {"user": "Tell me about the dam."}
    assert r2s.dialogue_type(block.get("type", "")) is None
    assert r2s.parse_block("I am not sure what to ask.") == {}


def test_chinese_labels_full_width_colons_and_quotes():
    block = r2s.parse_block("对话类型：观点-反驳\n用户：我觉得剑峡最有名。\n搜索：剑峡；屈原祠\n查找：“县内有屈原祠和兵书宝剑峡等景点”")
    assert r2s.dialogue_type(block["type"]) == "Opinion-Rebuttal"
    assert block["user"] == "我觉得剑峡最有名。"
    assert r2s.search_phrases(block["search"]) == ["剑峡", "屈原祠"]
    assert r2s.find_spans(block["find"]) == ["县内有屈原祠和兵书宝剑峡等景点"]
    # English labels with Chinese content, as the prompt asks
    assert r2s.parse_block("Dialogue Type: Statement-Explanation\nUser: 三峡大坝离县城很近。")["user"] == "三峡大坝离县城很近。"


@pytest.mark.parametrize("written, expected", [
    ("question answer", "Question-Answer"), ("[statement–inquiry]", "Statement-Inquiry"),
    ("Type 6: Opinion Agreement", "Opinion-Agreement"), ("问题-问题", "Question-Question"), ("banter", None)])
def test_dialogue_type_names(written, expected):
    assert r2s.dialogue_type(written) == expected


def test_a_whole_dialogue_for_the_baselines():
    turns = r2s.parse_dialogue("Thoughts: first the location, then the sights.\n\nUser: Where is Zigui?\n"
                               "Assistant: In Hubei.\nUser: Anything to see?\nAssistant: Qu Yuan Temple.\nUser: And?")
    assert [(t.user, t.assistant) for t in turns] == [("Where is Zigui?", "In Hubei."), ("Anything to see?", "Qu Yuan Temple.")]
    assert r2s.parse_dialogue("用户：秭归在哪里？\n助手：在湖北。")[0].assistant == "在湖北。"


# -- grounding and coverage

def test_grounding_exact_fuzzy_and_invented_spans():
    exact = grounding.ground("it has MANY tourist  attractions", DOC)
    assert (exact.grounded, exact.match, exact.score) == (True, "exact", 100.0)
    fuzzy = grounding.ground("The Three Gorges Dam is close to the county town", DOC)
    assert fuzzy.grounded and fuzzy.match == "fuzzy" and 90 <= fuzzy.score < 100
    assert "three gorges dam is" in fuzzy.passage
    invented = grounding.ground("Zigui County is the capital of France", DOC)
    assert (invented.grounded, invented.match, invented.passage) == (False, None, None) and invented.score < 90
    assert grounding.ground("县内有屈原祠和兵书宝剑峡等景点", DOC_ZH).match == "exact"
    assert grounding.ground("县内有屈原祠和兵书宝劍峡等景点", DOC_ZH).match == "fuzzy"   # one character differs
    assert not grounding.ground("北京是中国的首都", DOC_ZH).grounded
    assert not grounding.ground("  ", DOC).grounded


def test_coverage_counts_sentences_whose_content_the_dialogue_carries():
    assert grounding.sentences(DOC_ZH) == ["秭归县位于湖北省西部。", "县内有屈原祠和兵书宝剑峡等景点。", "三峡大坝离县城很近。"]
    assert grounding.coverage(DOC, []) == 0.0
    assert grounding.coverage(DOC, ["Qu Yuan Temple and Sword Gorge are tourist attractions."]) == pytest.approx(100 / 3, abs=0.01)
    assert grounding.coverage(DOC, [DOC]) == 100.0
    assert grounding.coverage(DOC_ZH, ["三峡大坝离县城很近，屈原祠也值得一去。"]) == pytest.approx(100 / 3, abs=0.01)
    assert grounding.coverage("1 2 3.", ["x"]) is None


# -- the Avg. column

@pytest.mark.parametrize("row, avg", [
    # Table 2, CoD (our method) GPT-3.5; Table 4, CoD (our method) GLLM (Qwen-2-7B)
    ((3.94, 4.32, 4.32, 4.32, 4.13, 4.34, 4.34, 4.28, 74.77), 4.19),
    ((3.87, 4.26, 4.26, 4.29, 4.10, 4.34, 4.34, 4.10, 69.44), 4.11)])
def test_average_reproduces_the_papers_avg_column(row, avg):
    scores = dict(zip(dialogue_eval.SCORES, row[:8]))
    assert dialogue_eval.average(scores, row[8]) == pytest.approx(avg, abs=0.01)
    assert dialogue_eval.average(scores | {"fd": None}, row[8]) is None
    assert dialogue_eval.average(scores, None) is None


def test_scores_parse_per_turn_and_missing_ones_stay_missing():
    judgment = ("Turn 2: Info=3 UD=4 UF=4 FD=5 FL=4\nTurn 1: Info: 4, UD: 5, UF: 5, FD: 4, FL: 4.5\n"
                "Turn 9: Info=1 UD=1 UF=1 FD=1 FL=1\nDialogue: CS=5 CO=4 IA=seven CR=72.5%")
    turns, whole, cr = dialogue_eval.parse_scores(judgment, 3)
    assert turns[0] == {"info": 4, "ud": 5, "uf": 5, "fd": 4, "fl": 4.5}
    assert turns[1] == {"info": 3, "ud": 4, "uf": 4, "fd": 5, "fl": 4}
    assert turns[2] == dict.fromkeys(dialogue_eval.TURN_METRICS)       # not scored, not guessed
    assert whole == {"cs": 5, "co": 4, "ia": None} and cr == 72.5
    turns, whole, cr = dialogue_eval.parse_scores("Info=7 UD=4\nCR=140", 1)
    assert turns[0]["info"] is None and turns[0]["ud"] == 4 and cr is None


# -- the protocols

def scripted(find='"It has many tourist attractions, such as Qu Yuan Temple and Sword Gorge."'):
    def answer(chat: Chat) -> str:
        if chat.agent == "planner":
            return "Purpose: see the sights.\nTurn 1: Question-Answer: the attractions"
        if chat.agent == "questioner":
            turn = chat.messages[-1]["content"].split("Plan turn ", 1)[1].split(" ", 1)[0]
            return f"Dialogue Type: Question-Answer\nUser: question {turn}\nSearch: sights\nFind: {find}"
        return f"answer {sum(m['role'] == 'user' for m in chat.messages)}"
    return answer


@pytest.mark.parametrize("turns", [1, 3, 5])
def test_cod_plans_the_flow_then_makes_two_requests_per_turn_and_strips_annotations(turns):
    dialogue, sent = drive(r2s.generate(DOC, turns=turns), scripted())
    assert [c.agent for c in sent] == ["planner"] + ["questioner", "answerer"] * turns
    assert dialogue.flow == "Purpose: see the sights.\nTurn 1: Question-Answer: the attractions"
    assert dialogue.messages == [m for n in range(1, turns + 1) for m in
                                 ({"role": "user", "content": f"question {n}"}, {"role": "assistant", "content": f"answer {n}"})]
    assert len(dialogue.turns) == turns and dialogue.note is None
    first = dialogue.turns[0]
    assert (first.type, first.search) == ("Question-Answer", ["sights"])
    assert first.find[0].grounded and first.find[0].match == "exact"


def test_the_reply_is_built_on_grounded_spans_only_and_sees_the_dialogue():
    protocol = r2s.generate(DOC, turns=2)
    next(protocol)
    protocol.send("Purpose: sights.")
    answerer = protocol.send('Dialogue Type: Question-Answer\nUser: What is there?\nSearch: sights\n'
                             'Find: "It has many tourist attractions" "Zigui has a famous zoo."')
    passages = answerer.messages[0]["content"]
    assert "It has many tourist attractions" in passages and "zoo" not in passages
    assert "the user asks a question, so answer it" in passages
    assert answerer.messages[1:] == ({"role": "user", "content": "What is there?"},)
    questioner = protocol.send("There is Qu Yuan Temple.")
    # the chain so far, in Figure 2's order, and the planned flow
    assert ('User: What is there?\nDialogue Type: Question-Answer\nSearch: sights\nFind: "It has many tourist '
            'attractions"\nAssistant: There is Qu Yuan Temple.') in questioner.messages[-1]["content"]
    assert "[Planned logic flow]\nPurpose: sights." in questioner.messages[-1]["content"]
    dialogue, _ = drive(r2s.generate(DOC, turns=1), scripted(find='"Zigui has a famous zoo."'))
    assert [(s.text, s.grounded) for s in dialogue.turns[0].find] == [("Zigui has a famous zoo.", False)]


def test_no_grounded_span_tells_the_answerer_to_use_common_knowledge():
    protocol = r2s.generate(DOC, turns=1)
    next(protocol)
    protocol.send("Purpose: chat.")
    answerer = protocol.send("Dialogue Type: banter\nUser: Hello!\nFind: nothing here")
    assert "the document does not cover this" in answerer.messages[0]["content"]
    assert "naturally" in answerer.messages[0]["content"]


def test_rows_fail_with_a_reason_on_unusable_replies():
    with pytest.raises(RowError, match="turn 1: the questioner's reply held no 'User:' line"):
        drive(r2s.generate(DOC), lambda chat: "I cannot do that.")
    with pytest.raises(RowError, match="turn 1: the assistant's reply is empty"):
        drive(r2s.generate(DOC), lambda chat: "User: hi" if chat.agent == "questioner" else "  ")
    for bad in (None, "", 3):
        with pytest.raises(RowError, match="document"):
            drive(r2s.generate(bad), scripted())


@pytest.mark.parametrize("strategy", ["direct", "cot"])
def test_baselines_ask_once_and_keep_the_turns_asked_for(strategy):
    reply = "Thoughts: plan.\n" * (strategy == "cot") + "".join(f"User: q{n}\nAssistant: a{n}\n" for n in range(1, 8))
    dialogue, sent = drive(r2s.generate(DOC, turns=5, strategy=strategy), lambda chat: reply)
    assert [c.agent for c in sent] == ["generator"]
    assert ("Think step by step" in sent[0].messages[-1]["content"]) == (strategy == "cot")
    assert [m["content"] for m in dialogue.messages[::2]] == ["q1", "q2", "q3", "q4", "q5"]
    assert all(t.type is None and t.find == [] for t in dialogue.turns)
    short, _ = drive(r2s.generate(DOC, turns=5, strategy=strategy), lambda chat: "User: q\nAssistant: a")
    assert short.note == "the generator wrote 1 of 5 turns"
    with pytest.raises(RowError, match="no 'User:' line followed by an 'Assistant:' line"):
        drive(r2s.generate(DOC, strategy=strategy), lambda chat: "A lovely dialogue.")


def test_a_long_document_is_cut_at_a_sentence_end_with_a_note():
    long = " ".join(f"Sentence number {n} is here." for n in range(400))
    dialogue, sent = drive(r2s.generate(long, turns=1, max_document_chars=1000), scripted(find='"Sentence number 3 is here."'))
    shown = sent[1].messages[-1]["content"].split("[Document]\n", 1)[1].split("\n\n[Planned logic flow]", 1)[0]
    assert len(shown) <= 1000 and shown.endswith("is here.") and shown == long[:len(shown)]
    assert dialogue.note == f"document truncated from {len(long)} to {len(shown)} characters (max_document_chars=1000)"
    assert dialogue.turns[0].find[0].grounded


def test_annotated_dialogue_for_a_generator_model_reads_back():
    dialogue, _ = drive(r2s.generate(DOC, turns=2), scripted(
        find='"The Three Gorges Dam is close to the county seat." "Invented."'))
    text = r2s.annotate(dialogue.turns)
    assert "Invented" not in text and '"The Three Gorges Dam is close to the county seat."' in text
    blocks = [r2s.parse_block(block) for block in text.split("\n\n")]
    assert [b["user"] for b in blocks] == ["question 1", "question 2"]
    assert [b["assistant"] for b in blocks] == ["answer 1", "answer 2"]
    assert "Invented." in r2s.annotate(dialogue.turns, grounded_only=False)


def test_evaluate_scores_a_dialogue_in_one_request():
    messages = [{"role": "user", "content": "Where is Zigui?"}, {"role": "assistant", "content": "In the west of Hubei Province."},
                {"role": "user", "content": "What can I see?"}, {"role": "assistant", "content": "Qu Yuan Temple."}]
    judgment = "Turn 1: Info=4 UD=5 UF=5 FD=5 FL=4\nTurn 2: Info=3 UD=4 UF=4 FD=4 FL=4\nDialogue: CS=5 CO=4 IA=3 CR=50%"
    result, sent = drive(dialogue_eval.evaluate(DOC, messages), lambda chat: judgment)
    assert len(sent) == 1 and "Turn 2\nUser: What can I see?\nAssistant: Qu Yuan Temple." in sent[0].messages[-1]["content"]
    assert result.scores == {"info": 3.5, "ud": 4.5, "uf": 4.5, "fd": 4.5, "fl": 4, "cs": 5, "co": 4, "ia": 3}
    assert result.cr == 50 and result.average == pytest.approx((3.5 + 4.5 * 3 + 4 + 5 + 4 + 3 + 2.5) / 9)
    assert result.coverage == pytest.approx(100 / 3, abs=0.01)   # the first sentence: west, Hubei, Province
    with pytest.raises(RowError, match="no user turn followed by an assistant turn"):
        drive(dialogue_eval.evaluate(DOC, messages[:1]), lambda chat: judgment)


def test_figure_2_field_order_in_the_prompt_and_the_annotated_format():
    _, sent = drive(r2s.generate(DOC, turns=1), scripted())
    prompt = sent[1].messages[-1]["content"]
    order = [prompt.index(f"\n{label}:") for label in ("User", "Dialogue Type", "Search", "Find")]
    assert order == sorted(order)
    turn = r2s.Turn("Question-Answer", "q", ["s"], [grounding.ground("It has many tourist attractions", DOC)], "a")
    assert [line.split(":", 1)[0] for line in r2s.annotate([turn]).splitlines()] == [
        "User", "Dialogue Type", "Search", "Find", "Assistant"]


def test_opinion_rebuttal_counters_with_facts_or_another_viewpoint():
    user_side, reply = r2s.prompts.TYPES["Opinion-Rebuttal"]
    assert user_side == "the user gives an opinion" and "present a different viewpoint" in reply


def test_a_gllm_reply_in_the_exported_format_reads_back_as_the_same_chain():
    dialogue, _ = drive(r2s.generate(DOC, turns=2), scripted(
        find='"The Three Gorges Dam is close to the county seat."'))
    exported = r2s.annotate(dialogue.turns)  # what gllm_pairs teaches a generator to write
    generated, sent = drive(r2s.generate(DOC, turns=2, strategy="gllm"), lambda chat: exported)
    assert [c.agent for c in sent] == ["generator"] and "Chain of Dialogue" in sent[0].messages[-1]["content"]
    assert generated.turns == dialogue.turns and generated.messages == dialogue.messages
    invented, _ = drive(r2s.generate(DOC, turns=1, strategy="gllm"),
                        lambda chat: 'User: q\nDialogue Type: Question-Answer\nFind: "Zigui has a zoo."\nAssistant: a')
    assert [(s.text, s.grounded) for s in invented.turns[0].find] == [("Zigui has a zoo.", False)]


@pytest.mark.parametrize("strategy", ["direct", "gllm"])
def test_a_one_pass_reply_cut_at_max_tokens_keeps_its_complete_turns(strategy):
    from hf_synth.protocol import Reply

    cut = Reply("User: q1\nAssistant: a1\nUser: q2\nAssistant: a2\nUser: q3\nAssistant: a3 is half", "length")
    dialogue, sent = drive(r2s.generate(DOC, turns=5, strategy=strategy), lambda chat: cut)
    assert not sent[0].whole  # the runner hands a cut reply over instead of failing the row
    assert [m["content"] for m in dialogue.messages[::2]] == ["q1", "q2"]
    assert dialogue.note == ("the generator's reply was cut at max_tokens: its last turn was dropped; "
                             "the generator wrote 2 of 5 turns")
