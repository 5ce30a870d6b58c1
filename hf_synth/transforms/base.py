"""`Dataset.map` adapters: picklable callables that run a method over the rows of a batch.

They keep every input column and row and add `<prefix>_*` columns with explicit Arrow types (so a
first batch of all-None errors still writes), including `<prefix>_error` (None when the row
succeeded) and `<prefix>_usage`. Their fingerprint for `datasets`' cache is deterministic across
processes and depends only on what changes the output: method code and options, prompts, models and
sampling parameters — not the API key, concurrency, timeouts or retry counts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
from typing import Any, ClassVar, Mapping

import pyarrow as pa

from . import __version__
from .errors import InputError
from .llm import loop
from .llm.config import LLM
from .methods import coevol, coevol_prompts, judge
from .protocol import Protocol
from .runner import Runner, stats

logger = logging.getLogger(__name__)

USAGE = pa.struct([("calls", pa.int64()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64())])
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def _fingerprint_only(state):
    raise TypeError("this pickle is a dataset fingerprint of a hf_synth transform, not a transform")


def _register_fingerprint(cls) -> None:
    """Tell `datasets`' hashing pickler (only that one: workers still get the full object) to hash
    `fingerprint_state()` instead of the whole transform, the way it special-cases tokenizers."""
    try:
        from datasets.utils._dill import pklregister
    except ImportError:  # another datasets layout: it then hashes the full pickled state
        return

    @pklregister(cls)
    def _save(pickler, obj):
        pickler.save_reduce(_fingerprint_only, (obj.fingerprint_state(),), obj=obj)


class MapTransform:
    """Base class: a subclass says which columns it reads, the protocol for a row, and the
    columns it writes."""

    prefix: ClassVar[str]
    method_modules: ClassVar[tuple] = ()  # their source is part of the fingerprint

    def __init__(self, llm: LLM | None = None, *, llms: Mapping[str, LLM] | None = None,
                 cache: bool | str = True):
        """`llm` plays every agent (default: the embedded local model); `llms` gives some agents
        their own. `cache` is True (default folder), a folder, or False (no request cache)."""
        self.llm = llm if llm is not None else LLM()
        self.llms = dict(llms or {})
        self.cache = cache

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register_fingerprint(cls)

    # -- what a subclass provides
    def input_columns(self, column_names: list[str]) -> list[str]:
        raise NotImplementedError

    def protocol(self, row: dict) -> Protocol:
        raise NotImplementedError

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        raise NotImplementedError

    def output_values(self, result: Any) -> dict[str, Any]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- the adapter
    def fingerprint_state(self) -> dict[str, Any]:
        code = hashlib.sha256()
        for module in self.method_modules:
            code.update(inspect.getsource(module).encode())
        return {"transform": type(self).__qualname__, "hf_synth": __version__, "code": code.hexdigest(),
                "options": self.options(), "llm": self.llm.identity(),
                "llms": {agent: llm.identity() for agent, llm in sorted(self.llms.items())}}

    def __call__(self, examples):
        column_names = list(examples.keys())
        used = self.input_columns(column_names)
        batched = self._is_batch(examples, used[0])
        if batched:
            rows = [dict(zip(used, values)) for values in zip(*(examples[c] for c in used))]
        else:
            rows = [{c: examples[c] for c in used}]
        runner = Runner(self.llms, self.llm, self.cache)
        outcomes = loop.run(runner.run([self.protocol(row) for row in rows]))

        method_types = self.output_types(column_names)
        types = {f"{self.prefix}_{name}": t for name, t in method_types.items()}
        types[f"{self.prefix}_error"] = pa.string()
        types[f"{self.prefix}_usage"] = USAGE
        columns: dict[str, list] = {name: [] for name in types}
        for outcome in outcomes:
            values = {} if outcome.error else self.output_values(outcome.result)
            for name in method_types:
                columns[f"{self.prefix}_{name}"].append(values.get(name))
            columns[f"{self.prefix}_error"].append(outcome.error)
            columns[f"{self.prefix}_usage"].append(outcome.usage.as_dict())
        failed = sum(o.error is not None for o in outcomes)
        run = stats()
        logger.info("%s: %d rows, %d failed; this process sent %d requests, %d served from cache, %d retries",
                    type(self).__name__, len(rows), failed, run.sent, run.cached, run.retries)

        table = getattr(examples, "pa_table", None)  # the batch or row as Arrow, given by Dataset.map
        if table is not None:
            table = table.drop_columns([name for name in types if name in table.column_names])
            for name, values in columns.items():
                table = table.append_column(name, pa.array(values, type=types[name]))
            return table
        return columns if batched else {name: values[0] for name, values in columns.items()}

    @staticmethod
    def _is_batch(examples, column: str) -> bool:
        kind = type(examples).__name__
        if kind in ("LazyBatch", "LazyRow"):
            return kind == "LazyBatch"
        value = examples[column]  # a plain dict: a batch holds a list of values per column
        return isinstance(value, list) and (not value or not isinstance(value[0], dict))

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}(llm={self.llm!r}, {options})"


def _arrow_type(annotation: str) -> pa.DataType:
    return {"str | None": pa.string(), "list[str]": pa.list_(pa.string()),
            "list[str | None]": pa.list_(pa.string()), "float | None": pa.float64(), "bool": pa.bool_()}[annotation]


ROUND = pa.struct([(f.name, _arrow_type(f.type)) for f in dataclasses.fields(coevol.Round)])


class CoEvolTransform(MapTransform):
    """CoEvol over instruction/input/response rows or multi-turn conversations.

    >>> out = ds.map(CoEvolTransform(llm=LLM(model="gpt-4o-mini"), max_rounds=3), batched=True)

    Adds `coevol_output` (or `coevol_messages` for conversations), `coevol_rounds` (accepted edits;
    a list per optimized assistant turn for conversations), `coevol_trace`, `coevol_error`,
    `coevol_usage`.
    """

    prefix = "coevol"
    method_modules = (coevol, coevol_prompts, judge)
    RESPONSE_COLUMNS = ("output", "response")
    CONVERSATION_COLUMNS = ("messages", "conversations")

    def __init__(self, llm: LLM | None = None, *, max_rounds: int = coevol.MAX_ROUNDS, mode: str = "full",
                 max_turns: int | None = None, instruction_column: str = "instruction",
                 input_column: str = "input", response_column: str | None = None,
                 messages_column: str | None = None, llms: Mapping[str, LLM] | None = None,
                 cache: bool | str = True):
        """`mode` is one of the ablations of the paper's Table 3: "edit", "advise_without_response",
        "advise", "debate" or "full" (default). `max_turns` limits how many assistant turns of a
        conversation are optimized. Agents, for `llms`: positive, critical, advisor, editor, judge."""
        if mode not in coevol.MODES:
            raise ValueError(f"mode={mode!r} is not one of {', '.join(coevol.MODES)}")
        if max_rounds < 1:
            raise ValueError(f"max_rounds={max_rounds} must be at least 1")
        super().__init__(llm, llms=llms, cache=cache)
        self.max_rounds = max_rounds
        self.mode = mode
        self.max_turns = max_turns
        self.instruction_column = instruction_column
        self.input_column = input_column
        self.response_column = response_column
        self.messages_column = messages_column

    def options(self) -> dict[str, Any]:
        return {"max_rounds": self.max_rounds, "mode": self.mode, "max_turns": self.max_turns,
                "instruction_column": self.instruction_column, "input_column": self.input_column,
                "response_column": self.response_column, "messages_column": self.messages_column}

    def _conversation_column(self, column_names) -> str | None:
        if self.messages_column:
            return self.messages_column if self.messages_column in column_names else None
        if self.instruction_column in column_names:
            return None
        return next((c for c in self.CONVERSATION_COLUMNS if c in column_names), None)

    def input_columns(self, column_names: list[str]) -> list[str]:
        conversation = self._conversation_column(column_names)
        self._response = None
        if conversation:
            return [conversation]
        response = self.response_column or next((c for c in self.RESPONSE_COLUMNS if c in column_names), None)
        missing = [name for name, present in ((self.instruction_column, self.instruction_column in column_names),
                                              (self.response_column or "output", response in column_names))
                   if not present]
        if missing or (self.messages_column and self.messages_column not in column_names):
            raise InputError(
                f"CoEvolTransform found no column {' or '.join(map(repr, missing or [self.messages_column]))} "
                f"among {column_names}: pass instruction_column=, response_column= (and input_column=) to name "
                "yours, or give multi-turn data a 'messages' or 'conversations' column (messages_column=).")
        self._response = response
        return [self.instruction_column, response] + ([self.input_column] if self.input_column in column_names else [])

    def protocol(self, row: dict) -> Protocol:
        if self._response is None:
            return self._conversation_protocol(next(iter(row.values())))
        sample = coevol.Sample(instruction=row[self.instruction_column], input=row.get(self.input_column) or "",
                               response=row[self._response] if row[self._response] is not None else "")
        return coevol.evolve(sample, max_rounds=self.max_rounds, mode=self.mode)

    def _conversation_protocol(self, turns) -> Protocol:
        from .conversations import normalize

        messages = normalize(turns)
        return (yield from coevol.evolve_conversation(messages, max_rounds=self.max_rounds, mode=self.mode,
                                                      max_turns=self.max_turns))

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
