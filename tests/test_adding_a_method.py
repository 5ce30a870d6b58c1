"""A new method, declared in this one file, gets everything a built-in one has: a picklable transform
with a stable fingerprint, a command with help, a dataset card, a recipe that `reproduce` runs again,
a report section, the live status and the counts of unreadable replies. (docs/adding-a-method.md
walks through it.)"""
from __future__ import annotations

import pickle
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest
from command import hf_synth_cli
from fake_openai import FakeOpenAI

from hf_synth import LLM
from hf_synth.method import Method, Option, Recorded, by_prefix
from hf_synth.protocol import Chat, Protocol, require_text, system, user
from hf_synth.shapes import Choice, Shape, Text
from hf_synth.transforms import MapTransform

# -- the method: its prompts, its protocol, its declaration

REWRITER = "You rewrite answers in plain English for a general reader."
REWRITE = "Rewrite this answer to the question in plain English.\n\nQuestion: {instruction}\n\nAnswer: {response}"
JUDGE = "You compare two answers to a question."
COMPARE = ("Question: {instruction}\n\nAnswer A: {a}\n\nAnswer B: {b}\n\n"
           "Which answer is as correct and easier to read? Reply with A or B on the first line.")
VERDICT = Shape("plain verdict", Choice("verdict", ("A", "B")), "\n", Text("reason"))


@dataclass
class Plain:
    output: str             # the plain answer when the judge preferred it, else the original
    verdict: str | None     # "A" (the original), "B" (the rewrite), None when the reply could not be read
    rewritten: bool


def rewrite_plainly(instruction: str, response: str) -> Protocol:
    rewrite = yield Chat("rewriter", [system(REWRITER), user(REWRITE.format(instruction=instruction, response=response))])
    reply = yield Chat("judge", [system(JUDGE), user(COMPARE.format(instruction=instruction, a=response, b=rewrite))],
                       shape=VERDICT)
    verdict = reply.strip()[:1] if reply.strip()[:1] in ("A", "B") else None
    return Plain(output=rewrite if verdict == "B" else response, verdict=verdict, rewritten=verdict == "B")


class PlainEnglishTransform(MapTransform):
    method = Method(
        name="PlainEnglish", prefix="plain", command="plain-english",
        summary="rewrite responses in plain English, kept when a judge finds them as good",
        options=(Option("instruction_column", "instruction", "the question column"),
                 Option("response_column", "output", "the answer column")),
        inputs=("instruction_column", "response_column"), result=Plain,
        agents=("rewriter", "judge"), sampling={"temperature": 0.3, "max_tokens": 300},
        marker="plain_rewritten", recorded=(Recorded("judge", "plain_verdict", lambda verdict: [verdict]),))
    method_modules = (sys.modules[__name__],)

    def protocol(self, row: dict) -> Protocol:
        return rewrite_plainly(require_text("instruction", row[self.instruction_column]),
                               require_text("response", row[self.response_column]))


# -- what it gets

def replies(messages: list[dict]) -> str:
    if messages[0]["content"] == REWRITER:
        return "plainly: " + messages[-1]["content"].rsplit("Answer: ", 1)[1]
    return "B" if "tides" in messages[-1]["content"] else "no idea"  # the second row's verdict is unreadable


ROWS = datasets.Dataset.from_dict({"instruction": ["Why are there tides?", "Name a prime"],
                                   "output": ["Lunar gravitation induces oceanic bulges.", "7"]})


@pytest.fixture
def fake():
    with FakeOpenAI(replies) as server:
        yield server


def test_a_transform_with_the_methods_columns_sampling_and_a_stable_fingerprint(fake, tmp_path):
    llm = LLM(model="m", base_url=fake.url)
    transform = PlainEnglishTransform(llm)
    out = ROWS.map(transform, batched=True)
    assert out["plain_output"] == ["plainly: Lunar gravitation induces oceanic bulges.", "7"]
    assert out["plain_verdict"] == ["B", None] and out["plain_rewritten"] == [True, False]
    assert out["plain_error"] == [None, None] and [u["calls"] for u in out["plain_usage"]] == [2, 2]
    assert {(body["temperature"], body["max_tokens"]) for body in fake.requests} == {(0.3, 300)}  # the method's
    assert pickle.loads(pickle.dumps(transform)).options() == transform.options()
    code = ("import sys; sys.path.insert(0, {tests!r}); from test_adding_a_method import PlainEnglishTransform; "
            "from hf_synth import LLM; from datasets.fingerprint import Hasher; "
            "print(Hasher.hash(PlainEnglishTransform(LLM(model='m', base_url={url!r}))))")
    hashes = {subprocess.run([sys.executable, "-c", code.format(tests=str(Path(__file__).parent), url=fake.url)],
                             capture_output=True, text=True, check=True).stdout.strip() for _ in range(2)}
    assert len(hashes) == 1 and hashes != {""}
    assert PlainEnglishTransform(llm, response_column="answer").options() != transform.options()
    with pytest.raises(TypeError, match="unexpected option 'max_rounds'; its options: instruction_column"):
        PlainEnglishTransform(llm, max_rounds=3)


def cli(*args) -> tuple[int, str, str]:
    result = hf_synth_cli(*args)
    return result.returncode, result.stdout, result.stderr


def test_a_command_with_help_a_card_a_recipe_reproduce_a_report_and_the_counts(fake, tmp_path):
    from hf_synth.analysis import report
    from hf_synth.hub import build_card
    from hf_synth.replies import unreadable_replies

    code, out, _ = cli("plain-english", "--help")
    assert code == 0 and "--response-column" in out
    data = tmp_path / "rows.jsonl"
    ROWS.to_json(str(data))
    code, out, err = cli("plain-english", str(data), "--output", str(tmp_path / "out"), "--model", "m",
                         "--base-url", fake.url, "--response-column", "output")
    assert code == 0, err
    assert "rows: 2, failed: 0" in out and "PlainEnglish judge: 1 unreadable of 2" in out
    assert re.search(r"rows 2/2 \| requests 4 answered", err)                       # the live status
    made = datasets.load_from_disk(str(tmp_path / "out"))
    assert made["plain_output"][0].startswith("plainly:")
    counts = unreadable_replies(made).to_dict("records")
    assert counts == [{"method": "PlainEnglish", "agent": "judge", "unreadable": 1, "cut or empty": 0, "of": 2}]

    card = build_card(made, PlainEnglishTransform(LLM(model="m", base_url=fake.url, temperature=0.3, max_tokens=300)),
                      license="other", source=str(data)).content
    assert "PlainEnglish data" in card and "`PlainEnglishTransform`" in card and "test_adding_a_method.REWRITE" in card

    fake.requests.clear()
    code, out, err = cli("reproduce", str(tmp_path / "out"), "--output", str(tmp_path / "again"), "--base-url", fake.url)
    assert code == 0, err
    assert datasets.load_from_disk(str(tmp_path / "again"))["plain_output"] == made["plain_output"]
    assert fake.requests == []  # the request cache answered it all

    written = report(made, tmp_path / "analysis")
    assert written.methods == ["plain"] and "## PlainEnglish" in written.markdown
    assert by_prefix("plain").name == "PlainEnglish"


def test_the_command_reads_its_options_from_the_declaration():
    from hf_synth.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["plain-english"].format_help()
    assert "--response-column RESPONSE_COLUMN" in " ".join(help_text.split())
    assert "the answer column (default: output)" in " ".join(help_text.split())
    assert "(default: 0.3, the method's)" in " ".join(help_text.split())
