"""Structured replies: each method's declared reply shapes agree with the parsers that read them, and
an `LLM(structured=...)` holds the endpoint to them in its dialect (checked by the fake server)."""
import json
import re
from pathlib import Path

import datasets
import jsonschema
import pytest
from fake_openai import (
    FakeOpenAI,
    coevol_replies,
    prefer_edit,
    r2s_replies,
    review_replies,
)

import hf_synth
from hf_synth import LLM, CoEvolTransform, EndpointError, R2STransform, ReviewInstructTransform
from hf_synth.errors import ConfigError
from hf_synth.llm import structured
from hf_synth.methods import difficulty, judge, quality, r2s, review_instruct
from hf_synth.methods.dialogue_eval import parse_scores, scores_shape
from hf_synth.status import counts
from hf_synth.shapes import Choice, Quoted, Shape, Text
from hf_synth.transforms import (
    DialogueEvalTransform,
    DifficultyTransform,
    QualityTransform,
)

ONE = datasets.Dataset.from_dict({"instruction": ["Name a colour."], "output": ["Blue."]})


def admitted(shape, text: str) -> bool:
    return re.fullmatch(structured.regex(shape), text) is not None


# -- every reply a shape admits is read by its parser, as the value it was given

@pytest.mark.parametrize("label, read", [("<assistant 1>", "1"), ("<assistant 2>", "2"), ("<equal>", "equal")])
def test_the_judge_reads_every_verdict_its_shape_admits(label, read):
    text = judge.SHAPE.render({"verdict": label, "explanation": "The second is\nmore precise."})
    assert admitted(judge.SHAPE, text) and judge.parse_verdict(text) == read
    assert not admitted(judge.SHAPE, f"I think {label} is better.\nIt is.")


def test_quality_and_difficulty_read_every_score_and_label_their_shapes_admit():
    scores = quality.SHAPE.slots[0].options
    assert len(scores) == 11 and scores[0] == "0" and scores[-1] == "5" and "4.5" in scores
    for score in scores:
        text = quality.SHAPE.render({"score": score, "explanation": "Accurate."})
        assert admitted(quality.SHAPE, text) and quality.parse_score(text) == float(score)
    for label in ("easy", "medium", "hard"):
        text = difficulty.SHAPE.render({"label": label, "reasons": "Needs one step."})
        assert admitted(difficulty.SHAPE, text) and difficulty.parse_label(text) == label
    assert not admitted(difficulty.SHAPE, "Difficulty: easy")


def test_a_score_or_label_line_is_read_when_only_the_reasons_after_it_were_cut():
    from hf_synth.protocol import Reply

    assert quality.parse_score(Reply("4.5\nAccurate, but the second para", "length")) == 4.5
    assert quality.parse_score(Reply("4", "length")) is None  # cut inside its line: it may have been 4.5
    assert difficulty.parse_label(Reply("hard\nIt needs expert", "length")) == "hard"
    assert difficulty.parse_label(Reply("medi", "length")) is None


@pytest.mark.parametrize("direction", ["depth", "breadth"])
def test_the_chairman_and_reviewer_shapes_are_what_their_parsers_read(direction):
    values = {"question": "How does it scale?", "direction": direction, "reasoning": "The answer was thin."}
    text = review_instruct.CHAIRMAN_WITH_DIRECTION.render(values)
    assert text.startswith("Question: How does it scale?\nDirection: ")  # the order the prompt asks for
    assert review_instruct.parse_chairman(text) == (direction, "The answer was thin.", "How does it scale?")
    only = review_instruct.CHAIRMAN_QUESTION_ONLY.render({"question": "And then?"})
    assert review_instruct.parse_chairman(only) == (None, None, "And then?")
    for verdict in ("sufficient", "insufficient"):
        review = review_instruct.REVIEW_WITH_VERDICT.render({"review": "It lacks\nexamples.", "verdict": verdict})
        assert admitted(review_instruct.REVIEW_WITH_VERDICT, review)
        assert review_instruct.parse_verdict(review) == verdict


