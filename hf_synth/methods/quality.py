"""An AlpaGasus-style quality rating (Chen et al., 2024, "AlpaGasus: Training a Better Alpaca with
Fewer Data"; the selection baseline of CoEvol's Table 1): an LLM rates an (instruction, input,
response) sample from 0 to 5 for accuracy and helpfulness, the score on its first line. AlpaGasus kept
the samples rated at least 4.5. The wording of the prompt is ours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..protocol import Chat, Protocol, require_text, system, user
from ..shapes import Choice, Shape, Text, numbers

THRESHOLD = 4.5   # AlpaGasus's selection threshold
SCALE = (0.0, 5.0)

ROLE = "You are a strict, impartial reviewer of training data for AI assistants."

PROMPT = """Rate the response below for how accurately and helpfully it completes the instruction \
(and its input, if one is given).

### Instruction:
{instruction}
{input}
### Response:
{response}

Give a score from 0 to 5, where 5 means an accurate, complete and helpful response and 0 a useless or \
wrong one; half points are allowed. Write the score alone on the first line, then explain your rating \
on the following lines, without bias towards length or style."""

INPUT = "\n### Input:\n{input}\n"

# What the rater is asked to write, and what `parse_score` reads
SHAPE = Shape("quality_rating", Choice("score", numbers(0, 5, 0.5)), "\n", Text("explanation"))

_NUMBER = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)")
_LABELLED = re.compile(r"score\W*(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass
class Rating:
    score: float | None     # None when the reply held no score within the scale
    judgment: str


def parse_score(judgment: str | None) -> float | None:
    """The first number on the first non-empty line ("4.5", "Score: 4", "**5**", "4/5"), else a
    number labelled "score" anywhere; None if there is none or it lies outside 0–5. A reply cut at
    max_tokens is read when its first line is complete (the explanation after it may be cut)."""
    text = judgment or ""
    if getattr(judgment, "finish_reason", None) == "length" and "\n" not in text.strip():
        return None  # cut inside its first line: "4" may have been "4.5"
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    found = _NUMBER.search(first_line) or _LABELLED.search(text)
    if not found:
        return None
    score = float(found.group(1))
    return score if SCALE[0] <= score <= SCALE[1] else None


def rate(instruction, input, response) -> Protocol:
    """One rating request; returns a `Rating`."""
    require_text("instruction", instruction)
    require_text("response", response)
    context = INPUT.format(input=input) if isinstance(input, str) and input.strip() else ""
    judgment = yield Chat("judge", [system(ROLE), user(PROMPT.format(instruction=instruction, input=context,
                                                                         response=response))],
                        whole=False, shape=SHAPE)  # the score is the first line; the explanation may be cut
    return Rating(parse_score(judgment), judgment)
