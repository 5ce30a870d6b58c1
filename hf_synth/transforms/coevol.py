"""`CoEvolTransform`: CoEvol as a `Dataset.map` transform."""
from __future__ import annotations

from typing import Any

import pyarrow as pa

from ..errors import InputError
from ..filters import Predicate, error_column
from ..method import Filter, Method, Option, Recorded
from ..methods import coevol, coevol_prompts, judge
from ..protocol import Protocol
from .base import MESSAGES, MapTransform, as_plain, record_type

ROUND = record_type(coevol.Round)


def _parsed_verdicts(trace) -> list:
    """The judge's parsed verdicts a row records (None where a verdict could not be read)."""
    rounds = [r for turn in trace for r in turn] if trace and isinstance(trace[0], list) else trace or []
    return [v for r in rounds for v in r.get("parsed_verdicts") or []]


COEVOL = Method(
    name="CoEvol", prefix="coevol", command="coevol",
    summary="improve responses with CoEvol (debate, advise, edit, judge)",
    options=(
        Option("max_rounds", coevol.MAX_ROUNDS, "debate-advise-edit-judge rounds at most (the paper's K)"),
        Option("mode", "full", "ablation of the paper's Table 3", choices=coevol.MODES),
        Option("max_turns", None, "optimize at most N assistant turns per conversation", type=int),
        Option("max_optimize_tokens", coevol.MAX_OPTIMIZE_TOKENS,
               "without --max-turns: stop optimizing a conversation once it reaches this many tokens (the authors' "
               "rule); 0 optimizes every turn", zero_means_none=True),
        Option("instruction_column", "instruction", "the instruction column"),
        Option("input_column", "input", "the optional input (context) column"),
        Option("response_column", None, "default: output or response", type=str),
        Option("messages_column", None, "multi-turn data (default: messages or conversations)", type=str)),
    agents=("positive", "critical", "advisor", "editor", "judge"),
    sampling={"temperature": 0.0, "top_p": 1.0, "max_tokens": 1000},  # Appendix B, for every agent
    card="coevol.md", card_tag="coevol", marker="coevol_rounds",
    recorded=(Recorded("judge", "coevol_trace", _parsed_verdicts),),
    report="hf_synth.analysis.coevol:report_section", outcome="hf_synth.analysis.coevol:outcome_lines",
    filters=(Filter("evolved", "hf_synth.transforms.coevol:Evolved", "rows CoEvol improved", options=(
        Option("min_rounds", 1, "for evolved: accepted CoEvol rounds"),
        Option("turns", "any", "for evolved, on conversations", choices=("any", "all")))),),
    title=lambda t: f"CoEvol ({t.mode}, up to {t.max_rounds} rounds)")


class CoEvolTransform(MapTransform):
    """CoEvol over instruction/input/response rows or multi-turn conversations.

    >>> out = ds.map(CoEvolTransform(llm=LLM(model="gpt-4o-mini"), max_rounds=3), batched=True)

    Adds `coevol_output` (or `coevol_messages` for conversations), `coevol_rounds` (accepted edits;
    a list per optimized assistant turn for conversations), `coevol_trace`, `coevol_error`,
    `coevol_usage`.

    `mode` is one of the ablations of the paper's Table 3: "edit", "advise_without_response",
    "advise", "debate" or "full" (default). `max_turns` limits how many assistant turns of a
    conversation are optimized; without it, a conversation is optimized turn by turn until it reaches
    `max_optimize_tokens` tokens (the authors' rule and value; counted with the embedded model's
    vocabulary; None: every turn). Agents, for `llms`: positive, critical, advisor, editor, judge.
    """

    method = COEVOL
    method_modules = (coevol, coevol_prompts, judge)
    RESPONSE_COLUMNS = ("output", "response")
    CONVERSATION_COLUMNS = ("messages", "conversations")

    def check(self) -> None:
        if self.mode not in coevol.MODES:
            raise ValueError(f"mode={self.mode!r} is not one of {', '.join(coevol.MODES)}")
        if self.max_rounds < 1:
            raise ValueError(f"max_rounds={self.max_rounds} must be at least 1")

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
                    "trace": [[as_plain(r) for r in turn] for turn in result.trace]}
        return {"output": result.response, "rounds": result.rounds,
                "trace": [as_plain(r) for r in result.trace]}


class Evolved(Predicate):
    """Rows CoEvol improved at least `min_rounds` times (`coevol_rounds >= k`). For conversations,
    `turns="any"` keeps a row when one optimized turn qualifies, `"all"` when every one does.
    Failed rows are not evolved."""

    def __init__(self, min_rounds: int = 1, turns: str = "any"):
        if turns not in ("any", "all"):
            raise ValueError(f"turns={turns!r} must be 'any' or 'all'")
        self.min_rounds = min_rounds
        self.turns = turns

    def columns(self, column_names):
        return [error_column("coevol", column_names), "coevol_rounds"]

    def keep(self, row):
        rounds = row["coevol_rounds"]
        if row["coevol_error"] is not None or rounds is None:
            return False
        if isinstance(rounds, int):
            return rounds >= self.min_rounds
        test = any if self.turns == "any" else all
        return bool(rounds) and test(r >= self.min_rounds for r in rounds)
