"""`ReviewInstructTransform`: ReviewInstruct as a `Dataset.map` transform."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import pyarrow as pa

from ..errors import InputError
from ..llm.config import LLM
from ..method import Method, Option, Recorded, Step
from ..methods import review_instruct, review_instruct_prompts
from ..protocol import Protocol
from .base import MESSAGES, MapTransform, as_plain, record_type

ROUND = record_type(review_instruct.Round)


def _verdicts(trace) -> list:
    """The reviewers' parsed verdicts a row records (direction="majority"; None where not read)."""
    return [v for r in trace or [] for v in r.get("verdicts") or []]


REVIEW_INSTRUCT = Method(
    name="ReviewInstruct", prefix="review", command="review-instruct",
    summary="grow seed instructions into multi-turn conversations (ReviewInstruct)",
    options=(
        Option("rounds", review_instruct.ROUNDS, "user turns per conversation, the seed included"),
        Option("num_reviewers", None, f"number of reviewers (default {review_instruct.NUM_REVIEWERS}; 0 skips the "
               "Review stage)", type=int, flag="--reviewers", kept=False),
        Option("perspectives", None, "a reviewer's point of view, e.g. 'a security engineer'; repeat for each "
               "reviewer", type=str, flag="--perspective", many=True),
        Option("direction", "chairman", "who decides depth or breadth: the Chairman from the reviews (the authors' "
               "way), or the majority of the reviewers' verdict lines", choices=review_instruct.DIRECTIONS),
        Option("word_limit", review_instruct.WORD_LIMIT, "every reply within this many words (the authors' 300); "
               "0 for no limit", zero_means_none=True),
        Option("instruction_column", "instruction", "the instruction column"),
        Option("input_column", "input", "the optional input (context) column")),
    agents=("candidate", "reviewer", "chairman"),
    # the authors' temperature and output budget (main.py), for every agent
    sampling={"temperature": review_instruct.TEMPERATURE, "max_tokens": review_instruct.MAX_TOKENS},
    card="review_instruct.md", card_tag="review-instruct", marker="review_messages",
    recorded=(Recorded("reviewer", "review_trace", _verdicts),),
    unparsed=((r"the Chairman wrote no next question", "chairman"),),
    report="hf_synth.analysis.review_instruct:report_section",
    outcome="hf_synth.analysis.review_instruct:outcome_lines",
    steps=(Step("--difficulty", "also label every user turn easy/medium/hard with the LLM and print the share per "
                "round", transform="hf_synth.transforms.judges:DifficultyTransform",
                after="hf_synth.analysis.by_round:print_difficulty_by_round"),),
    title=lambda t: f"ReviewInstruct ({t.rounds} rounds, {t.num_reviewers} reviewers)")


class ReviewInstructTransform(MapTransform):
    """ReviewInstruct over seed instructions (Alpaca-style `instruction` and optional `input`).

    >>> out = ds.map(ReviewInstructTransform(llm=LLM(model="gpt-4o-mini")), batched=True)

    Adds `review_messages` (user/assistant alternating, `rounds` user turns, every one answered),
    `review_trace` (per round: the answer's reviews (and verdicts, with direction="majority"), the
    Chairman's direction and reasoning, the next instruction), `review_error` and `review_usage`.

    Agents, for `llms`: "candidate", "chairman", and "reviewer_1" … "reviewer_N"; "reviewer" gives
    every reviewer without its own entry the same LLM. Sampling fields an LLM leaves unset take the
    authors' values: temperature 0.1, max_tokens 8,192.
    """

    method = REVIEW_INSTRUCT
    method_modules = (review_instruct, review_instruct_prompts)

    def __init__(self, llm: LLM | None = None, *, num_reviewers: int | None = None,
                 perspectives: Sequence[str] | None = None, llms: Mapping[str, LLM] | None = None, **options):
        """`rounds` is the number of user turns (the seed included); `num_reviewers=0` skips the
        Review stage (the Ask-Respond ablation: the Chairman asks the next question without judging
        the answer). `perspectives` gives each reviewer its point of view (default: the first
        `num_reviewers` of `PERSPECTIVES`). `direction`: "chairman" (the authors' way: the Chairman
        infers depth or breadth from the reviews) or "majority" (reviews end with a verdict line and
        the majority sets the direction). `word_limit`: every reply within that many words (300, the
        authors'; None for no limit)."""
        builtin = review_instruct_prompts.PERSPECTIVES
        if perspectives is None:
            num_reviewers = review_instruct.NUM_REVIEWERS if num_reviewers is None else num_reviewers
            if not 0 <= num_reviewers <= len(builtin):
                raise ValueError(f"num_reviewers={num_reviewers}: the built-in perspectives serve 0 to "
                                 f"{len(builtin)} reviewers; pass perspectives=[...] with one text per reviewer")
            perspectives = builtin[:num_reviewers]
        elif num_reviewers is not None and num_reviewers != len(perspectives):
            raise ValueError(f"num_reviewers={num_reviewers} but {len(perspectives)} perspectives were given: "
                             "give one perspective per reviewer and leave num_reviewers out")
        if len(set(perspectives)) != len(perspectives):
            raise ValueError("perspectives must differ: identical reviewers give identical reviews")
        llms = dict(llms or {})
        shared_reviewer = llms.pop("reviewer", None)
        if shared_reviewer is not None:
            for number in range(1, len(perspectives) + 1):
                llms.setdefault(f"reviewer_{number}", shared_reviewer)
        super().__init__(llm, llms=llms, perspectives=tuple(perspectives), **options)

    def check(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds={self.rounds} must be at least 1")
        if self.direction not in review_instruct.DIRECTIONS:
            raise ValueError(f"direction={self.direction!r} is not one of {', '.join(review_instruct.DIRECTIONS)}")
        if self.word_limit is not None and self.word_limit < 1:
            raise ValueError(f"word_limit={self.word_limit} must be at least 1, or None for no limit")

    @property
    def num_reviewers(self) -> int:
        return len(self.perspectives)

    def input_columns(self, column_names: list[str]) -> list[str]:
        if self.instruction_column not in column_names:
            raise InputError(f"ReviewInstructTransform found no column {self.instruction_column!r} among "
                             f"{column_names}: pass instruction_column= (and input_column=) to name yours.")
        return [self.instruction_column] + ([self.input_column] if self.input_column in column_names else [])

    def protocol(self, row: dict) -> Protocol:
        instruction = review_instruct.seed_instruction(row[self.instruction_column], row.get(self.input_column))
        return (yield from review_instruct.grow(instruction, rounds=self.rounds, perspectives=self.perspectives,
                                                direction=self.direction, word_limit=self.word_limit))

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {"messages": MESSAGES, "trace": pa.list_(ROUND)}

    def output_values(self, result: review_instruct.Conversation) -> dict[str, Any]:
        return {"messages": result.messages, "trace": [as_plain(r) for r in result.trace]}
