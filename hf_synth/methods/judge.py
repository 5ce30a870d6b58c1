"""CoEvol's position-swapped pairwise judge (Section 2.2, Eq. 4, Table 9), reusable by any method.

The judge names the better of two responses on its first line: ``<assistant 1>``, ``<assistant 2>``
or ``<equal>``. It is asked twice, with the two responses in both orders, against position bias.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import coevol_prompts as prompts
from ..protocol import Chat, Protocol, system, user
from ..shapes import Choice, Shape, Text

# What the judge is asked to write (Table 9), and what `parse_verdict` reads
SHAPE = Shape("pairwise_judgment", Choice("verdict", ["<assistant 1>", "<assistant 2>", "<equal>"]), "\n",
              Text("explanation"))

_LABEL = re.compile(r"assistant\s*([12])(?!\d)|(equal)", re.IGNORECASE)
_PREFIX = re.compile(r"^\W*output\s*:", re.IGNORECASE)


def parse_verdict(text: str | None) -> str | None:
    """``"1"``, ``"2"`` or ``"equal"`` from the first non-empty line of a judgment, else None.

    Tolerates case, spacing, missing brackets, markdown and a leading "Output:"; "assistant 10" is
    not "assistant 1"; a line naming two different verdicts is ambiguous and unparsable. A reply cut
    at max_tokens is read like any other, as the authors' `parse_jdg` reads it: a label written before
    the cut is the judge's verdict.
    """
    if not text:
        return None
    first_line = next((line for line in text.strip().splitlines() if line.strip()), "")
    first_line = _PREFIX.sub("", first_line.strip())
    found = {number or "equal" for number, equal in _LABEL.findall(first_line)}
    return found.pop() if len(found) == 1 else None


@dataclass(frozen=True)
class Comparison:
    """Scores of Eq. 4 for the previous (r) and the edited (r') response, averaged over the two
    judgments — the authors' `merge_jdg_res`: when one judgment cannot be parsed, the other decides
    alone; when neither can, there are no scores (None) and the previous response stays."""

    verdicts: tuple[str | None, str | None]  # parsed, in the forward (r, r') and reverse (r', r) orders
    score_previous: float | None
    score_edited: float | None

    @property
    def edited_wins(self) -> bool:
        if self.score_edited is None:
            return False
        return self.score_edited > self.score_previous  # strictly: a tie keeps the previous response


def _eq4(verdict: str, previous_label: str) -> tuple[int, int]:
    """s(r), s(r') for one judgment: 1 for the better response or for both on a tie (Eq. 4)."""
    if verdict == "equal":
        return 1, 1
    return (1, 0) if verdict == previous_label else (0, 1)


def compare(forward: str | None, reverse: str | None) -> Comparison:
    """Combine the judgment with r as assistant 1 (`forward`) and with r' as assistant 1 (`reverse`)."""
    verdicts = (parse_verdict(forward), parse_verdict(reverse))
    scores = [_eq4(verdict, label) for verdict, label in zip(verdicts, ("1", "2")) if verdict is not None]
    if not scores:  # nothing was read: no score would be the judge's
        return Comparison(verdicts, None, None)
    return Comparison(verdicts, sum(s[0] for s in scores) / len(scores), sum(s[1] for s in scores) / len(scores))


def judge_chats(task: str, request: str, previous: str, edited: str) -> list[Chat]:
    """The two judge requests of Table 9: (r, r') and, in reverse order, (r', r)."""
    def ask(first, second):
        prompt = prompts.JUDGE.format(task=task, request=request, first=first, second=second)
        # whole=False: the verdict is the first line; the explanation after it may be cut
        return Chat("judge", [system(prompts.JUDGE_ROLE), user(prompt)], whole=False, shape=SHAPE)

    return [ask(previous, edited), ask(edited, previous)]


@dataclass
class Pairwise:
    """The position-swapped judgment of two responses a and b, as a reusable evaluation."""

    winner: str | None               # "a", "b", "tie", or None when a judgment could not be parsed
    verdicts: list[str]              # the judge's replies: (a, b) order, then (b, a)
    parsed: list[str | None]         # "1", "2", "equal" or None for each reply
    score_a: float | None = None     # Eq. 4 scores, averaged over the two orders
    score_b: float | None = None


def judge_pair(task: str, request: str, a: str, b: str) -> Protocol:
    """Which of responses `a` and `b` better completes the request (Table 9, both orders). Identical
    responses are a tie without asking. Unlike CoEvol's acceptance rule, which counts an unparsable
    judgment for the previous response, a neutral comparison leaves the winner undecided (None)."""
    if a.strip() == b.strip():
        return Pairwise("tie", [], [], 1.0, 1.0)
    forward, reverse = yield judge_chats(task, request, a, b)
    comparison = compare(forward, reverse)   # with a as the "previous" response: forward is (a, b)
    if None in comparison.verdicts:
        return Pairwise(None, [forward, reverse], list(comparison.verdicts))
    score_a, score_b = comparison.score_previous, comparison.score_edited
    winner = "b" if score_b > score_a else "a" if score_a > score_b else "tie"
    return Pairwise(winner, [forward, reverse], list(comparison.verdicts), score_a, score_b)
