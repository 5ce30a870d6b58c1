"""Replies a method could not use, per method and agent: those the parser could not read (a verdict
without a label, a Chairman with no question, a questioner with no `User:` line, a score out of
scale) and those cut at `max_tokens`, filtered or empty. A small model drifts from the format; these
numbers say how much, so that a table of results is never read as the model's judgement when it was
the format that failed.

Counted from what a run wrote — traces and `<prefix>_error` — so it works on any saved dataset; the
CLI's summary, the analysis report and the dataset card show it.
"""
from __future__ import annotations

import re
from collections import Counter

import pandas as pd

ADVICE = ("Replies that could not be read or were cut leave rows marked, verdicts undecided or scores empty: "
          "a larger model, a higher max_tokens, or LLM(structured=...) where the endpoint constrains decoding help.")

# `<prefix>_error` texts that say which agent's reply was unusable
_UNUSABLE = re.compile(r"the (\w+)'s reply (was cut|was empty|was withheld)|the endpoint's content filter withheld the (\w+)'s")
_UNPARSED = [(re.compile(r"the Chairman wrote no next question"), "chairman"),
             (re.compile(r"the questioner's reply held no 'User:' line"), "questioner"),
             (re.compile(r"the generator's reply held no 'User:'"), "generator")]
_PREFIXES = {"coevol": "CoEvol", "review": "ReviewInstruct", "r2s": "R2S", "eval": "R2S evaluation",
             "quality": "quality rating", "pairwise": "pairwise judge", "difficulty": "difficulty rating"}


def unreadable_replies(dataset) -> pd.DataFrame:
    """One row per (method, agent) with replies that could not be used: `unreadable` (parsed to
    nothing), `cut or empty` (cut at max_tokens, filtered or empty), and `of` (the agent's replies
    the output records, where it records them; otherwise empty)."""
    counts: dict[tuple[str, str], Counter] = {}

    def add(prefix: str, agent: str, what: str, n: int = 1) -> None:
        counts.setdefault((_PREFIXES[prefix], _agent(agent)), Counter())[what] += n

    for prefix in _PREFIXES:
        if f"{prefix}_error" not in dataset.column_names:
            continue
        for error in dataset[f"{prefix}_error"]:
            if error is None:
                continue
            if (match := _UNUSABLE.search(error)) is not None:
                add(prefix, match[1] or match[3], "cut or empty")
            for pattern, agent in _UNPARSED:
                if pattern.search(error):
                    add(prefix, agent, "unreadable")
    for prefix, agent, column, read in _RECORDED:
        if column in dataset.column_names:
            for value, error in zip(dataset[column], dataset[f"{prefix}_error"]):
                for parsed in read(value) if error is None else ():
                    add(prefix, agent, "of")
                    if parsed is None:
                        add(prefix, agent, "unreadable")
    rows = [{"method": method, "agent": agent, "unreadable": c["unreadable"], "cut or empty": c["cut or empty"],
             "of": c["of"] or None} for (method, agent), c in sorted(counts.items())
            if c["unreadable"] or c["cut or empty"]]
    return pd.DataFrame(rows, columns=["method", "agent", "unreadable", "cut or empty", "of"])


def describe(table: pd.DataFrame) -> str:
    """A few lines for a summary: who could not be read, how often, and the advice; "" when none."""
    if table.empty:
        return ""
    parts = []
    for row in table.to_dict("records"):
        said = [f"{row['unreadable']} unreadable" if row["unreadable"] else "",
                f"{row['cut or empty']} cut or empty" if row["cut or empty"] else ""]
        of = f" of {int(row['of'])}" if pd.notna(row["of"]) else ""
        parts.append(f"{row['method']} {row['agent']}: {' and '.join(p for p in said if p)}{of}")
    return "replies not used: " + "; ".join(parts) + "\n  " + ADVICE


def _agent(name: str) -> str:
    return re.sub(r"_\d+$", "", name)  # reviewer_2 is a reviewer


def _trace_verdicts(trace) -> list:
    rounds = [r for turn in trace for r in turn] if trace and isinstance(trace[0], list) else trace or []
    return [v for r in rounds for v in r.get("parsed_verdicts") or []]


def _review_verdicts(trace) -> list:
    return [v for r in trace or [] for v in r.get("verdicts") or []]


def _labels(labels) -> list:
    return list(labels or [])


def _one(value) -> list:
    return [value]


_RECORDED = [  # (prefix, agent, column, the parsed values a succeeded row holds: None where a reply was not read)
    ("coevol", "judge", "coevol_trace", _trace_verdicts),
    ("review", "reviewer", "review_trace", _review_verdicts),
    ("difficulty", "difficulty", "difficulty_labels", _labels),
    ("pairwise", "judge", "pairwise_parsed", _labels),
    ("quality", "quality", "quality_score", _one),
    ("eval", "evaluator", "eval_avg", _one),
]
