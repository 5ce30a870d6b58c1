"""An LLM judge that labels each user turn of a conversation easy, medium or hard — the measure
behind ReviewInstruct's claim that review-driven questions grow harder round by round.

The prompt is ours (the paper publishes none). Sans-I/O, like every method.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..conversations import transcript
from ..protocol import Chat, Protocol, system, user
from ..shapes import Choice, Shape, Text

LABELS = ("easy", "medium", "hard")

ROLE = "You rate how difficult user requests are for an AI assistant to answer well."

PROMPT = """Rate how difficult it is to answer the last user message of this conversation well.

[Conversation]
{conversation}
Labels:
easy: common knowledge or a simple, single-step task; a short answer suffices.
medium: needs some specialised knowledge, several steps, or a careful explanation.
hard: needs expert knowledge, multi-step reasoning, or a nuanced synthesis of several ideas.

Reply with the label alone on the first line (easy, medium or hard), then one sentence of reasons."""

# What the judge is asked to write, and what `parse_label` reads
SHAPE = Shape("difficulty", Choice("label", LABELS), "\n", Text("reasons"))

_LABEL = re.compile(r"\b(easy|medium|hard)\b", re.IGNORECASE)


@dataclass
class Ratings:
    labels: list[str | None]   # per user turn, in order; None when the judgment had no single label
    judgments: list[str]       # the judge's replies


def parse_label(judgment: str | None) -> str | None:
    """The one label named on the first non-empty line, else None (none, or several: ambiguous). A
    reply cut at max_tokens is read when its first line is complete: the reasons after it may be cut."""
    if getattr(judgment, "finish_reason", None) == "length" and "\n" not in judgment.strip():
        return None  # cut inside its first line
    first_line = next((line for line in (judgment or "").splitlines() if line.strip()), "")
    found = {label.lower() for label in _LABEL.findall(first_line)}
    return found.pop() if len(found) == 1 else None


def rate(messages: list[dict]) -> Protocol:
    """Rate every user turn, each seen with the conversation before it; the turns are judged in
    parallel. Returns `Ratings`."""
    turns = [i for i, m in enumerate(messages) if m["role"] == "user"]
    chats = [Chat("judge", [system(ROLE), user(PROMPT.format(conversation=transcript(messages[:i + 1])))],
                  whole=False, shape=SHAPE)  # the label is the first line; the reasons after it may be cut
             for i in turns]
    judgments = list((yield chats)) if chats else []
    return Ratings([parse_label(j) for j in judgments], judgments)
