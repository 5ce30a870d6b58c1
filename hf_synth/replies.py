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

from .method import declared

ADVICE = ("Replies that could not be read or were cut leave rows marked, verdicts undecided or scores empty: "
          "a larger model, a higher max_tokens, or LLM(structured=...) where the endpoint constrains decoding help.")

# `<prefix>_error` texts that say which agent's reply was unusable
_UNUSABLE = re.compile(r"the (\w+)'s reply (was cut|was empty|was withheld)|the endpoint's content filter withheld the (\w+)'s")


def unreadable_replies(dataset) -> pd.DataFrame:
    """One row per (method, agent) with replies that could not be used: `unreadable` (parsed to
    nothing), `cut or empty` (cut at max_tokens, filtered or empty), and `of` (the agent's replies
    the output records, where it records them; otherwise empty)."""
    counts: dict[tuple[str, str], Counter] = {}

    for method in declared():  # (what each method's errors and records say is in its declaration)
        def add(agent: str, what: str) -> None:
            counts.setdefault((method.name, _agent(agent)), Counter())[what] += 1

        if f"{method.prefix}_error" not in dataset.column_names:
            continue
        errors = dataset[f"{method.prefix}_error"]
        for error in errors:
            if error is None:
                continue
            if (match := _UNUSABLE.search(error)) is not None:
                add(match[1] or match[3], "cut or empty")
            for pattern, agent in method.unparsed:
                if re.search(pattern, error):
                    add(agent, "unreadable")
        for recorded in method.recorded:
            if recorded.column in dataset.column_names:
                for value, error in zip(dataset[recorded.column], errors):
                    for parsed in recorded.read(value) if error is None else ():
                        add(recorded.agent, "of")
                        if parsed is None:
                            add(recorded.agent, "unreadable")
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
