"""R2S output in numbers: the dialogue types the chain chose and how many Find spans were grounded."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from .empty import has_numbers, say_no_data
from .report import directions_section, figure, table


def _turns(dataset) -> list[dict]:
    return [turn for cod in dataset["r2s_cod"] if cod for turn in cod]


def dialogue_types(dataset) -> Counter:
    """Turns per dialogue type over the succeeded rows; turns without a type count as None."""
    return Counter(turn["type"] for turn in _turns(dataset))


def grounding(dataset) -> tuple[int, int]:
    """(Find spans found in the document, Find spans) over the succeeded rows."""
    spans = [span["grounded"] for turn in _turns(dataset) for span in turn["find"]]
    return sum(spans), len(spans)


def coverage(dataset, text_column: str = "text") -> list[float]:
    """Per succeeded row, the deterministic coverage: percent of the document's sentences covered by
    the replies and the grounded Find spans, as `DialogueEvalTransform` computes it (its
    `eval_coverage` column when it ran). Empty when neither that column nor the documents are there."""
    from ..methods.dialogue_eval import dialogue_coverage

    if "eval_coverage" in dataset.column_names:
        return [c for c in dataset["eval_coverage"] if c is not None]
    if text_column not in dataset.column_names or "r2s_messages" not in dataset.column_names:
        return []
    values = []
    for document, messages, cod, error in zip(dataset[text_column], dataset["r2s_messages"], dataset["r2s_cod"],
                                              dataset["r2s_error"]):
        if error is None and isinstance(document, str) and document.strip():
            evidence = [s["text"] for turn in cod or [] for s in turn["find"] if s["grounded"]]
            value = dialogue_coverage(document, messages, evidence)
            if value is not None:
                values.append(value)
    return values


def evaluation_means(dataset) -> pd.DataFrame:
    """Mean of each `DialogueEvalTransform` column (the nine metrics, Avg. and the deterministic
    coverage) over the rows where it was read, and how many rows that is."""
    from ..methods.dialogue_eval import SCORES

    columns = {name.upper(): pd.Series(dataset[f"eval_{name}"], dtype="float64")
               for name in (*SCORES, "cr", "avg", "coverage")}
    return pd.DataFrame([{n: c.mean() for n, c in columns.items()}, {n: int(c.notna().sum()) for n, c in columns.items()}],
                        index=["mean", "rows scored"])


def types_by_turn(dataset) -> pd.DataFrame:
    """Share of each dialogue type at each turn of the succeeded dialogues (a row per turn number);
    `none given` counts turns whose reply named no type."""
    counts: dict[int, Counter] = {}
    for cod in dataset["r2s_cod"]:
        for number, turn in enumerate(cod or [], 1):
            counts.setdefault(number, Counter())[turn["type"] or "none given"] += 1
    types = sorted({t for c in counts.values() for t in c})
    rows = [{"turn": n, **{t: counts[n][t] / sum(counts[n].values()) for t in types}} for n in sorted(counts)]
    return pd.DataFrame(rows, columns=["turn", *types])


def grounding_by_turn(dataset) -> pd.DataFrame:
    """Find spans and how many were found in the document, at each turn number."""
    spans: Counter = Counter()
    found: Counter = Counter()
    for cod in dataset["r2s_cod"]:
        for number, turn in enumerate(cod or [], 1):
            spans[number] += len(turn["find"])
            found[number] += sum(span["grounded"] for span in turn["find"])
    return pd.DataFrame([{"turn": n, "spans": spans[n], "found": found[n],
                          "share": found[n] / spans[n] if spans[n] else float("nan")} for n in sorted(spans)],
                        columns=["turn", "spans", "found", "share"])


def plot_types_by_turn(table: pd.DataFrame):
    """Stacked bars: the dialogue types chosen at each turn (Section 4.1's logic flow, as it came out)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 3.6), layout="constrained")
    axes = figure.subplots()
    bottom = pd.Series(0.0, index=table.index)
    for name in table.columns[1:]:
        axes.bar(table["turn"], table[name], bottom=bottom, label=name)
        bottom += table[name]
    axes.set(title="Dialogue types by turn", xlabel="turn", ylim=(0, 1), xticks=list(table["turn"]))
    axes.yaxis.set_major_formatter("{x:.0%}")
    if table.empty:
        say_no_data(axes, "no turns: every dialogue failed")
    else:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    return figure


def plot_grounding_by_turn(table: pd.DataFrame):
    """The share of Find spans found in the document at each turn."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3.4), layout="constrained")
    axes = figure.subplots()
    axes.plot(table["turn"], table["share"], marker="o")
    axes.set(title="Find spans found in the document", xlabel="turn", ylim=(0, 1.05), xticks=list(table["turn"]))
    axes.yaxis.set_major_formatter("{x:.0%}")
    if not has_numbers(table["share"]):
        say_no_data(axes, "no Find spans: no turn searched the document")
    return figure


def plot_evaluation(means: pd.DataFrame, reference: dict[str, dict[str, float]] | None = None):
    """The nine metrics' means (1–5; CR on its own axis, in percent) of `evaluation_means`, beside
    `reference` rows given by name, e.g. a row of the paper's Tables 2–4:
    `{"R2S, paper": {"INFO": 4.6, "UD": 4.8, ...}}`."""
    from matplotlib.figure import Figure

    from ..methods.dialogue_eval import SCORES

    metrics = [name.upper() for name in SCORES]
    series = {"this run": means.loc["mean"]} | {name: pd.Series(row) for name, row in (reference or {}).items()}
    figure = Figure(figsize=(8, 3.6), layout="constrained")
    scores, rate = figure.subplots(1, 2, width_ratios=[len(metrics), 1.5])
    width = 0.8 / len(series)
    for offset, (name, values) in enumerate(series.items()):
        xs = [i + offset * width for i in range(len(metrics))]
        scores.bar(xs, [values.get(m, float("nan")) for m in metrics], width=width, label=name)
        rate.bar([offset * width], [values.get("CR", float("nan"))], width=width)
    scores.set(title="Section 3.2 metrics (1–5)", ylim=(0, 5), xticks=[i + 0.4 - width / 2 for i in range(len(metrics))],
               xticklabels=metrics)
    rate.set(title="CR (%)", ylim=(0, 100), xticks=[])
    scores.legend(fontsize="small")
    if not has_numbers(means.loc["mean"]):
        say_no_data(scores, "no scores: every evaluation failed or was unreadable")
    return figure


def outcome_lines(dataset) -> list[str]:
    """What an R2S run did, for its summary: dialogue types, Find spans grounded, notes."""
    lines = []
    types = [(t, n) for t, n in dialogue_types(dataset).most_common() if t]
    if types:
        lines.append("dialogue types: " + ", ".join(f"{t}: {n}" for t, n in types))
    found, spans = grounding(dataset)
    if spans:
        lines.append(f"Find spans found in the document: {found} of {spans} ({found / spans:.0%})")
    notes = sum(note is not None for note in dataset["r2s_note"])
    if notes:
        lines.append(f"rows with a note (e.g. truncated document): {notes}")
    return lines


def print_evaluation(dataset, value, transform) -> None:
    """After `--evaluate`: the means of the nine metrics (and the deterministic coverage)."""
    means = evaluation_means(dataset)
    print("evaluation means: " + ", ".join(
        f"{name} {row['mean']:.2f} (n={row['rows scored']:.0f})" if row["rows scored"] else f"{name} none parsed"
        for name, row in means.T.iterrows()))


def report_section(dataset, out, tokenizer, nlp) -> str:
    """R2S's section of the analysis report (`analysis.report`)."""
    parts = []
    types = dialogue_types(dataset)
    turns = sum(types.values())
    if turns:
        frame = pd.DataFrame([{"type": t or "none given", "turns": n, "share": n / turns} for t, n in types.most_common()])
        by_turn = types_by_turn(dataset)
        parts += ["### Dialogue types", table(out, "r2s_dialogue_types", frame, index=False),
                  figure(out, "r2s_types_by_turn", plot_types_by_turn(by_turn))]
    found, spans = grounding(dataset)
    grounded = (f"{found} of {spans} Find spans ({found / spans:.1%}) were found in the document." if spans
                else "No Find spans (a baseline strategy, or the model wrote none).")
    parts += ["### Grounding", grounded]
    if spans:
        by_turn = grounding_by_turn(dataset)
        parts += [table(out, "r2s_grounding_by_turn", by_turn, index=False),
                  figure(out, "r2s_grounding_by_turn", plot_grounding_by_turn(by_turn))]
    covered = coverage(dataset)
    if covered:
        parts += ["### Coverage", f"The replies and grounded passages cover {sum(covered) / len(covered):.1f}% of the "
                  f"document's sentences on average (over {len(covered)} dialogue{'s' * (len(covered) > 1)}; a sentence "
                  "counts when half its content words appear)."]
    if "eval_avg" in dataset.column_names:
        means = evaluation_means(dataset)
        parts += ["### Evaluation (Section 3.2 metrics)", table(out, "r2s_evaluation", means)]
        if means.loc["rows scored"].sum():
            parts.append(figure(out, "r2s_evaluation", plot_evaluation(means)))
    questions = [turn["user"] for cod in dataset["r2s_cod"] if cod for turn in cod]
    parts += ["### Evolving directions of the user turns", directions_section(out, "r2s_directions", questions, "user turns", nlp)]
    return "\n\n".join(parts)