@pytest.mark.parametrize("kind", r2s.TYPES)
def test_the_questioner_shape_gives_every_field_the_chain_reads(kind):
    values = {"user": "Where is it?", "type": kind, "search": "location; height",
              "find": ["It stands on the cliff.", 'It is "tall", 30 m.']}
    text = r2s.TURN_PLAN.render(values)
    assert admitted(r2s.TURN_PLAN, text)
    block = r2s.parse_block(text)
    assert block["user"] == "Where is it?" and r2s.dialogue_type(block["type"]) == kind
    assert r2s.search_phrases(block["search"]) == ["location", "height"]
    assert r2s.find_spans(block["find"]) == ["It stands on the cliff.", "It is 'tall', 30 m."]
    flow = r2s.flow_shape(3).render({"purpose": "learn", **{f"turn_{n}_type": kind for n in (1, 2, 3)},
                                     **{f"turn_{n}_covers": f"part {n}" for n in (1, 2, 3)}})
    assert flow.splitlines() == ["Purpose: learn", f"Turn 1: {kind}: part 1", f"Turn 2: {kind}: part 2",
                                 f"Turn 3: {kind}: part 3"]


def test_the_evaluator_shape_gives_every_score_parse_scores_reads():
    shape = scores_shape(2)
    values = {"turn_1_info": "4", "turn_1_ud": "5", "turn_1_uf": "3", "turn_1_fd": "2", "turn_1_fl": "1",
              "turn_2_info": "1", "turn_2_ud": "2", "turn_2_uf": "3", "turn_2_fd": "4", "turn_2_fl": "5",
              "cs": "5", "co": "4", "ia": "3", "cr": "60"}
    text = shape.render(values)
    assert admitted(shape, text)
    turns, whole, cr = parse_scores(text, 2)
    assert turns == [{"info": 4, "ud": 5, "uf": 3, "fd": 2, "fl": 1}, {"info": 1, "ud": 2, "uf": 3, "fd": 4, "fl": 5}]
    assert whole == {"cs": 5, "co": 4, "ia": 3} and cr == 60
    assert not admitted(shape, text.replace("CR=60%", "CR=160%")) and not admitted(shape, text.replace("UD=5", "UD=6"))


def test_slots_are_bounded_so_a_small_model_cannot_run_on_inside_one():
    assert admitted(r2s.TURN_PLAN, r2s.TURN_PLAN.render({"user": "u" * 2000, "type": "Question-Answer", "search": "s",
                                                         "find": ["f" * 300] * 5}))
    assert not admitted(r2s.TURN_PLAN, r2s.TURN_PLAN.render({"user": "u" * 2001, "type": "Question-Answer",
                                                             "search": "s", "find": ["f"]}))
    assert not admitted(r2s.TURN_PLAN, r2s.TURN_PLAN.render({"user": "u", "type": "Question-Answer", "search": "s",
                                                             "find": ["f" * 301]}))
    assert not admitted(r2s.TURN_PLAN, r2s.TURN_PLAN.render({"user": "u", "type": "Question-Answer", "search": "s",
                                                             "find": ["f"] * 6}))


def test_the_grammar_is_the_shape_in_gbnf():
    grammar = structured.gbnf(r2s.TURN_PLAN)
    assert grammar.splitlines()[0] == ('root ::= "User: " line "\\nDialogue Type: " ("Question-Answer" | '
                                       '"Question-Question" | "Statement-Inquiry" | "Statement-Explanation" | '
                                       '"Opinion-Rebuttal" | "Opinion-Agreement") "\\nSearch: " line "\\nFind: " quoted')
    assert set(grammar.splitlines()[1:]) == {'line ::= [^\\n]{1,2000}', 'passage ::= "\\"" [^"\\n]{1,300} "\\""',
                                             'quoted ::= (passage (" " passage){0,4})?'}


def test_shapes_never_forbid_what_the_papers_allow():
    """A shape holds a reply to its prompt's format, nothing narrower: R2S's Find may quote nothing (a turn the
    document does not cover), its judge may score 4.5 (Figure 2), a question may run to a 300-word reply."""
    plan = {"user": "Is it sunny on Mars?", "type": "Question-Answer", "search": "weather on Mars"}
    assert admitted(r2s.TURN_PLAN, r2s.TURN_PLAN.render({**plan, "find": []}))
    assert r2s.TURN_PLAN.render({**plan, "find": []}).endswith("\nFind: ")
    scores = scores_shape(1)
    assert "4.5" in next(slot for slot in scores.slots if isinstance(slot, Choice)).options
    words = " ".join(["word"] * 300) + "?"
    assert admitted(review_instruct.CHAIRMAN_QUESTION_ONLY, f"Question: {words}")


