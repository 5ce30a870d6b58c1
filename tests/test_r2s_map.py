"""R2STransform, DialogueEvalTransform, the GLLM export and `hf-synth r2s` against the fake HTTP server."""
import json
import re
from pathlib import Path

import datasets
import pytest
from fake_openai import FakeOpenAI, agent_of, r2s_replies
from command import hf_synth_cli

import hf_synth
from hf_synth import LLM, InputError, R2STransform
from hf_synth.export import gllm_pairs
from hf_synth.filters import Grounded
from hf_synth.methods.r2s import TYPES
from hf_synth.status import counts
from hf_synth.transforms import DialogueEvalTransform

DOCUMENTS = Path(hf_synth.__file__).parent / "data" / "documents_sample.jsonl"


@pytest.fixture
def r2s_server():
    with FakeOpenAI(r2s_replies()) as fake:
        yield fake


@pytest.fixture
def r2s_llm(r2s_server):
    return LLM(model="fake-model", base_url=r2s_server.url, max_retries=1)


@pytest.fixture
def docs():
    return datasets.load_dataset("json", data_files=str(DOCUMENTS), split="train")


def test_map_turns_english_and_chinese_documents_into_grounded_dialogues(docs, r2s_llm, r2s_server):
    out = docs.map(R2STransform(r2s_llm, turns=3), batched=True, batch_size=5)
    assert out["title"] == docs["title"] and out["r2s_error"] == [None] * len(docs)
    # the flow, then a plan and a reply per turn
    assert len(r2s_server.requests) == 7 * len(docs) and [u["calls"] for u in out["r2s_usage"]] == [7] * len(docs)
    assert all(flow.startswith("Purpose: learn about the place.\nTurn 1: Question-Answer") for flow in out["r2s_flow"])
    for row in out:
        first = re.split(r"(?<=[.!?。！？])\s*", row["text"].strip(), maxsplit=1)[0]  # not the fake's own helper
        assert [m["role"] for m in row["r2s_messages"]] == ["user", "assistant"] * 3
        assert row["r2s_messages"][1]["content"] == f"answer 1: {first}"     # built on the grounded Find span
        cod = row["r2s_cod"]
        assert [t["type"] for t in cod] == list(TYPES[:3])
        assert cod[0]["search"] == ["topic 1", "detail"]
        assert [(s["grounded"], s["match"]) for s in cod[0]["find"]] == [(True, "exact")]
        assert [s["grounded"] for s in cod[1]["find"]] == [True, False]  # the invented sentence is flagged, kept
        assert row["r2s_note"] is None
    chinese = out.filter(lambda r: r["language"] == "zh")
    assert len(chinese) == 6 and all("。" in row["r2s_cod"][0]["find"][0]["text"] for row in chinese)
    assert len(out.filter(Grounded(min_share=0.75))) == len(docs)            # 3 of 4 spans found
    assert len(out.filter(Grounded(min_share=0.8))) == 0 and len(out.filter(Grounded())) == 0


def test_strategies_long_documents_bad_rows_and_a_free_rerun(r2s_llm, r2s_server):
    ds = datasets.Dataset.from_dict({"text": ["Short one. Two.", "Long sentence here. " * 300, None, ""]})
    out = ds.map(R2STransform(r2s_llm, turns=2, max_document_chars=500), batched=True)
    assert out["r2s_error"][:2] == [None, None]
    assert out["r2s_error"][2:] == ["document is None, expected text", "document is empty"]
    assert out["r2s_note"][1] == "document truncated from 6000 to 499 characters (max_document_chars=500)"
    assert out["r2s_messages"][2] is None and out["r2s_usage"][2]["calls"] == 0
    sent = counts().sent
    again = ds.map(R2STransform(r2s_llm, turns=2, max_document_chars=500), batched=True, load_from_cache_file=False)
    assert counts().sent == sent and again.to_list() == out.to_list()
    for strategy in ("direct", "cot"):
        base = ds.select([0]).map(R2STransform(r2s_llm, turns=4, strategy=strategy), batched=True)
        assert base["r2s_usage"][0]["calls"] == 1
        assert [m["content"] for m in base[0]["r2s_messages"][::2]] == ["question 1", "question 2", "question 3", "question 4"]
        assert all(turn["type"] is None and turn["find"] == [] for turn in base[0]["r2s_cod"])
    assert {agent_of(r["messages"]) for r in r2s_server.requests} == {"planner", "questioner", "answerer", "generator"}
    with pytest.raises(InputError, match="no column 'text' among \\['body'\\]: pass text_column="):
        datasets.Dataset.from_dict({"body": ["x"]}).map(R2STransform(r2s_llm), batched=True)
    with pytest.raises(ValueError, match="strategy='react'"):
        R2STransform(r2s_llm, strategy="react")


