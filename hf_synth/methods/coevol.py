"""CoEvol: iterative debate → advise → edit → judge refinement of a response
(Li et al., 2024, "CoEvol: Constructing Better Responses for Instruction Finetuning through
Multi-Agent Cooperation", Section 2 and Algorithm 1).

Sans-I/O: `evolve` and `evolve_conversation` are generators that yield chat requests and receive
the replies; the runner (`hf_synth.transforms.runner`) sends them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from . import coevol_prompts as prompts
from .judge import compare, judge_chats
from ..protocol import CallFailed, Chat, Protocol, RowError, assistant, require_text, system, user

# Section 4.1, Table 3: the ablations, from the editor alone to the full framework.
MODES = ("edit", "advise_without_response", "advise", "debate", "full")
# The authors' scripts stop optimising a conversation at 8,192 tokens (max_optimize_len).
MAX_OPTIMIZE_TOKENS = 8192
MAX_ROUNDS = 3          # Section 3.1 and Appendix B: "the maximum number of iterations ... to 3"
CONTEXT_ROUNDS = 3      # Appendix B: "only retain the most recent 3 rounds of conversation"


@dataclass(frozen=True)
class Sample:
    """An IFT sample x: instruction, optional input, and the response r to improve (Section 2.1)."""

    instruction: str
    input: str = ""
    response: str = ""

    @property
    def task(self) -> str:
        return prompts.TASK_WITH_INPUT if self.input else prompts.TASK_WITHOUT_INPUT

    @property
    def request(self) -> str:
        template = prompts.REQUEST_WITH_INPUT if self.input else prompts.REQUEST_WITHOUT_INPUT
        return template.format(instruction=self.instruction, input=self.input)

    def render(self) -> str:
        """x̂: the sample filled into the template of Table 6."""
        template = prompts.SAMPLE_WITH_INPUT if self.input else prompts.SAMPLE_WITHOUT_INPUT
        return template.format(instruction=self.instruction, input=self.input, response=self.response)


@dataclass
class Round:
    """One pass through the pipeline, as recorded in `coevol_trace`."""

    positive: str | None = None        # g_pos^pred
    critical: str | None = None        # g_crt^pred
    positive_free: str | None = None   # g_pos^free
    critical_free: str | None = None   # g_crt^free
    suggestions: str | None = None     # h_adv
    edited: str | None = None          # r'
    verdicts: list[str] = field(default_factory=list)          # the judge's replies, forward then reverse
    parsed_verdicts: list[str | None] = field(default_factory=list)
    score_previous: float | None = None  # s(r), Eq. 4
    score_edited: float | None = None    # s(r')
    accepted: bool = False
    failure: str | None = None           # why the round ended without a verdict (a reply cut, filtered, refused)


@dataclass
class Evolution:
    response: str       # the final response
    rounds: int         # accepted edits
    trace: list[Round]


def evolve(sample: Sample, *, max_rounds: int = MAX_ROUNDS, mode: str = "full") -> Protocol:
    """Algorithm 1: evolve `sample.response` for up to `max_rounds` rounds; returns an `Evolution`.
    The ablation modes are single passes without a judge, as in Section 4.1."""
    _check(sample, mode)
    if mode != "full":
        return (yield from _single_pass(sample, mode))
    response, trace = sample.response, []
    for _ in range(max_rounds):
        current = replace(sample, response=response)  # each round starts with refreshed memories
        round_ = Round()
        trace.append(round_)
        try:
            yield from _round(current, round_)
        except CallFailed as failed:
            if failed.blame != "row" or not any(r.accepted for r in trace):
                # the endpoint's fault (running the row again recovers it), or no round finished: the
                # row has no result yet, and is marked with the reason
                raise
            # A reply this row cannot use (cut at max_tokens, filtered, refused) ends its rounds, as in
            # the authors' loop: the edits accepted so far are kept, and the trace says why it stopped.
            round_.failure = str(failed)
            break
        if not round_.accepted:
            break
        response = round_.edited
    return Evolution(response, sum(r.accepted for r in trace), trace)


def _round(sample: Sample, round_: Round) -> Protocol:
    """One round of Algorithm 1 — debate, advise, edit, judge — filling `round_` as it goes."""
    yield from _debate(sample, round_)
    round_.suggestions = yield _advisor_after_debate(sample, round_)
    round_.edited = _extract_response((yield _editor(sample, round_.suggestions)))
    forward, reverse = yield judge_chats(sample.task, sample.request, sample.response, round_.edited)
    comparison = compare(forward, reverse)
    round_.verdicts = [forward, reverse]
    round_.parsed_verdicts = list(comparison.verdicts)
    round_.score_previous, round_.score_edited = comparison.score_previous, comparison.score_edited
    round_.accepted = bool(round_.edited) and comparison.edited_wins  # s(r') > s(r)


def _debate(sample: Sample, round_: Round) -> Protocol:
    """The two-stage debate of Section 2.3, into `round_`; the debaters speak concurrently."""
    x = sample.render()
    positive = [system(prompts.POSITIVE_ROLE), user(prompts.POSITIVE_FIRST_ROUND.format(sample=x))]
    critical = [system(prompts.CRITICAL_ROLE), user(prompts.CRITICAL_FIRST_ROUND.format(sample=x))]
    # Round 1, predetermined positions (Eqs. 5-6).
    # debate arguments and advice are working notes: a note cut at max_tokens is still used (whole=False)
    pos_pred, crt_pred = yield [Chat("positive", positive, whole=False), Chat("critical", critical, whole=False)]
    round_.positive, round_.critical = pos_pred, crt_pred
    # Round 2, free debate and cross-evaluation: each judges the other's review, remembering its own (Eqs. 7-8).
    pos_free, crt_free = yield [
        Chat("positive", [*positive, assistant(pos_pred), user(prompts.SECOND_ROUND.format(other_review=crt_pred))],
             whole=False),
        Chat("critical", [*critical, assistant(crt_pred), user(prompts.SECOND_ROUND.format(other_review=pos_pred))],
             whole=False),
    ]
    round_.positive_free, round_.critical_free = pos_free, crt_free


def _advisor_after_debate(sample: Sample, debate: Round) -> Chat:
    """Eq. 9: at most 3 writing suggestions from the debate history G_dbt (Table 8)."""
    prompt = prompts.ADVISOR_AFTER_DEBATE.format(
        task=sample.task, sample=sample.render(), positive=debate.positive, critical=debate.critical,
        positive_free=debate.positive_free, critical_free=debate.critical_free)
    return Chat("advisor", [system(prompts.ADVISOR_ROLE), user(prompt)], whole=False)


def _editor(sample: Sample, suggestions: str | None, with_previous: bool = True) -> Chat:
    """Eq. 2: the editor rewrites the previous response from the suggestions (Table 8)."""
    if suggestions is None:
        prompt = prompts.EDITOR_ALONE.format(task=sample.task, request=sample.request)
    elif with_previous:
        prompt = prompts.EDITOR_WITH_PREVIOUS.format(suggestions=suggestions, previous=sample.response,
                                                     task=sample.task, request=sample.request)
    else:
        prompt = prompts.EDITOR_WITHOUT_PREVIOUS.format(suggestions=suggestions, task=sample.task,
                                                        request=sample.request)
    return Chat("editor", [system(prompts.EDITOR_ROLE), user(prompt)])


def _single_pass(sample: Sample, mode: str) -> Protocol:
    """The ablations of Table 3: one edit, adopted without a judge."""
    round_ = Round()
    if mode == "debate":
        yield from _debate(sample, round_)
        round_.suggestions = yield _advisor_after_debate(sample, round_)
    elif mode == "advise":
        prompt = prompts.ADVISOR_WITH_RESPONSE.format(task=sample.task, sample=sample.render())
        round_.suggestions = yield Chat("advisor", [system(prompts.ADVISOR_ROLE), user(prompt)], whole=False)
    elif mode == "advise_without_response":
        prompt = prompts.ADVISOR_WITHOUT_RESPONSE.format(task=sample.task, request=sample.request)
        round_.suggestions = yield Chat("advisor", [system(prompts.ADVISOR_ROLE), user(prompt)], whole=False)
    round_.edited = _extract_response((yield _editor(sample, round_.suggestions,
                                                     with_previous=mode != "advise_without_response")))
    round_.accepted = bool(round_.edited)
    return Evolution(round_.edited if round_.accepted else sample.response, int(round_.accepted), [round_])


def _extract_response(text: str) -> str:
    """r' from the editor's reply: drop a "### Response:" header the editor may have echoed."""
    text = text.strip()
    header = "### Response:"
    return text[len(header):].strip() if text.startswith(header) else text


def _check(sample: Sample, mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {', '.join(MODES)}")
    require_text("instruction", sample.instruction)
    require_text("input", sample.input, allow_empty=True)
    require_text("response", sample.response, allow_empty=True)
    if not sample.response.strip() and mode not in ("edit", "advise_without_response"):
        raise RowError(f"response is empty: mode {mode!r} improves an existing response "
                       "(modes 'edit' and 'advise_without_response' write one from the instruction)")


@dataclass
class ConversationEvolution:
    messages: list[dict]       # the conversation with its optimized assistant turns evolved
    rounds: list[int]          # accepted edits per optimized assistant turn
    trace: list[list[Round]]   # per optimized assistant turn


def evolve_conversation(messages: list[dict], *, max_rounds: int = MAX_ROUNDS, mode: str = "full",
                        max_turns: int | None = None, context_rounds: int = CONTEXT_ROUNDS,
                        max_tokens: int | None = None, count_tokens: Callable[[str], int] | None = None) -> Protocol:
    """Appendix B: evolve the assistant turns in order, each evolved answer replacing the original
    before the next turn; each turn is shown with at most `context_rounds` rounds of conversation
    (itself included). `max_turns` limits how many assistant turns are optimized; without it, the
    authors' adaptive rule stops once the conversation up to the turn just optimized reaches
    `max_tokens` tokens by `count_tokens` (`max_optimize_len` in `edit/scheduler.py`)."""
    messages = [dict(m) for m in messages]
    rounds, trace = [], []
    answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for index in answers[:max_turns]:
        sample = Sample(instruction=_instruction_in_context(messages, index, context_rounds),
                        response=messages[index]["content"])
        evolution = yield from evolve(sample, max_rounds=max_rounds, mode=mode)
        messages[index] = {"role": "assistant", "content": evolution.response}
        rounds.append(evolution.rounds)
        trace.append(evolution.trace)
        if max_turns is None and max_tokens and count_tokens is not None and \
                count_tokens(" ".join(m["content"] for m in messages[:index + 1] if m["role"] != "system")) >= max_tokens:
            break  # the rest of a long conversation is kept as it is
    return ConversationEvolution(messages, rounds, trace)


def _instruction_in_context(messages: list[dict], answer_index: int, context_rounds: int) -> str:
    """The user turn before `answer_index`, preceded by up to `context_rounds - 1` earlier rounds
    (a first turn is shown as is, so a one-turn conversation is evolved like an Alpaca sample)."""
    dialogue = [m for m in messages[:answer_index] if m["role"] != "system"]
    earlier = dialogue[:-1][-2 * (context_rounds - 1):] if context_rounds > 1 else []
    if not earlier:
        return dialogue[-1]["content"]
    history = "".join(prompts.CONVERSATION_TURN.format(user=q["content"], assistant=a["content"])
                      for q, a in zip(earlier[0::2], earlier[1::2]))
    return history + prompts.CONVERSATION_CURRENT.format(user=dialogue[-1]["content"])