def test_literal_text_is_matched_as_itself_in_every_grammar():
    shape = Shape("t", 'Score (0-5)? say "so" \\ ', Choice("score", ["4.5", "5"]), "\n", Text("why"))
    assert admitted(shape, 'Score (0-5)? say "so" \\ 4.5\nbecause')
    assert not admitted(shape, 'Score 0-5 say "so" \\ 4.5\nbecause') and not admitted(shape, 'Score (0-5)? say "so" \\ 4x5\n')
    assert structured.gbnf(shape) == 'root ::= "Score (0-5)? say \\"so\\" \\\\ " ("4.5" | "5") "\\n" text\ntext ::= [^\\x00]*\n'


DECLARED = [judge.SHAPE, quality.SHAPE, difficulty.SHAPE, review_instruct.CHAIRMAN_WITH_DIRECTION,
            review_instruct.CHAIRMAN_QUESTION_ONLY, review_instruct.REVIEW_WITH_VERDICT, r2s.TURN_PLAN,
            r2s.flow_shape(2), scores_shape(2)]


@pytest.mark.parametrize("shape", DECLARED, ids=lambda shape: shape.name)
def test_the_json_schema_is_strict_and_admits_exactly_the_shapes_values(shape):
    body = structured.constraint(shape, "openai")["response_format"]
    assert body["type"] == "json_schema" and body["json_schema"]["name"] == shape.name and body["json_schema"]["strict"]
    schema = body["json_schema"]["schema"]
    jsonschema.Draft202012Validator.check_schema(schema)
    # OpenAI's strict mode: an object names and requires all its fields and allows no others
    assert schema["additionalProperties"] is False and schema["required"] == [slot.name for slot in shape.slots]
    validator = jsonschema.Draft202012Validator(schema)
    valid = {slot.name: slot.options[-1] if isinstance(slot, Choice) else ["a passage"] if isinstance(slot, Quoted)
             else "some words" for slot in shape.slots}
    assert validator.is_valid(valid)
    wrong = ["not an object", {**valid, "other": "x"}]
    for slot in shape.slots:
        wrong += [{name: value for name, value in valid.items() if name != slot.name}, {**valid, slot.name: 3}]
        if isinstance(slot, Choice):
            wrong.append({**valid, slot.name: "not an option"})
        if isinstance(slot, Quoted):
            wrong += [{**valid, slot.name: [3]},
                      {**valid, slot.name: ["p"] * (structured.MAX_PASSAGES + 1)}]
    assert [w for w in wrong if validator.is_valid(w)] == []


# -- an LLM option, in four dialects

def test_structured_is_off_for_endpoints_on_for_the_embedded_model_and_checked():
    assert LLM(model="m", base_url="http://127.0.0.1:1/v1").structured is None
    assert LLM().structured == "llama.cpp" and LLM(structured=None).structured is None
    with pytest.raises(ConfigError, match=r"structured='xgrammar'.*'llama.cpp', 'vllm', 'sglang', 'openai'"):
        LLM(model="m", base_url="http://127.0.0.1:1/v1", structured="xgrammar")


def judge_requests(server):
    return [body for body in server.requests if "checking the quality" in body["messages"][0]["content"]]


def test_off_by_default_no_request_carries_a_constraint(server, llm):
    ONE.map(CoEvolTransform(llm, max_rounds=1), batched=True)
    assert len(server.requests) == 8
    assert not any({"grammar", "regex", "structured_outputs", "response_format"} & body.keys() for body in server.requests)


