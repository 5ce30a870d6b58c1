"""ReviewInstruct: a seed instruction grown into a multi-turn conversation by Ask → Respond → Review
(Wu et al., 2025, "Review-Instruct: A Review-Driven Multi-Turn Conversations Generation Method for
Large Language Models"). The paper is available to us as its abstract only; the algorithm followed
here is spelled out in `docs/review_instruct.md`.

Roles: a Candidate answers, several Reviewers criticise the answer, a Chairman asks the next question.
Sans-I/O: `grow` is a generator that yields chat requests and receives the replies.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import review_instruct_prompts as prompts
from ..conversations import transcript
from ..protocol import CallFailed, Chat, Protocol, RowError, assistant, require_text, system, user
from ..shapes import Choice, Line, Shape, Text

ROUNDS = 3          # user turns per conversation, the seed included
NUM_REVIEWERS = 3
TEMPERATURE = 0.1   # the authors' sampling temperature
MAX_TOKENS = 8192   # the authors' output budget (main.py): long answers to hard follow-ups are not cut
WORD_LIMIT = 300    # every reply within 300 words (the authors' action prompts, utils/prompts.py)
DIRECTIONS = ("chairman", "majority")  # who decides depth or breadth: the authors' way, or ours


@dataclass
class Round:
    """One round of the conversation, as recorded in `review_trace`."""

    instruction: str                                   # the user turn of this round
    answer: str = ""                                   # the Candidate's answer
    reviews: list[str] = field(default_factory=list)   # one per Reviewer, in reviewer order
    verdicts: list[str | None] = field(default_factory=list)  # direction="majority": "sufficient", "insufficient" or None
    direction: str | None = None                       # "depth" or "breadth": where the next question went
    reasoning: str | None = None                       # the Chairman's reason for it
    next_instruction: str | None = None                # the Chairman's question (None in the last round)


@dataclass
class Conversation:
    messages: list[dict]
    trace: list[Round]


def seed_instruction(instruction, input=None) -> str:
    """The first user turn from an Alpaca-style seed: the instruction, then its input if any."""
    require_text("instruction", instruction)
    if input is not None:
        require_text("input", input, allow_empty=True)
    return f"{instruction.strip()}\n\n{input.strip()}" if input and input.strip() else instruction.strip()


def grow(instruction: str, *, rounds: int = ROUNDS,
         perspectives: tuple[str, ...] = prompts.PERSPECTIVES[:NUM_REVIEWERS], direction: str = "chairman",
         word_limit: int | None = WORD_LIMIT) -> Protocol:
    """Grow `instruction` into a conversation of `rounds` answered user turns; returns a `Conversation`.

    Each round: Respond (the Candidate answers, seeing the conversation so far); then, unless it is
    the last round, Review (one Reviewer per perspective, in parallel, criticising the answer; none
    when `perspectives` is empty) and Ask (the Chairman reads every review and writes the next
    question). `direction="chairman"` lets the Chairman infer depth or breadth from the reviews (the
    authors' way); `"majority"` has each review end with a verdict line and dictates the direction of
    the majority. Every reply is asked to stay within `word_limit` words (None: no limit).
    """
    messages, trace = [user(instruction)], []
    for number in range(1, rounds + 1):
        try:
            trace.append((yield from _round(messages, number, number == rounds, perspectives, direction, word_limit)))
        except CallFailed as failed:  # say which round: the analysis counts failures per round
            raise CallFailed(f"round {number}: {failed}", failed.blame) from None
    return Conversation(messages, trace)


def _round(messages: list[dict], number: int, last: bool, perspectives, direction: str,
           word_limit: int | None) -> Protocol:
    """One Respond (→ Review → Ask) round; appends the answer (and the next question) to `messages`."""
    round_ = Round(instruction=messages[-1]["content"])
    limit = prompts.CANDIDATE_WORD_LIMIT.format(words=word_limit) if word_limit else ""
    round_.answer = (yield Chat("candidate", [system(prompts.CANDIDATE_ROLE + limit), *messages])).strip()
    if not round_.answer:
        raise RowError(f"the Candidate's answer in round {number} is empty")
    messages.append(assistant(round_.answer))
    if last:
        return round_
    limit = prompts.WORD_LIMIT.format(words=word_limit) if word_limit else ""
    if perspectives:  # Review
        round_.reviews = list((yield [_reviewer(i, p, messages, direction, limit) for i, p in enumerate(perspectives, 1)]))
        if direction == "majority":
            round_.verdicts = [parse_verdict(review) for review in round_.reviews]
    # Ask
    prescribed = majority_direction(round_.verdicts) if direction == "majority" else None
    reply = yield _chairman(messages, perspectives, round_.reviews, direction, prescribed, limit)
    chosen, round_.reasoning, question = parse_chairman(reply)
    round_.direction = (prescribed or chosen) if perspectives else None
    if not question:
        raise RowError(f"the Chairman wrote no next question in round {number}")
    round_.next_instruction = question
    messages.append(user(question))
    return round_


def _reviewer(number: int, perspective: str, messages: list[dict], direction: str, limit: str) -> Chat:
    prompt = prompts.REVIEW.format(conversation=_render(messages), limit=limit,
                                   verdict=prompts.VERDICT if direction == "majority" else "")
    return Chat(f"reviewer_{number}", [system(prompts.REVIEWER_ROLE.format(perspective=perspective)), user(prompt)],
                shape=REVIEW_WITH_VERDICT if direction == "majority" else None)


def _chairman(messages: list[dict], perspectives, reviews: list[str], direction: str, prescribed: str | None,
              limit: str) -> Chat:
    if not perspectives:
        guidance, shown = prompts.DIRECTION_WITHOUT_REVIEWS, ""
        reply_format, shape = prompts.REPLY_QUESTION_ONLY, CHAIRMAN_QUESTION_ONLY
    else:
        if direction == "majority":
            guidance = prompts.DIRECTION_BY_MAJORITY[prescribed] if prescribed else prompts.DIRECTION_SPLIT
        else:
            guidance = prompts.DIRECTION_FROM_REVIEWS
        entries = "\n".join(prompts.REVIEW_ENTRY.format(number=i, perspective=p, review=r.strip())
                            for i, (p, r) in enumerate(zip(perspectives, reviews), 1))
        shown = prompts.REVIEWS.format(reviews=entries)
        reply_format, shape = prompts.REPLY_WITH_DIRECTION, CHAIRMAN_WITH_DIRECTION
    questions = "\n".join(f"- {m['content']}" for m in messages if m["role"] == "user")
    prompt = prompts.CHAIRMAN.format(conversation=_render(messages), reviews=shown, direction=guidance,
                                     earlier_questions=questions, reply_format=reply_format, limit=limit)
    return Chat("chairman", [system(prompts.CHAIRMAN_ROLE), user(prompt)], shape=shape)


def _render(messages: list[dict]) -> str:
    return prompts.CONVERSATION.format(turns=transcript(messages))


# What a reviewer writes with direction="majority" (prompts.VERDICT), and what `parse_verdict` reads
REVIEW_WITH_VERDICT = Shape("review", Text("review"), "\nVerdict: ", Choice("verdict", ["sufficient", "insufficient"]))

_VERDICT = re.compile(r"verdict\W*(insufficient|not sufficient|sufficient)", re.IGNORECASE)


def parse_verdict(review: str) -> str | None:
    """"sufficient" or "insufficient" from the review's last "Verdict:" line, else None."""
    found = _VERDICT.findall(review or "")
    if not found:
        return None
    return "sufficient" if found[-1].lower() == "sufficient" else "insufficient"


def majority_direction(verdicts: list[str | None]) -> str | None:
    """Breadth when most reviews are positive, depth when most find the answer insufficient;
    None (the Chairman decides) when neither side has a majority of the parsed verdicts."""
    positive = verdicts.count("sufficient")
    negative = verdicts.count("insufficient")
    if positive > negative:
        return "breadth"
    if negative > positive:
        return "depth"
    return None


# What the Chairman is asked to write (prompts.REPLY_WITH_DIRECTION, REPLY_QUESTION_ONLY), and what
# `parse_chairman` reads
CHAIRMAN_WITH_DIRECTION = Shape("chairman", "Question: ", Line("question"), "\nDirection: ",
                                Choice("direction", ["depth", "breadth"]), "\nReasoning: ", Line("reasoning"))
CHAIRMAN_QUESTION_ONLY = Shape("chairman_question", "Question: ", Line("question"))

_FIELD = re.compile(r"^\W*(direction|reasoning|question)\W*:[\s*_]*", re.IGNORECASE | re.MULTILINE)


def parse_chairman(reply: str) -> tuple[str | None, str | None, str]:
    """(direction, reasoning, question) from the Chairman's reply. Without a "Question:" field, the
    question is whatever the reply holds besides the other fields."""
    fields: dict[str, str] = {}
    marks = list(_FIELD.finditer(reply or ""))
    for mark, following in zip(marks, marks[1:] + [None]):
        end = following.start() if following else len(reply)
        fields.setdefault(mark.group(1).lower(), reply[mark.end():end].strip())
    if "question" in fields:
        question = fields["question"]
    else:  # an unlabelled question: before the fields, or on the last line of the last one
        question = (reply[:marks[0].start()] if marks else reply or "").strip()
        if not question and marks:
            lines = reply[marks[-1].end():].strip().splitlines()
            question = lines[-1] if len(lines) > 1 else ""
    direction = (fields.get("direction") or "").lower()
    direction = next((d for d in ("depth", "breadth") if d in direction and "or" not in direction.split()), None)
    question = question.strip().strip('"').strip()
    if question.startswith("<") and question.endswith(">"):  # the format's placeholder, echoed
        question = ""
    return direction, fields.get("reasoning") or None, question
