"""One call for the numbers and figures of a finished run: `report(ds, folder)` finds which methods
wrote the dataset's columns and writes their tables (CSV), figures (PNG, and the directions sunburst
as HTML) and a markdown summary that a dataset card can embed."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..replies import ADVICE, unreadable_replies
from .by_round import diversity_by_round, difficulty_by_round, failures_by_round, plot_by_round
from .coevol import (plot_length_growth, plot_round_distribution, response_lengths, round_distribution,
                     summarize_lengths)
from .directions import evolving_directions, plot_directions, suggestion_lines
from .r2s import (coverage, dialogue_types, evaluation_means, grounding, grounding_by_turn, plot_evaluation,
                  plot_grounding_by_turn, plot_types_by_turn, types_by_turn)

METHODS = {"coevol": "coevol_rounds", "review": "review_messages", "r2s": "r2s_cod"}


@dataclass
class Report:
    folder: Path
    methods: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def detect_methods(column_names: list[str]) -> list[str]:
    """The methods whose output columns are present: "coevol", "review", "r2s"."""
    return [method for method, column in METHODS.items() if column in column_names]


def report(dataset, folder, *, tokenizer=None, nlp=None, failures: bool = True) -> Report:
    """Write the analysis of `dataset` to `folder`; returns what was written, with `summary.md`'s text.
    `tokenizer` counts tokens for the length figures (default: the embedded model's vocabulary);
    `nlp` is a spaCy pipeline for the verb–object directions (default: the English one installed).
    `failures=False` leaves out the failed rows' reasons and the replies not used (a dataset card
    lists them itself)."""
    methods = detect_methods(dataset.column_names)
    if not methods:
        raise InputError(f"report found no output of a hf_synth method (columns {', '.join(METHODS.values())}) "
                         f"among {dataset.column_names}")
    out = Report(Path(folder), methods)
    out.folder.mkdir(parents=True, exist_ok=True)
    sections = [f"# Analysis\n\n{len(dataset)} rows."]
    unreadable = unreadable_replies(dataset)
    if failures and not unreadable.empty:  # (a dataset card lists them itself)
        sections += ["## Replies not used", _table(out, "replies_not_used", unreadable, index=False), ADVICE]
    for method in methods:
        title, section = _SECTIONS[method]
        sections.append(f"## {title}")
        if failures:
            sections.append(_failures(dataset, method))
        sections.append(section(dataset, out, tokenizer, nlp))
    out.markdown = "\n\n".join(sections) + "\n"
    summary = out.folder / "summary.md"
    summary.write_text(out.markdown, encoding="utf-8")
    out.files.append(summary)
    return out


def _table(out: Report, name: str, frame: pd.DataFrame, index: bool = True) -> str:
    out.tables[name] = frame
    path = out.folder / f"{name}.csv"
    frame.to_csv(path, index=index)
    out.files.append(path)
    return frame.to_markdown(index=index, floatfmt=".3g")


def _figure(out: Report, name: str, figure) -> str:
    path = out.folder / f"{name}.png"
    figure.savefig(path, dpi=120)
    out.files.append(path)
    return f"![{name}]({path.name})"


def _failures(dataset, prefix: str) -> str:
    errors = Counter(e for e in dataset[f"{prefix}_error"] if e is not None)
    if not errors:
        return "No row failed."
    lines = [f"{sum(errors.values())} of {len(dataset)} rows failed:"]
    lines += [f"- {count} × {reason}" for reason, count in errors.most_common(5)]
    return "\n".join(lines)


def _directions(out: Report, name: str, texts: list[str], what: str, nlp) -> str:
    if not texts:
        return f"No {what} to parse."
    directions = evolving_directions(texts, nlp)
    numbers = directions.summary()
    text = (f"{numbers['texts']} {what}; {numbers['with_pair']} have a root verb with a direct object: "
            f"{numbers['distinct_verbs']} distinct verbs, {numbers['distinct_pairs']} distinct verb–object pairs.")
    if not directions.pairs:
        return text
    table = _table(out, name, directions.top(), index=False)
    html = out.folder / f"{name}.html"
    figure = _figure(out, name, plot_directions(directions, html=html))
    out.files.append(html)
    return f"{text}\n\n{figure}\n\n[interactive version]({html.name})\n\n<details><summary>Top verbs and objects</summary>\n\n{table}\n\n</details>"


def _coevol(dataset, out: Report, tokenizer, nlp) -> str:
    parts = ["### Accepted rounds of evolution"]
    distribution = round_distribution(dataset)
    parts += [_table(out, "coevol_rounds", distribution), _figure(out, "coevol_rounds", plot_round_distribution(distribution))]
    parts.append("### Response length")
    lengths = response_lengths(dataset, tokenizer)
    parts += [_table(out, "coevol_lengths", summarize_lengths(lengths)), _figure(out, "coevol_lengths", plot_length_growth(lengths))]
    parts += ["### Evolving directions of the advisors' suggestions", _directions(out, "coevol_directions", suggestion_lines(dataset),
                                                                                 "suggestion lines", nlp)]
    return "\n\n".join(parts)


def _review(dataset, out: Report, tokenizer, nlp) -> str:
    turns = Counter(sum(m["role"] == "user" for m in messages) for messages in dataset["review_messages"] if messages)
    parts = ["### User turns per conversation",
             _table(out, "review_turns", pd.DataFrame([{"user turns": t, "conversations": turns[t]} for t in sorted(turns)]),
                    index=False) if turns else "No conversation succeeded."]
    directions = Counter(r["direction"] for trace in dataset["review_trace"] or [] if trace
                         for r in trace if r["next_instruction"] is not None)
    if directions:
        frame = pd.DataFrame([{"direction": d or "undecided", "questions": n} for d, n in directions.most_common()])
        parts += ["### Where the Chairman took the conversation", _table(out, "review_chairman", frame, index=False)]
    failed = failures_by_round(dataset)
    if not failed.empty:
        parts += ["### Rows that failed, by round", "Late failures bias the per-round statistics towards the "
                  "conversations that stayed easy.", _table(out, "review_failures_by_round", failed, index=False)]
    diversity = diversity_by_round(dataset, "review_messages", nlp)
    difficulty = difficulty_by_round(dataset) if "difficulty_labels" in dataset.column_names else None
    parts += ["### Diversity by round", _table(out, "review_diversity_by_round", diversity, index=False)]
    if difficulty is not None:
        parts += ["### Difficulty by round", _table(out, "review_difficulty_by_round", difficulty, index=False)]
    if not diversity.empty:
        parts.append(_figure(out, "review_by_round", plot_by_round(difficulty, diversity)))
    questions = [m["content"] for messages in dataset["review_messages"] if messages
                 for m in [m for m in messages if m["role"] == "user"][1:]]
    parts += ["### Evolving directions of the Chairman's questions", _directions(out, "review_directions_of_questions", questions, "questions", nlp)]
    return "\n\n".join(parts)


def _r2s(dataset, out: Report, tokenizer, nlp) -> str:
    parts = []
    types = dialogue_types(dataset)
    turns = sum(types.values())
    if turns:
        frame = pd.DataFrame([{"type": t or "none given", "turns": n, "share": n / turns} for t, n in types.most_common()])
        by_turn = types_by_turn(dataset)
        parts += ["### Dialogue types", _table(out, "r2s_dialogue_types", frame, index=False),
                  _figure(out, "r2s_types_by_turn", plot_types_by_turn(by_turn))]
    found, spans = grounding(dataset)
    grounded = (f"{found} of {spans} Find spans ({found / spans:.1%}) were found in the document." if spans
                else "No Find spans (a baseline strategy, or the model wrote none).")
    parts += ["### Grounding", grounded]
    if spans:
        by_turn = grounding_by_turn(dataset)
        parts += [_table(out, "r2s_grounding_by_turn", by_turn, index=False),
                  _figure(out, "r2s_grounding_by_turn", plot_grounding_by_turn(by_turn))]
    covered = coverage(dataset)
    if covered:
        parts += ["### Coverage", f"The replies and grounded passages cover {sum(covered) / len(covered):.1f}% of the "
                  f"document's sentences on average (over {len(covered)} dialogue{'s' * (len(covered) > 1)}; a sentence "
                  "counts when half its content words appear)."]
    if "eval_avg" in dataset.column_names:
        means = evaluation_means(dataset)
        parts += ["### Evaluation (Section 3.2 metrics)", _table(out, "r2s_evaluation", means)]
        if means.loc["rows scored"].sum():
            parts.append(_figure(out, "r2s_evaluation", plot_evaluation(means)))
    questions = [turn["user"] for cod in dataset["r2s_cod"] if cod for turn in cod]
    parts += ["### Evolving directions of the user turns", _directions(out, "r2s_directions", questions, "user turns", nlp)]
    return "\n\n".join(parts)


_SECTIONS = {"coevol": ("CoEvol", _coevol), "review": ("ReviewInstruct", _review), "r2s": ("R2S", _r2s)}
