"""`DifficultyTransform`: label each user turn of a conversation easy / medium / hard with an LLM."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..conversations import normalize
from ..errors import InputError
from ..llm.config import LLM
from ..methods import difficulty
from ..protocol import Protocol
from .base import MapTransform

# Where conversations are found when `messages_column` is not given, first match wins.
CONVERSATION_COLUMNS = ("review_messages", "r2s_messages", "coevol_messages", "messages", "conversations")


class DifficultyTransform(MapTransform):
    """Adds `difficulty_labels` ("easy", "medium", "hard" or None per user turn, in order),
    `difficulty_judgments` (the judge's replies), `difficulty_error`, `difficulty_usage`.

    >>> rated = grown.map(DifficultyTransform(LLM(model="gpt-4o")), batched=True)
    >>> hf_synth.analysis.difficulty_by_round(rated)
    """

    prefix = "difficulty"
    method_modules = (difficulty,)

    def __init__(self, llm: LLM | None = None, *, messages_column: str | None = None, cache: bool | str = True):
        super().__init__(llm, cache=cache)
        self.messages_column = messages_column

    def options(self) -> dict[str, Any]:
        return {"messages_column": self.messages_column}

    def input_columns(self, column_names: list[str]) -> list[str]:
        column = self.messages_column or next((c for c in CONVERSATION_COLUMNS if c in column_names), None)
        if column not in column_names:
            raise InputError(f"DifficultyTransform found no conversation column ({self.messages_column!r} or one of "
                             f"{', '.join(CONVERSATION_COLUMNS)}) among {column_names}: pass messages_column=.")
        return [column]

    def protocol(self, row: dict) -> Protocol:
        return (yield from difficulty.rate(normalize(next(iter(row.values())))))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"labels": pa.list_(pa.string()), "judgments": pa.list_(pa.string())}

    def output_values(self, result: difficulty.Ratings) -> dict[str, Any]:
        return {"labels": result.labels, "judgments": result.judgments}
