"""R2S's evaluation of a document-grounded dialogue (Section 3.2): an LLM judge scores Info per user
turn, UD, UF, FD and FL per assistant turn (averaged over turns), CS, CO and IA for the whole
dialogue, each 1–5, and the coverage rate CR in percent. Beside the judge's CR, a deterministic
coverage from `grounding.coverage`. Sans-I/O: `evaluate` yields one chat request."""
from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import mean

from . import r2s_prompts as prompts
from ..protocol import Chat, Protocol, RowError, require_text, system, user
from ..shapes import Choice, Shape, numbers
from .grounding import coverage
from .r2s import MAX_DOCUMENT_CHARS, fit

TURN_METRICS = ("info", "ud", "uf", "fd", "fl")   # Info per user turn; the other four per reply
DIALOGUE_METRICS = ("cs", "co", "ia")
SCORES = TURN_METRICS + DIALOGUE_METRICS          # the eight 1–5 scores of Tables 2–4


@dataclass
class Evaluation:
    turns: list[dict[str, float | None]]   # the five turn scores of each turn
    scores: dict[str, float | None]        # the eight scores, turn scores averaged over turns
    cr: float | None                       # the judge's coverage rate, percent
    coverage: float | None                 # the deterministic coverage, percent
    average: float | None                  # the Avg. column of Tables 2–4
    judgment: str


def evaluate(document, messages: list[dict], evidence: list[str] = (),
             max_document_chars: int = MAX_DOCUMENT_CHARS) -> Protocol:
    """Score the user/assistant `messages` against `document`; `evidence` (e.g. the grounded Find
    spans) counts toward the deterministic coverage with the replies. Returns an `Evaluation`."""
    require_text("document", document)
    document, _ = fit(document, max_document_chars)
    pairs = _pairs(messages)
    dialogue = "\n\n".join(f"Turn {n}\nUser: {q}\nAssistant: {a}" for n, (q, a) in enumerate(pairs, 1))
    judgment = yield Chat("evaluator", [system(prompts.EVALUATOR_ROLE),
                                        user(prompts.EVALUATE.format(document=document, dialogue=dialogue))],
                       shape=scores_shape(len(pairs)))
    turns, whole, cr = parse_scores(judgment, len(pairs))
    scores = {m: _mean(t[m] for t in turns) for m in TURN_METRICS} | whole
    return Evaluation(turns, scores, cr, dialogue_coverage(document, messages, evidence, max_document_chars),
                      average(scores, cr), judgment)


def dialogue_coverage(document: str, messages: list[dict], evidence=(), max_document_chars: int = MAX_DOCUMENT_CHARS):
    """The deterministic coverage of the (fitted) document by the dialogue's replies and `evidence`."""
    document, _ = fit(document, max_document_chars)
    return coverage(document, [a for _, a in _pairs(messages)] + list(evidence))


def _pairs(messages: list[dict]) -> list[tuple[str, str]]:
    spoken = [m for m in messages if m["role"] in ("user", "assistant")]
    pairs = [(q["content"], a["content"]) for q, a in zip(spoken[0::2], spoken[1::2])
             if q["role"] == "user" and a["role"] == "assistant"]
    if not pairs:
        raise RowError("the dialogue has no user turn followed by an assistant turn")
    return pairs


def average(scores: dict[str, float | None], cr: float | None) -> float | None:
    """(sum of the eight scores + CR × 5/100) / 9, which reproduces the Avg. column of the paper's
    Tables 2–4; None when any of the nine is missing."""
    if cr is None or any(scores.get(m) is None for m in SCORES):
        return None
    return (sum(scores[m] for m in SCORES) + cr * 5 / 100) / 9


_LABELS = {"info": "Info", "ud": "UD", "uf": "UF", "fd": "FD", "fl": "FL", "cs": "CS", "co": "CO", "ia": "IA"}


def scores_shape(num_turns: int) -> Shape:
    """What the evaluator is asked to write (prompts.EVALUATE), and what `parse_scores` reads."""
    def scores(prefix: str, metrics) -> list:
        return [part for i, m in enumerate(metrics)
                for part in (f"{' ' * (i > 0)}{_LABELS[m]}=", Choice(f"{prefix}{m}", numbers(1, 5, 0.5)))]

    turns = [part for n in range(1, num_turns + 1) for part in (f"Turn {n}: ", *scores(f"turn_{n}_", TURN_METRICS), "\n")]
    return Shape("dialogue_scores", *turns, "Dialogue: ", *scores("", DIALOGUE_METRICS), " CR=",
                 Choice("cr", numbers(0, 100)), "%")


_NUMBER = r"(\d+(?:\.\d+)?)"
_TURN_SCORE = re.compile(rf"\b({'|'.join(TURN_METRICS)})\b\W{{0,3}}{_NUMBER}", re.IGNORECASE)
_DIALOGUE_SCORE = re.compile(rf"\b({'|'.join(DIALOGUE_METRICS)})\b\W{{0,3}}{_NUMBER}", re.IGNORECASE)
_CR = re.compile(rf"\bcr\b\W{{0,3}}{_NUMBER}", re.IGNORECASE)
_TURN_NUMBER = re.compile(r"\bturn\s*(\d+)", re.IGNORECASE)


def parse_scores(judgment: str, num_turns: int):
    """(per-turn scores, dialogue scores, CR) from the judge's reply. A line with turn scores belongs
    to the turn it names ("Turn 2: …"), else to the next turn; a score outside 1–5 (CR outside
    0–100) or absent is None, never a guess."""
    turns = [dict.fromkeys(TURN_METRICS) for _ in range(num_turns)]
    whole: dict[str, float | None] = dict.fromkeys(DIALOGUE_METRICS)
    cr, following = None, 0
    for line in (judgment or "").splitlines():
        found = _TURN_SCORE.findall(line)
        if found:
            named = _TURN_NUMBER.search(line)
            index = int(named.group(1)) - 1 if named else following
            following = index + 1
            if 0 <= index < num_turns:
                turns[index].update({m.lower(): _score(v, 1, 5) for m, v in found})
        for metric, value in _DIALOGUE_SCORE.findall(line):
            whole[metric.lower()] = _score(value, 1, 5)
        rate = _CR.search(line)
        if rate:
            cr = _score(rate.group(1), 0, 100)
    return turns, whole, cr


def _score(text: str, low: float, high: float) -> float | None:
    value = float(text)
    return value if low <= value <= high else None


def _mean(values) -> float | None:
    present = [v for v in values if v is not None]
    return mean(present) if present else None
