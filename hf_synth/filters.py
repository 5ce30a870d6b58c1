"""`Dataset.filter` predicates: keep the rows worth training on.

Each is a picklable callable that works as `ds.filter(p)` and as `ds.filter(p, batched=True)`.
A method's own filters (CoEvol's `Evolved`, R2S's `Grounded`) live with its declaration and are
found here by name too (`hf_synth.filters.Evolved`).
Plain predicates read the columns the transforms wrote; LLM-judged filters (`QualityFilter`,
`WinFilter`) run a judge transform on the shared runner, so a re-run is answered by the request cache,
and the same scores are available as map columns (`QualityTransform`, `PairwiseJudgeTransform`).
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from .errors import InputError
from .llm.config import LLM
from .methods import quality
from .tokens import token_counter
from .transforms.base import MapTransform, is_batch
from .transforms.judges import CONVERSATION_COLUMNS, PairwiseJudgeTransform, QualityTransform, find_column

logger = logging.getLogger(__name__)


class Predicate:
    """A row test on some columns. Subclasses give `columns` (the first one tells a batch from a row:
    it holds text, a number or a conversation per row) and `keep(row)`."""

    def columns(self, column_names: list[str]) -> list[str]:
        raise NotImplementedError

    def keep(self, row: dict) -> bool:
        raise NotImplementedError

    def __call__(self, examples):
        columns = self.columns(list(examples.keys()))
        if not is_batch(examples, columns[0]):
            return self.keep({c: examples[c] for c in columns})
        return [self.keep(dict(zip(columns, values))) for values in zip(*(examples[c] for c in columns))]

    def __repr__(self) -> str:
        options = (f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({', '.join(options)})"


def __getattr__(name: str):
    """A method's own filter, by its class name (`Evolved`, `Grounded`, ...), from the declarations."""
    from .method import declared, resolve

    for method in declared():
        for offered in method.filters:
            predicate = resolve(offered.predicate)
            if predicate.__name__ == name:
                return predicate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def error_column(prefix: str, column_names: list[str]) -> str:
    column = f"{prefix}_error"
    if column not in column_names:
        raise InputError(f"no column {column!r} among {column_names}: filter the output of the transform that "
                         f"writes {prefix}_* columns")
    return column


class Succeeded(Predicate):
    """Rows whose `<prefix>_error` is None. Without `prefix`, every `<prefix>_error` column that has
    its `<prefix>_usage` beside it (every transform of this library writes both)."""

    def __init__(self, prefix: str | None = None):
        self.prefix = prefix

    def columns(self, column_names):
        if self.prefix is not None:
            return [error_column(self.prefix, column_names)]
        found = [c for c in column_names if c.endswith("_error") and c[:-len("_error")] + "_usage" in column_names]
        if not found:
            raise InputError(f"Succeeded() found no <prefix>_error column with its <prefix>_usage among "
                             f"{column_names}: is this the output of a hf_synth transform?")
        return found

    def keep(self, row):
        return all(error is None for error in row.values())


class ConversationShape(Predicate):
    """Conversations of `min_turns` to `max_turns` user turns, with no empty message (`non_empty`),
    of at most `max_tokens` tokens in all (counted with `tokenizer`, default the embedded model's).
    The column defaults to the first of review_messages, r2s_messages, coevol_messages, messages,
    conversations (ShareGPT `value`s are read too)."""

    def __init__(self, min_turns: int | None = None, max_turns: int | None = None, non_empty: bool = True,
                 max_tokens: int | None = None, tokenizer: Any = None, column: str | None = None):
        self.min_turns, self.max_turns, self.non_empty = min_turns, max_turns, non_empty
        self.max_tokens, self.tokenizer, self.column = max_tokens, tokenizer, column
        self._count: Callable[[str], int] | None = None

    def __getstate__(self):
        return {k: v for k, v in vars(self).items() if k != "_count"}  # the counter is rebuilt per process

    def __setstate__(self, state):
        vars(self).update(state, _count=None)

    def columns(self, column_names):
        return [find_column("ConversationShape", column_names, self.column, CONVERSATION_COLUMNS, "column")]

    def keep(self, row):
        turns = next(iter(row.values()))
        if not turns:
            return False
        texts = [turn.get("content", turn.get("value")) for turn in turns]
        roles = [turn.get("role", turn.get("from")) for turn in turns]
        questions = sum(role in ("user", "human") for role in roles)
        if self.min_turns is not None and questions < self.min_turns:
            return False
        if self.max_turns is not None and questions > self.max_turns:
            return False
        if self.non_empty and not all(isinstance(t, str) and t.strip() for t in texts):
            return False
        if self.max_tokens is not None:
            if self._count is None:
                self._count = token_counter(self.tokenizer)
            return sum(self._count(t or "") for t in texts) <= self.max_tokens
        return True