@pytest.mark.parametrize("dialect, field", [("vllm", "structured_outputs"), ("sglang", "regex"), ("llama.cpp", "grammar")])
def test_each_dialect_sends_the_judge_its_constraint_and_nothing_else(server, dialect, field):
    llm = LLM(model="fake-model", base_url=server.url, structured=dialect)
    out = ONE.map(CoEvolTransform(llm, max_rounds=2), batched=True)
    assert out["coevol_rounds"] == [2] and out[0]["coevol_output"] == "Blue. [edited] [edited]"
    judged = judge_requests(server)
    assert len(judged) == 4 and all(field in body for body in judged)
    expected = {"vllm": {"regex": structured.regex(judge.SHAPE)}, "sglang": structured.regex(judge.SHAPE),
                "llama.cpp": structured.gbnf(judge.SHAPE)}[dialect]
    assert all(body[field] == expected for body in judged)
    others = [body for body in server.requests if body not in judged]
    assert len(others) == 12 and not any(field in body for body in others)
    assert server.violations == []  # the fake's verdicts follow Table 9's format, which the regex admits


def test_a_drifted_verdict_is_what_the_regex_forbids(llm):
    drifted = coevol_replies(lambda messages: "Assistant 2 is better.")
    with FakeOpenAI(drifted) as server:
        ONE.map(CoEvolTransform(LLM(model="m", base_url=server.url, structured="vllm"), max_rounds=1), batched=True)
    assert [dialect for dialect, _ in server.violations] == ["regex", "regex"]


def test_openai_dialect_asks_for_json_and_the_method_reads_it_as_text(server):
    def json_verdict(messages, schema):
        assert schema == structured.json_schema(judge.SHAPE)
        return {"verdict": prefer_edit(messages).splitlines()[0], "explanation": "More edits."}

    server.json_reply = json_verdict
    out = ONE.map(CoEvolTransform(LLM(model="fake-model", base_url=server.url, structured="openai"), max_rounds=1),
                  batched=True)
    judged = judge_requests(server)
    assert [body["response_format"]["type"] for body in judged] == ["json_schema"] * 2
    assert all(body["response_format"]["json_schema"]["strict"] for body in judged)
    round_ = out[0]["coevol_trace"][0]
    assert round_["verdicts"] == ["<assistant 2>\nMore edits.", "<assistant 1>\nMore edits."]
    assert round_["parsed_verdicts"] == ["2", "1"] and out["coevol_rounds"] == [1] and server.violations == []


def test_json_that_is_not_an_object_reaches_the_parser_as_it_came():
    assert structured.read(judge.SHAPE, "openai", "<assistant 1>\nok") == "<assistant 1>\nok"
    assert structured.read(judge.SHAPE, "openai", '["<equal>"]') == '["<equal>"]'
    assert structured.read(judge.SHAPE, "vllm", '{"verdict": "<equal>"}') == '{"verdict": "<equal>"}'


def test_every_method_and_judge_holds_its_parsed_replies_over_vllm(tmp_path):
    with FakeOpenAI(review_replies()) as server:
        llm = LLM(model="m", base_url=server.url, structured="vllm")
        seeds = datasets.Dataset.from_dict({"instruction": ["Give three tips for staying healthy."]})
        out = seeds.map(ReviewInstructTransform(llm, rounds=2, num_reviewers=2, direction="majority"), batched=True)
        out = out.map(DifficultyTransform(llm), batched=True)
        assert out["review_error"] == [None] and out["difficulty_labels"] == [["easy", "medium"]]
        constrained = [body for body in server.requests if "structured_outputs" in body]
        # round 1's two reviews and the Chairman's question (the last round only answers), two difficulty labels
        assert len(constrained) == 2 + 1 + 2
        assert server.violations == []
    with FakeOpenAI(r2s_replies()) as server:
        llm = LLM(model="m", base_url=server.url, structured="sglang")
        sample = Path(hf_synth.__file__).parent / "data" / "documents_sample.jsonl"
        docs = datasets.load_dataset("json", data_files=str(sample), split="train").select([0, 6])
        out = docs.map(R2STransform(llm, turns=2), batched=True).map(DialogueEvalTransform(llm), batched=True)
        assert out["r2s_error"] == [None, None] and out["eval_avg"] == pytest.approx([(4 + 4 + 5 + 4 + 3 + 5 + 4 + 3 + 3) / 9] * 2)
        constrained = [body for body in server.requests if "regex" in body]
        assert len(constrained) == 2 * (1 + 2 + 1)  # planner, questioner per turn, evaluator
        assert server.violations == []
    with FakeOpenAI(lambda messages: "4.5\nAccurate and helpful.") as server:
        out = ONE.map(QualityTransform(LLM(model="m", base_url=server.url, structured="vllm")), batched=True)
        assert out["quality_score"] == [4.5] and len(server.requests) == 1 and server.violations == []


