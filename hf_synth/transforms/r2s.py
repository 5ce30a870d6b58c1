"""`R2STransform` (documents → dialogues) and `DialogueEvalTransform` (the paper's nine metrics)."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..conversations import normalize
from ..filters import Predicate, error_column
from ..method import Filter, Method, Option, Recorded, Step
from ..methods import dialogue_eval, grounding, r2s, r2s_prompts
from ..protocol import Protocol
from .base import MESSAGES, MapTransform, as_plain, record_type
from .judges import CONVERSATION_COLUMNS, find_column

SPAN = record_type(grounding.Span)
TURN = pa.struct([("type", pa.string()), ("user", pa.string()), ("search", pa.list_(pa.string())),
                  ("find", pa.list_(SPAN)), ("assistant", pa.string())])


R2S = Method(
    name="R2S", prefix="r2s", command="r2s",
    summary="turn raw documents into knowledge-grounded dialogues (R2S, Chain of Dialogue)",
    options=(
        Option("turns", r2s.TURNS, "user/assistant turns per dialogue"),
        Option("strategy", "cod", "cod: the Chain of Dialogue; direct, cot: the paper's baselines; gllm: a generator "
               "fine-tuned on gllm_pairs (name it with --model)", choices=r2s.STRATEGIES),
        Option("text_column", "text", "the document column"),
        Option("max_document_chars", r2s.MAX_DOCUMENT_CHARS,
               "longer documents are cut at a sentence end, with a note in r2s_note")),
    agents=("planner", "questioner", "answerer", "generator"),
    card="r2s.md", card_tag="r2s", task_categories=("text-generation", "question-answering"), marker="r2s_cod",
    unparsed=((r"the questioner's reply held no 'User:' line", "questioner"),
              (r"the generator's reply held no 'User:'", "generator")),
    report="hf_synth.analysis.r2s:report_section", outcome="hf_synth.analysis.r2s:outcome_lines",
    steps=(Step("--evaluate", "also score every dialogue on the paper's nine metrics (eval_* columns) and print the "
                "means", transform="hf_synth.transforms.r2s:DialogueEvalTransform",
                options=("text_column", "max_document_chars"), after="hf_synth.analysis.r2s:print_evaluation"),
           Step("--gllm", "also write (document → annotated dialogue) pairs to train a generator model",
                metavar="FILE.jsonl", after="hf_synth.export:write_gllm_pairs")),
    filters=(Filter("grounded", "hf_synth.transforms.r2s:Grounded", "dialogues whose Find spans were found",
                    options=(Option("min_share", 1.0, "for grounded: share of Find spans found"),)),),
    title=lambda t: f"R2S ({t.strategy}, {t.turns} turns)")


class R2STransform(MapTransform):
    """R2S over raw documents (the `text` column by default).

    >>> out = docs.map(R2STransform(LLM(model="gpt-4o-mini")), batched=True)

    Adds `r2s_messages` (the SFT conversation: `turns` user/assistant turns, annotations stripped),
    `r2s_cod` (per turn: the dialogue type, user utterance, search phrases, Find spans each with its
    grounding result — `grounded`, `match` exact/fuzzy, `score`, the document `passage` — and the
    reply), `r2s_flow` (the logic flow planned before the first turn), `r2s_note` (e.g. the document
    was truncated), `r2s_error` and `r2s_usage`.

    `strategy` is "cod" (the method: the flow, then two requests per turn; agents "planner",
    "questioner" and "answerer"), a baseline of the paper, "direct" or "cot" (one request per document,
    agent "generator"), or "gllm": one request per document to a generator fine-tuned on
    `hf_synth.export.gllm_pairs` (Section 4.3), sampled at the LLM's temperature, whose annotated reply
    is parsed and grounded like the chain's.
    Documents longer than `max_document_chars` are cut at a sentence end and the row gets a note.
    """

    method = R2S
    method_modules = (r2s, r2s_prompts, grounding)

    def check(self) -> None:
        if self.turns < 1:
            raise ValueError(f"turns={self.turns} must be at least 1")
        if self.strategy not in r2s.STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r}: choose one of {', '.join(r2s.STRATEGIES)}")
        if self.max_document_chars < 1:
            raise ValueError(f"max_document_chars={self.max_document_chars} must be positive")

    def input_columns(self, column_names: list[str]) -> list[str]:
        return [find_column(type(self).__name__, column_names, self.text_column, (), "text_column")]

    def protocol(self, row: dict) -> Protocol:
        return (yield from r2s.generate(row[self.text_column], turns=self.turns, strategy=self.strategy,
                                        max_document_chars=self.max_document_chars))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"messages": MESSAGES, "cod": pa.list_(TURN), "flow": pa.string(), "note": pa.string()}

    def output_values(self, result: r2s.Dialogue) -> dict[str, Any]:
        return {"messages": result.messages, "cod": [as_plain(t) for t in result.turns],
                "flow": result.flow, "note": result.note}


class DialogueEvalTransform(MapTransform):
    """The nine metrics of R2S (Section 3.2) for dialogues about documents, by an LLM judge.

    Adds `eval_info`, `eval_ud`, `eval_uf`, `eval_fd`, `eval_fl` (1–5, averaged over turns),
    `eval_cs`, `eval_co`, `eval_ia` (1–5, whole dialogue), `eval_cr` (the judge's coverage rate,
    percent), `eval_avg` (the paper's Avg.), `eval_coverage` (deterministic coverage, percent),
    `eval_turns` (the turn scores per turn), `eval_judgment`, `eval_error`, `eval_usage`.
    A score the judge did not give in a readable form is None, and so is `eval_avg` then.

    The dialogue column defaults to the first of review_messages, r2s_messages, coevol_messages,
    messages, conversations; beside `r2s_messages`, the grounded Find spans of `r2s_cod` count
    toward `eval_coverage` with the replies.
    """

    method = Method(
        name="R2S evaluation", prefix="eval",
        options=(Option("text_column", "text", "the document column"),
                 Option("messages_column", None, "the dialogue column", type=str),
                 Option("max_document_chars", r2s.MAX_DOCUMENT_CHARS, "longer documents are cut at a sentence end")),
        agents=("evaluator",), recorded=(Recorded("evaluator", "eval_avg", lambda value: [value]),))
    method_modules = (dialogue_eval, r2s_prompts, grounding)

    def _messages(self, column_names) -> str:
        return find_column(type(self).__name__, column_names, self.messages_column, CONVERSATION_COLUMNS,
                           "messages_column")

    def input_columns(self, column_names: list[str]) -> list[str]:
        messages = self._messages(column_names)
        columns = [messages, find_column(type(self).__name__, column_names, self.text_column, (), "text_column")]
        return columns + (["r2s_cod"] if messages == "r2s_messages" and "r2s_cod" in column_names else [])

    def protocol(self, row: dict) -> Protocol:
        messages = row[self._messages(list(row))]  # `row` holds exactly its batch's `input_columns`
        evidence = [span["text"] for turn in row.get("r2s_cod") or [] for span in turn["find"] if span["grounded"]]
        return (yield from dialogue_eval.evaluate(row[self.text_column], normalize(messages), evidence,
                                                  self.max_document_chars))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        scores = {metric: pa.float64() for metric in dialogue_eval.SCORES}
        turn = pa.struct([(metric, pa.float64()) for metric in dialogue_eval.TURN_METRICS])
        return scores | {"cr": pa.float64(), "avg": pa.float64(), "coverage": pa.float64(),
                         "turns": pa.list_(turn), "judgment": pa.string()}

    def output_values(self, result: dialogue_eval.Evaluation) -> dict[str, Any]:
        return result.scores | {"cr": result.cr, "avg": result.average, "coverage": result.coverage,
                                "turns": result.turns, "judgment": result.judgment}


class Grounded(Predicate):
    """R2S dialogues whose Find spans were found in the document: all of them (`min_share=1.0`) or at
    least a share. Reads `r2s_cod` (per turn, `find`: spans with a boolean `grounded`); a dialogue
    without any span, or a failed row, is not grounded."""

    def __init__(self, min_share: float = 1.0):
        if not 0 <= min_share <= 1:
            raise ValueError(f"min_share={min_share} must lie between 0 and 1")
        self.min_share = min_share

    def columns(self, column_names):
        return [error_column("r2s", column_names), "r2s_cod"]

    def keep(self, row):
        if row["r2s_error"] is not None or not row["r2s_cod"]:
            return False
        spans = [span["grounded"] for turn in row["r2s_cod"] for span in turn.get("find") or []]
        return bool(spans) and sum(spans) / len(spans) >= self.min_share
