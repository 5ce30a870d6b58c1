"""`CoEvolTransform`: CoEvol as a `Dataset.map` transform."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import pyarrow as pa

from ..errors import InputError
from ..llm.config import LLM
from ..methods import coevol, coevol_prompts, judge
from ..protocol import Protocol
from .base import MESSAGES, MapTransform, record_type

ROUND = record_type(coevol.Round)


class CoEvolTransform(MapTransform):
    """CoEvol over instruction/input/response rows or multi-turn conversations.

    >>> out = ds.map(CoEvolTransform(llm=LLM(model="gpt-4o-mini"), max_rounds=3), batched=True)

    Adds `coevol_output` (or `coevol_messages` for conversations), `coevol_rounds` (accepted edits;
    a list per optimized assistant turn for conversations), `coevol_trace`, `coevol_error`,
    `coevol_usage`.
    """

    prefix = "coevol"
    method_modules = (coevol, coevol_prompts, judge)
    sampling = coevol.SAMPLING
    RESPONSE_COLUMNS = ("output", "response")
    CONVERSATION_COLUMNS = ("messages", "conversations")

    def __init__(self, llm: LLM | None = None, *, max_rounds: int = coevol.MAX_ROUNDS, mode: str = "full",
                 max_turns: int | None = None, max_optimize_tokens: int | None = coevol.MAX_OPTIMIZE_TOKENS,
                 instruction_column: str = "instruction",
                 input_column: str = "input", response_column: str | None = None,
                 messages_column: str | None = None, llms: Mapping[str, LLM] | None = None,
                 cache: bool | str = True):
        """`mode` is one of the ablations of the paper's Table 3: "edit", "advise_without_response",
        "advise", "debate" or "full" (default). `max_turns` limits how many assistant turns of a
        conversation are optimized; without it, a conversation is optimized turn by turn until it
        reaches `max_optimize_tokens` tokens (the authors' rule and value; counted with the embedded
        model's vocabulary; None: every turn). Agents, for `llms`: positive, critical, advisor,
        editor, judge."""
        if mode not in coevol.MODES:
            raise ValueError(f"mode={mode!r} is not one of {', '.join(coevol.MODES)}")
        if max_rounds < 1:
            raise ValueError(f"max_rounds={max_rounds} must be at least 1")
        super().__init__(llm, llms=llms, cache=cache)
        self.max_rounds = max_rounds
        self.mode = mode
        self.max_turns = max_turns
        self.max_optimize_tokens = max_optimize_tokens
        self.instruction_column = instruction_column
        self.input_column = input_column
        self.response_column = response_column
        self.messages_column = messages_column

    def options(self) -> dict[str, Any]:
        return {"max_rounds": self.max_rounds, "mode": self.mode, "max_turns": self.max_turns,
                "max_optimize_tokens": self.max_optimize_tokens,
                "instruction_column": self.instruction_column, "input_column": self.input_column,
                "response_column": self.response_column, "messages_column": self.messages_column}

    def _conversation_column(self, column_names) -> str | None:
        if self.messages_column:
            return self.messages_column if self.messages_column in column_names else None
        if self.instruction_column in column_names:
            return None
        return next((c for c in self.CONVERSATION_COLUMNS if c in column_names), None)

    def _response_column(self, column_names) -> str | None:
        return self.response_column or next((c for c in self.RESPONSE_COLUMNS if c in column_names), None)

    def input_columns(self, column_names: list[str]) -> list[str]:
        conversation = self._conversation_column(column_names)
        if conversation:
            return [conversation]
        response = self._response_column(column_names)
        missing = [name for name, present in ((self.instruction_column, self.instruction_column in column_names),
                                              (self.response_column or "output", response in column_names))
                   if not present]
        if missing or (self.messages_column and self.messages_column not in column_names):
            raise InputError(
                f"CoEvolTransform found no column {' or '.join(map(repr, missing or [self.messages_column]))} "
                f"among {column_names}: pass instruction_column=, response_column= (and input_column=) to name "
                "yours, or give multi-turn data a 'messages' or 'conversations' column (messages_column=).")
        return [self.instruction_column, response] + ([self.input_column] if self.input_column in column_names else [])

    def protocol(self, row: dict) -> Protocol:
        # `row` holds exactly the `input_columns` of its batch: they say which kind of data it is
        conversation = self._conversation_column(list(row))
        if conversation:
            return self._conversation_protocol(row[conversation])
        response = row[self._response_column(list(row))]
        sample = coevol.Sample(instruction=row[self.instruction_column], input=row.get(self.input_column) or "",
                               response=response if response is not None else "")
        return coevol.evolve(sample, max_rounds=self.max_rounds, mode=self.mode)

    def _conversation_protocol(self, turns) -> Protocol:
        from ..conversations import normalize
        from ..tokens import token_counter

        messages = normalize(turns)
        return (yield from coevol.evolve_conversation(messages, max_rounds=self.max_rounds, mode=self.mode,
                                                      max_turns=self.max_turns, max_tokens=self.max_optimize_tokens,
                                                      count_tokens=token_counter()))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        if self._conversation_column(column_names):
            return {"messages": MESSAGES, "rounds": pa.list_(pa.int64()), "trace": pa.list_(pa.list_(ROUND))}
        return {"output": pa.string(), "rounds": pa.int64(), "trace": pa.list_(ROUND)}

    def output_values(self, result) -> dict[str, Any]:
        if isinstance(result, coevol.ConversationEvolution):
            return {"messages": result.messages, "rounds": result.rounds,
                    "trace": [[dataclasses.asdict(r) for r in turn] for turn in result.trace]}
        return {"output": result.response, "rounds": result.rounds,
                "trace": [dataclasses.asdict(r) for r in result.trace]}