def test_structured_changes_the_fingerprint_and_the_request_cache_key(server, monkeypatch):
    free, held = (LLM(model="fake-model", base_url=server.url, structured=s) for s in (None, "vllm"))
    ONE.map(CoEvolTransform(free, max_rounds=1), batched=True)
    sent = counts().sent
    again = ONE.map(CoEvolTransform(held, max_rounds=1), batched=True)
    assert counts().sent - sent == 8 and again["coevol_rounds"] == [1]  # nothing answered from the free run
    sent = counts().sent
    ONE.map(CoEvolTransform(LLM(model="fake-model", base_url=server.url, structured="vllm", max_concurrency=3),
                            max_rounds=1), batched=True)
    assert counts().sent == sent
    # a reply held to one shape is not served for another (a later version's judge, say)
    monkeypatch.setattr(judge, "SHAPE", Shape("pairwise_judgment", Choice("verdict", ["<assistant 1>", "<assistant 2>",
                                                                                      "<equal>", "<neither>"]),
                                              "\n", Text("explanation")))
    ONE.map(CoEvolTransform(held, max_rounds=1), batched=True, load_from_cache_file=False)
    assert counts().sent - sent == 2  # the judge's two orders; the debate, advice and edit come from the cache


def test_a_recipe_records_the_dialect_and_an_older_one_reruns_unconstrained(server, tmp_path):
    from hf_synth.runs import recipe

    held = CoEvolTransform(LLM(model="fake-model", base_url=server.url, structured="sglang"), max_rounds=1)
    made = recipe.make([held], source="x.jsonl")
    assert made["steps"][0]["llm"]["structured"] == "sglang"
    assert recipe.transforms(made)[0].llm.structured == "sglang"
    older = json.loads(json.dumps(made))
    del older["steps"][0]["llm"]["structured"]
    assert recipe.transforms(older)[0].llm.structured is None
    # on another endpoint the recorded dialect is not sent: that endpoint's default is
    assert recipe.transforms(made, model="other", base_url="http://127.0.0.1:9/v1")[0].llm.structured is None


@pytest.mark.parametrize("dialect, refusal", [("llama.cpp", "unrecognized argument: grammar"),
                                              ("vllm", "Extra inputs are not permitted: structured_outputs"),
                                              ("openai", "Invalid parameter: 'response_format' of type 'json_schema' is not supported")])
def test_a_server_that_refuses_the_constraint_stops_the_run_naming_structured(dialect, refusal):
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        server.error_message = refusal
        server.fault_for = lambda body: 400 if any(field in body for field in ("grammar", "structured_outputs",
                                                                               "response_format")) else None
        llm = LLM(model="m", base_url=server.url, structured=dialect, max_concurrency=4)
        with pytest.raises(EndpointError) as error:
            datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(200)], "output": ["x"] * 200}).map(
                CoEvolTransform(llm, max_rounds=1), batched=True)
        assert str(error.value) == (f"{server.url} refused the reply-shape constraint of structured={dialect!r} "
                                    f"(HTTP 400: {refusal}): set structured= (--structured) to this server's dialect, "
                                    "or None (--structured none).")
        judged = [body for body in server.requests if any(f in body for f in ("grammar", "structured_outputs",
                                                                              "response_format"))]
        assert len(judged) <= 4  # the first wave of constrained requests, not 200 rows' worth


def test_json_with_a_trailing_comma_is_mended_and_broken_json_is_never_read_as_a_verdict():
    mended = structured.read(judge.SHAPE, "openai", '{\n "explanation": "Assistant 1 missed a step.",\n'
                                                    ' "verdict": "<assistant 2>",\n}')
    assert judge.parse_verdict(mended) == "2"  # not the "1" its first line names
    broken = structured.read(judge.SHAPE, "openai", '{"explanation": "Assistant 1 is better", "verdict": "<assis')
    assert judge.parse_verdict(broken) is None  # unreadable, and counted so, not read off the raw JSON
    assert broken.endswith('"verdict": "<assis')  # the reply itself is kept, for the trace
