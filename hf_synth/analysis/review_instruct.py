"""ReviewInstruct's numbers for a finished run: its summary lines and its section of the report."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from .by_round import diversity_by_round, difficulty_by_round, failures_by_round, plot_by_round
from .report import directions_section, figure, table


def outcome_lines(dataset) -> list[str]:
    """Where the Chairman took the conversations, for the run's summary."""
    directions = Counter(r["direction"] for trace in dataset["review_trace"] if trace
                         for r in trace if r["next_instruction"] is not None)
    if not directions:
        return []
    return ["next questions: " + ", ".join(f"{d or 'undecided'}: {n}" for d, n in directions.most_common())]


def report_section(dataset, out, tokenizer, nlp) -> str:
    """ReviewInstruct's section of the analysis report (`analysis.report`)."""
    turns = Counter(sum(m["role"] == "user" for m in messages) for messages in dataset["review_messages"] if messages)
    parts = ["### User turns per conversation",
             table(out, "review_turns", pd.DataFrame([{"user turns": t, "conversations": turns[t]} for t in sorted(turns)]),
                    index=False) if turns else "No conversation succeeded."]
    directions = Counter(r["direction"] for trace in dataset["review_trace"] or [] if trace
                         for r in trace if r["next_instruction"] is not None)
    if directions:
        frame = pd.DataFrame([{"direction": d or "undecided", "questions": n} for d, n in directions.most_common()])
        parts += ["### Where the Chairman took the conversation", table(out, "review_chairman", frame, index=False)]
    failed = failures_by_round(dataset)
    if failed["rows failed"].any():
        parts += ["### Rows that failed, by round", "Late failures bias the per-round statistics towards the "
                  "conversations that stayed easy.", table(out, "review_failures_by_round", failed, index=False)]
    diversity = diversity_by_round(dataset, "review_messages", nlp)
    difficulty = difficulty_by_round(dataset) if "difficulty_labels" in dataset.column_names else None
    parts += ["### Diversity by round", table(out, "review_diversity_by_round", diversity, index=False)]
    if difficulty is not None:
        parts += ["### Difficulty by round", table(out, "review_difficulty_by_round", difficulty, index=False)]
    if not diversity.empty:
        parts.append(figure(out, "review_by_round", plot_by_round(difficulty, diversity)))
    questions = [m["content"] for messages in dataset["review_messages"] if messages
                 for m in [m for m in messages if m["role"] == "user"][1:]]
    parts += ["### Evolving directions of the Chairman's questions", directions_section(out, "review_directions_of_questions", questions, "questions", nlp)]
    return "\n\n".join(parts)
