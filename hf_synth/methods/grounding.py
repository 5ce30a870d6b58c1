"""Checks of a dialogue against its document: is a Find span really in the document, and how much of
the document does the dialogue cover. Deterministic, language-agnostic (CJK text has no spaces, so
it is compared by characters)."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

FUZZY_THRESHOLD = 90.0  # rapidfuzz partial ratio (0–100): tolerates punctuation, case and a changed word
COVERED_SHARE = 0.5     # a sentence is covered when half of its content units appear in the dialogue

_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"


@dataclass
class Span:
    """A Find span and the result of looking for it in the document."""

    text: str
    grounded: bool
    match: str | None     # "exact", "fuzzy", or None when not found
    score: float          # 100 for an exact match, else the best fuzzy alignment
    passage: str | None   # the (normalized) document text it matched


def normalize(text: str) -> str:
    """Compatibility forms (full-width → ASCII), one kind of quote, case folded, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[“”„«»「」『』]", '"', re.sub(r"[‘’‚]", "'", text))
    return re.sub(r"\s+", " ", text).casefold().strip()


def ground(span: str, document: str) -> Span:
    """Look for `span` in `document`: exactly (after `normalize`), else by fuzzy alignment."""
    needle, haystack = normalize(span), normalize(document)
    if needle and needle in haystack:
        return Span(span, True, "exact", 100.0, needle)
    if not needle:
        return Span(span, False, None, 0.0, None)
    found = fuzz.partial_ratio_alignment(needle, haystack)
    if found is not None and found.score >= FUZZY_THRESHOLD:
        return Span(span, True, "fuzzy", round(found.score, 1), haystack[found.dest_start:found.dest_end])
    return Span(span, False, None, round(found.score, 1) if found else 0.0, None)


def sentences(text: str) -> list[str]:
    """Sentences, split after . ! ? (followed by a space) and after 。！？ (CJK needs no space), and at line breaks."""
    parts = re.split(r"(?<=[.!?])\s+|(?<=[。！？])|\n+", text)
    return [p.strip() for p in parts if p and p.strip()]


def content_units(text: str) -> set[str]:
    """Words of four or more letters, and pairs of adjacent CJK characters."""
    text = normalize(text)
    words = {w for w in re.findall(rf"[^\W\d_{_CJK}]{{4,}}", text)}
    cjk = re.findall(rf"[{_CJK}]+", text)
    return words | {run[i:i + 2] for run in cjk for i in range(len(run) - 1)}


def coverage(document: str, texts: list[str]) -> float | None:
    """Percent of the document's sentences covered by `texts` (the replies and Find spans): a sentence
    is covered when at least half of its content units occur in them. None for a document with no
    content units."""
    said = set().union(*(content_units(t) for t in texts)) if texts else set()
    counted = covered = 0
    for sentence in sentences(document):
        units = content_units(sentence)
        if units:
            counted += 1
            covered += len(units & said) >= COVERED_SHARE * len(units)
    return round(100.0 * covered / counted, 2) if counted else None
