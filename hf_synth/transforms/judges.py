"""LLM judges as `Dataset.map` transforms: quality ratings, pairwise comparison, difficulty labels.
They run on the same runner as the methods (cache, retries, concurrency) and add prefixed columns."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..conversations import normalize
from ..errors import InputError
from ..method import Method, Option, Recorded
from ..methods import coevol_prompts, difficulty, judge, quality
from ..methods.coevol import Sample
from ..protocol import Protocol, require_text
from .base import MapTransform

RESPONSE_COLUMNS = ("output", "response")
# Where conversations are found when `messages_column` is not given, first match wins.
CONVERSATION_COLUMNS = ("review_messages", "r2s_messages", "coevol_messages", "messages", "conversations")


def find_column(transform: str, column_names: list[str], given: str | None, candidates: tuple[str, ...],
                option: str) -> str:
    """`given` if present, else the first of `candidates` present; else an `InputError` saying how to name it."""
    found = given if given is not None else next((c for c in candidates if c in column_names), None)
    if found not in column_names:
        looked_for = repr(given) if given is not None else " or ".join(map(repr, candidates))
        raise InputError(f"{transform} found no column {looked_for} among {column_names}: pass {option}= to name yours.")
    return found


SAMPLE_OPTIONS = (Option("instruction_column", "instruction", "the instruction column"),
                  Option("input_column", "input", "the optional input (context) column"))


class _SingleTurnJudge(MapTransform):
    """Judges of Alpaca-style rows: an instruction, an optional input, and response column(s)."""

    def _sample_columns(self, column_names: list[str]) -> list[str]:
        name = type(self).__name__
        columns = [find_column(name, column_names, self.instruction_column, (), "instruction_column")]
        return columns + ([self.input_column] if self.input_column in column_names else [])


class QualityTransform(_SingleTurnJudge):
    """AlpaGasus-style rating of each (instruction, input, response) from 0 to 5: adds `quality_score`
    (None when the reply held no score), `quality_judgment`, `quality_error`, `quality_usage`.
    The response column defaults to `output` or `response`; rate evolved responses with
    `response_column="coevol_output"`."""

    method = Method(name="quality rating", prefix="quality",
                    options=(*SAMPLE_OPTIONS, Option("response_column", None, "default: output or response", type=str)),
                    agents=("quality",), recorded=(Recorded("quality", "quality_score", lambda value: [value]),))
    method_modules = (quality,)

    def _response(self, column_names) -> str:
        return find_column(type(self).__name__, column_names, self.response_column, RESPONSE_COLUMNS, "response_column")

    def input_columns(self, column_names: list[str]) -> list[str]:
        return self._sample_columns(column_names) + [self._response(column_names)]

    def protocol(self, row: dict) -> Protocol:
        # `row` holds exactly its batch's `input_columns`, so the response column is found among them
        response = row[self._response(list(row))]
        return (yield from quality.rate(row[self.instruction_column], row.get(self.input_column), response))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"score": pa.float64(), "judgment": pa.string()}

    def output_values(self, result: quality.Rating) -> dict[str, Any]:
        return {"score": result.score, "judgment": result.judgment}


class PairwiseJudgeTransform(_SingleTurnJudge):
    """CoEvol's position-swapped pairwise judge (Table 9) over two response columns, `a_column`
    (default `output` or `response`) and `b_column` (default `coevol_output`): adds `pairwise_winner`
    ("a", "b", "tie", or None when a judgment could not be parsed), `pairwise_verdicts` (the replies,
    (a, b) order then (b, a)), `pairwise_parsed`, `pairwise_score_a`, `pairwise_score_b` (Eq. 4),
    `pairwise_error`, `pairwise_usage`. Identical responses are a tie, with no call."""

    method = Method(name="pairwise judge", prefix="pairwise",
                    options=(*SAMPLE_OPTIONS, Option("a_column", None, "default: output or response", type=str),
                             Option("b_column", "coevol_output", "the other response")),
                    agents=("judge",), recorded=(Recorded("judge", "pairwise_parsed", lambda parsed: list(parsed or [])),))
    method_modules = (judge, coevol_prompts)

    def _pair(self, column_names) -> tuple[str, str]:
        name = type(self).__name__
        return (find_column(name, column_names, self.a_column, RESPONSE_COLUMNS, "a_column"),
                find_column(name, column_names, self.b_column, (), "b_column"))

    def input_columns(self, column_names: list[str]) -> list[str]:
        return self._sample_columns(column_names) + list(self._pair(column_names))

    def protocol(self, row: dict) -> Protocol:
        a_column, b_column = self._pair(list(row))  # `row` holds exactly its batch's `input_columns`
        a = require_text(f"response {a_column!r}", row[a_column])
        b = require_text(f"response {b_column!r}", row[b_column])
        sample = Sample(require_text("instruction", row[self.instruction_column]),
                        require_text("input", row.get(self.input_column) or "", allow_empty=True))
        return (yield from judge.judge_pair(sample.task, sample.request, a, b))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"winner": pa.string(), "verdicts": pa.list_(pa.string()), "parsed": pa.list_(pa.string()),
                "score_a": pa.float64(), "score_b": pa.float64()}

    def output_values(self, result: judge.Pairwise) -> dict[str, Any]:
        return {"winner": result.winner, "verdicts": result.verdicts, "parsed": result.parsed,
                "score_a": result.score_a, "score_b": result.score_b}


class DifficultyTransform(MapTransform):
    """Adds `difficulty_labels` ("easy", "medium", "hard" or None per user turn, in order),
    `difficulty_judgments` (the judge's replies), `difficulty_error`, `difficulty_usage`.

    >>> rated = grown.map(DifficultyTransform(LLM(model="gpt-4o")), batched=True)
    >>> hf_synth.analysis.difficulty_by_round(rated)
    """

    method = Method(name="difficulty rating", prefix="difficulty",
                    options=(Option("messages_column", None, "the conversation column", type=str),),
                    agents=("difficulty",),
                    recorded=(Recorded("difficulty", "difficulty_labels", lambda labels: list(labels or [])),))
    method_modules = (difficulty,)

    def input_columns(self, column_names: list[str]) -> list[str]:
        return [find_column(type(self).__name__, column_names, self.messages_column, CONVERSATION_COLUMNS,
                            "messages_column")]

    def protocol(self, row: dict) -> Protocol:
        return (yield from difficulty.rate(normalize(next(iter(row.values())))))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"labels": pa.list_(pa.string()), "judgments": pa.list_(pa.string())}

    def output_values(self, result: difficulty.Ratings) -> dict[str, Any]:
        return {"labels": result.labels, "judgments": result.judgments}