class JudgedFilter:
    """Keeps the rows an LLM judge approves. A row the judge could not decide — its call failed, or
    its reply could not be parsed — is kept or dropped by `on_failure` ("keep" by default), and the
    count is logged as a warning. A row whose input the judge cannot read (e.g. no response) is dropped."""

    def __init__(self, judge: MapTransform, on_failure: str):
        if on_failure not in ("keep", "drop"):
            raise ValueError(f"on_failure={on_failure!r} must be 'keep' or 'drop'")
        self.judge = judge
        self.on_failure = on_failure

    def approves(self, result) -> bool | None:
        raise NotImplementedError

    def __call__(self, examples):
        outcomes, batched = self.judge.outcomes(examples)
        mask, undecided, unreadable = [], [], []
        for outcome in outcomes:
            if outcome.error and not outcome.call_failed:
                unreadable.append(outcome.error)
                mask.append(False)
                continue
            verdict = None if outcome.error else self.approves(outcome.result)
            if verdict is None:
                undecided.append(outcome.error or "the judgment could not be parsed")
                verdict = self.on_failure == "keep"
            mask.append(verdict)
        name = type(self).__name__
        if undecided:
            logger.warning("%s: %d of %d rows could not be judged and were %s (on_failure=%r); first reason: %s",
                           name, len(undecided), len(outcomes), "kept" if self.on_failure == "keep" else "dropped",
                           self.on_failure, undecided[0])
        if unreadable:
            logger.warning("%s: dropped %d of %d rows the judge could not read; first reason: %s",
                           name, len(unreadable), len(outcomes), unreadable[0])
        return mask if batched else mask[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(judge={self.judge!r}, on_failure={self.on_failure!r})"


class QualityFilter(JudgedFilter):
    """AlpaGasus-style selection: keep rows whose 0–5 rating is at least `threshold` (AlpaGasus: 4.5).
    The rating is `QualityTransform`'s; map it to inspect the scores (the same requests, cached)."""

    def __init__(self, llm: LLM | None = None, *, threshold: float = quality.THRESHOLD, on_failure: str = "keep",
                 response_column: str | None = None, instruction_column: str = "instruction",
                 input_column: str = "input", cache: bool | str = True):
        super().__init__(QualityTransform(llm, response_column=response_column, instruction_column=instruction_column,
                                          input_column=input_column, cache=cache), on_failure)
        self.threshold = threshold

    def approves(self, rating: quality.Rating) -> bool | None:
        return None if rating.score is None else rating.score >= self.threshold


class WinFilter(JudgedFilter):
    """Keep rows whose evolved response (`b_column`, default `coevol_output`) beats the original
    (`a_column`, default `output` or `response`) under CoEvol's position-swapped pairwise judge;
    a tie (or an unchanged response) is not a win."""

    def __init__(self, llm: LLM | None = None, *, on_failure: str = "keep", a_column: str | None = None,
                 b_column: str = "coevol_output", instruction_column: str = "instruction",
                 input_column: str = "input", cache: bool | str = True):
        super().__init__(PairwiseJudgeTransform(llm, a_column=a_column, b_column=b_column,
                                                instruction_column=instruction_column, input_column=input_column,
                                                cache=cache), on_failure)

    def approves(self, comparison) -> bool | None:
        return None if comparison.winner is None else comparison.winner == "b"
