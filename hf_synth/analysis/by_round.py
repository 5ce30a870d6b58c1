"""How conversations change turn by turn: difficulty and diversity of the user turns per round.

ReviewInstruct reports that review-driven questions get harder and more diverse round by round (share of
"hard" questions in round 3: 4.19% without review, 22.3% with one reviewer, 51.12% with several).
These functions measure that on any conversation column (ReviewInstruct's, R2S's, or plain
`messages`); pass one dataset, or a mapping of names to datasets to compare runs side by side.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Mapping

import pandas as pd

from ..methods.difficulty import LABELS
from .empty import has_numbers, say_no_data
from .directions import verb_object_pairs


def _named(data, single: str | None = None) -> list[tuple[str | None, object]]:
    """(name, dataset) pairs of a mapping, or [(single, data)] for one dataset."""
    return list(data.items()) if isinstance(data, Mapping) else [(single, data)]


def _frame(rows: list[dict], data) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.drop(columns="dataset") if not isinstance(data, Mapping) and "dataset" in frame else frame


def user_turns_by_round(dataset, column: str = "review_messages") -> dict[int, list[str]]:
    """The user turns of every conversation, grouped by round (1 = the seed); rows without a
    conversation (failed rows) are skipped."""
    rounds: dict[int, list[str]] = {}
    for messages in dataset[column]:
        for number, text in enumerate((m["content"] for m in messages or [] if m["role"] == "user"), 1):
            rounds.setdefault(number, []).append(text)
    return rounds


def difficulty_by_round(data, column: str = "difficulty_labels") -> pd.DataFrame:
    """Share of easy / medium / hard user turns per round, from `DifficultyTransform`'s labels.
    Shares are of the labelled turns; `unlabeled` counts judgments that named no single label."""
    rows = []
    for name, dataset in _named(data):
        counts: dict[int, Counter] = {}
        for labels in dataset[column]:
            for number, label in enumerate(labels or [], 1):
                counts.setdefault(number, Counter())[label] += 1
        for number in sorted(counts):
            labelled = sum(counts[number][label] for label in LABELS)
            row = {"dataset": name, "round": number, "turns": labelled + counts[number][None]}
            row.update({label: counts[number][label] / labelled if labelled else float("nan") for label in LABELS})
            row["unlabeled"] = counts[number][None]
            rows.append(row)
    return _frame(rows, data)


def diversity_by_round(data, column: str = "review_messages", nlp=None) -> pd.DataFrame:
    """Verb–object pairs of the user turns per round, and how many are new: not seen in any earlier
    round of the same dataset. `new_share` is the paper's measure (ReviewInstruct, Figure 4): new
    pairs / distinct pairs of the whole dataset, so a dataset's rounds sum to 100%;
    `new_share_of_round` divides by the distinct pairs of the round instead."""
    rows = []
    for name, dataset in _named(data):
        seen: set = set()
        start = len(rows)
        for number, texts in sorted(user_turns_by_round(dataset, column).items()):
            pairs = [pair for pair in verb_object_pairs(texts, nlp) if pair is not None]
            distinct = set(pairs)
            new = distinct - seen
            seen |= distinct
            rows.append({"dataset": name, "round": number, "turns": len(texts), "with_pair": len(pairs),
                         "distinct_pairs": len(distinct), "distinct_verbs": len({verb for verb, _ in distinct}),
                         "new_pairs": len(new),
                         "new_share_of_round": len(new) / len(distinct) if distinct else float("nan")})
        for row in rows[start:]:
            row["new_share"] = row["new_pairs"] / len(seen) if seen else float("nan")
    return _frame(rows, data)


_ROUND = re.compile(r"\bround (\d+)")


def failures_by_round(dataset, column: str = "review_error") -> pd.DataFrame:
    """Rows that failed in each round, and how many of them because a reply was cut at max_tokens.
    Rows that fail late are the ones with the hardest follow-ups: if many fail in later rounds, the
    difficulty statistics of the rows that succeeded are biased towards easier conversations."""
    failed: Counter = Counter()
    cut: Counter = Counter()
    for error in dataset[column]:
        match = _ROUND.search(error or "")
        if match:
            failed[int(match[1])] += 1
            cut[int(match[1])] += "was cut at max_tokens" in error
    rounds = set(failed)  # and every round the succeeded rows went through: a round that lost none says 0
    trace = column.removesuffix("_error") + "_trace"
    if trace in dataset.column_names:
        rounds |= {number for steps in dataset[trace] if steps for number in range(1, len(steps) + 1)}
    return pd.DataFrame([{"round": number, "rows failed": failed[number], "of which cut": cut[number]}
                         for number in sorted(rounds)], columns=["round", "rows failed", "of which cut"])


def plot_by_round(difficulty: pd.DataFrame | None = None, diversity: pd.DataFrame | None = None):
    """A figure with the share of hard turns and the share of new verb–object pairs per round, one
    line per dataset. Returns a `matplotlib.figure.Figure` (save it with `.savefig(path)`)."""
    from matplotlib.figure import Figure

    panels = [(frame, value, title, empty) for frame, value, title, empty in
              ((difficulty, "hard", "Share of hard user turns", "no labelled turns: every difficulty label was "
                "unreadable or its row failed"),
               (diversity, "new_share", "New verb–object pairs (share of all)", "no verb–object pairs in the user "
                "turns"))
              if frame is not None]
    if not panels:
        raise ValueError("plot_by_round needs difficulty= or diversity= (tables from the *_by_round functions)")
    figure = Figure(figsize=(5 * len(panels), 3.6), layout="constrained")
    for axes, (frame, value, title, empty) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        groups = frame.groupby("dataset", sort=False) if "dataset" in frame else [(None, frame)]
        for name, group in groups:
            axes.plot(group["round"], group[value], marker="o", label=name)
        axes.set(title=title, xlabel="round", ylim=(0, 1), xticks=sorted(frame["round"].unique()))
        axes.yaxis.set_major_formatter("{x:.0%}")
        if not has_numbers(frame[value] if value in frame else []):
            say_no_data(axes, empty)
        elif "dataset" in frame:
            axes.legend()
    return figure


def print_difficulty_by_round(dataset, value, transform) -> None:
    """After `--difficulty`: the share of each label among the labelled user turns, per round."""
    print("difficulty by round (shares of the labelled user turns):")
    print(difficulty_by_round(dataset).to_string(index=False, float_format=lambda x: f"{x:.1%}"))