def test_eval_scores_every_dialogue_and_counts_find_spans_toward_coverage(docs, r2s_llm):
    out = docs.select([0, 6]).map(R2STransform(r2s_llm, turns=2), batched=True)
    scored = out.map(DialogueEvalTransform(r2s_llm), batched=True)
    assert scored["eval_error"] == [None, None]
    assert scored["eval_info"] == [4, 4] and scored["eval_uf"] == [5, 5] and scored["eval_fl"] == [3, 3]
    assert scored["eval_cs"] == [5, 5] and scored["eval_ia"] == [3, 3] and scored["eval_cr"] == [60, 60]
    assert scored["eval_avg"] == [pytest.approx((4 + 4 + 5 + 4 + 3 + 5 + 4 + 3 + 3) / 9)] * 2
    assert [len(t) for t in scored["eval_turns"]] == [2, 2]
    assert all(40 <= c <= 100 for c in scored["eval_coverage"])
    # five sentences that share no word: the two found (turns 1 and 2) are exactly 40%
    five = datasets.Dataset.from_dict({"text": ["Alpha bravo charlie. Delta echo foxtrot. Golf hotel india. "
                                                "Juliet kilo lima. Mike november oscar."]})
    dialogue = five.map(R2STransform(r2s_llm, turns=2), batched=True)
    assert dialogue.map(DialogueEvalTransform(r2s_llm), batched=True)["eval_coverage"] == [40.0]
    # on plain conversations without r2s_cod, only the replies count
    plain = datasets.Dataset.from_dict({"text": [docs[0]["text"]], "messages": [
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]]})
    assert plain.map(DialogueEvalTransform(r2s_llm), batched=True)["eval_coverage"] == [0.0]


def test_gllm_pairs_teach_document_to_annotated_dialogue(docs, r2s_llm, tmp_path):
    out = docs.select([0, 1]).map(R2STransform(r2s_llm, turns=2), batched=True)
    broken = datasets.Dataset.from_dict({"text": [None]}).map(R2STransform(r2s_llm, turns=2), batched=True)
    pairs = gllm_pairs(out)
    assert len(pairs) == 2 and pairs["document"] == docs["text"][:2]
    messages = pairs[0]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert docs[0]["text"] in messages[1]["content"] and messages[2]["content"] == pairs[0]["dialogue"]
    assert "User: question 1\nDialogue Type: Question-Answer" in pairs[0]["dialogue"]  # Figure 2's order
    assert "cheese" not in pairs[0]["dialogue"]                                 # ungrounded spans left out
    assert "cheese" in gllm_pairs(out, grounded_only=False)[0]["dialogue"]
    assert len(gllm_pairs(broken)) == 0
    with pytest.raises(InputError, match="gllm_pairs needs the output of R2STransform"):
        gllm_pairs(docs)
    # the planned variant: the logic flow the chain planned, then the same turns; and a generator's reply
    # in that form is read by the gllm strategy turn for turn
    planned = gllm_pairs(out, planned=True)
    assert planned[0]["dialogue"] == f"{out[0]['r2s_flow'].strip()}\n\n{pairs[0]['dialogue']}"
    from hf_synth.methods.r2s import parse_annotated

    assert [t.user for t in parse_annotated(planned[0]["dialogue"], docs[0]["text"])] == \
        [t.user for t in parse_annotated(pairs[0]["dialogue"], docs[0]["text"])] == ["question 1", "question 2"]


def test_r2s_command_with_evaluation_and_export(r2s_server, tmp_path):
    out, gllm = tmp_path / "out", tmp_path / "gllm.jsonl"
    result = hf_synth_cli("r2s", str(DOCUMENTS), "--output", str(out), "--limit", "4", "--turns", "2", "--evaluate",
                          "--gllm", str(gllm), "--model", "m", "--base-url", r2s_server.url)
    assert result.returncode == 0, result.stderr
    saved = datasets.load_from_disk(str(out))
    assert len(saved) == 4 and saved["r2s_error"] == [None] * 4 and saved["eval_avg"][0] is not None
    assert "rows: 4, failed: 0" in result.stdout
    assert "dialogue types: Question-Answer: 4, Question-Question: 4" in result.stdout
    assert "Find spans found in the document: 8 of 12 (67%)" in result.stdout
    assert "evaluation means: INFO 4.00 (n=4)" in result.stdout and "CR 60.00 (n=4)" in result.stdout
    lines = [json.loads(line) for line in gllm.read_text().splitlines()]
    assert len(lines) == 4 and lines[0]["messages"][2]["content"].startswith("User: question 1\nDialogue Type: Question-Answer")
    planned = [json.loads(line) for line in (tmp_path / "gllm.planned.jsonl").read_text().splitlines()]
    assert len(planned) == 4 and planned[0]["messages"][2]["content"].endswith(lines[0]["messages"][2]["content"])
    assert planned[0]["messages"][2]["content"].startswith(saved[0]["r2s_flow"].strip())
