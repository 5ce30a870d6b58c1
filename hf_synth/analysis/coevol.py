"""CoEvol's Figure 2: how many rounds of evolution were accepted (2a) and how much longer the
responses grew (2b). Both accept one dataset or a mapping of names to datasets (runs side by side);
multi-turn output counts each optimized assistant turn as a unit."""
from __future__ import annotations

from collections import Counter
import pandas as pd

from ..conversations import normalize
from ..errors import InputError
from ..tokens import paper_counter, token_counter
from ..transforms.coevol import CoEvolTransform
from .by_round import _named
from .empty import has_numbers, say_no_data
from .directions import suggestion_lines
from .report import directions_section, figure, table


def _require(dataset, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in dataset.column_names]
    if missing:
        raise InputError(f"{what} needs CoEvolTransform output; no column {', '.join(map(repr, missing))} among "
                         f"{dataset.column_names}")


def round_distribution(data, max_rounds: int | None = None) -> pd.DataFrame:
    """Share of units (rows, or optimized turns of conversations) by number of accepted rounds.

    One row per dataset: `unit` ("row" or "turn"), `units` (succeeded units), `failed_rows` (rows with
    `coevol_error`, not counted as round 0), then one column per round count 0..K with its share of
    `units`. K is `max_rounds`, or the largest count seen."""
    table = {}
    for name, dataset in _named(data, single="all"):
        _require(dataset, ("coevol_rounds", "coevol_error"), "round_distribution")
        counts, failed, multi_turn = Counter(), 0, False
        for rounds, error in zip(dataset["coevol_rounds"], dataset["coevol_error"]):
            if error is not None or rounds is None:
                failed += 1
            elif isinstance(rounds, list):
                multi_turn = True
                counts.update(rounds)
            else:
                counts[rounds] += 1
        table[name] = (counts, failed, "turn" if multi_turn else "row")
    top = max_rounds if max_rounds is not None else max((max(c, default=0) for c, _, _ in table.values()), default=0)
    rows = []
    for name, (counts, failed, unit) in table.items():
        units = sum(counts.values())
        row = {"dataset": name, "unit": unit, "units": units, "failed_rows": failed}
        row.update({k: counts[k] / units if units else float("nan") for k in range(top + 1)})
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def plot_round_distribution(distribution: pd.DataFrame):
    """Grouped bars: share of units per accepted-round count, one colour per dataset."""
    from matplotlib.figure import Figure

    rounds = [c for c in distribution.columns if isinstance(c, int)]
    # wide enough for the title however few the rounds; the legend below the bars, never over them
    figure = Figure(figsize=(max(5.5, 1.2 + 1.1 * len(rounds)), 4.2), layout="constrained")
    axes = figure.subplots()
    width = 0.8 / max(len(distribution), 1)
    for i, (name, row) in enumerate(distribution.iterrows()):
        label = f"{name} ({row['units']} {row['unit']}s, {row['failed_rows']} failed rows)"
        axes.bar([k + (i - (len(distribution) - 1) / 2) * width for k in rounds], [row[k] for k in rounds],
                 width=width, label=label)
    axes.set(title="Accepted rounds of evolution", xlabel="rounds", ylabel="share", xticks=rounds, ylim=(0, 1))
    axes.yaxis.set_major_formatter("{x:.0%}")
    if not has_numbers(distribution[rounds].to_numpy().ravel()) or not distribution["units"].sum():
        say_no_data(axes, "no rows to count: every row failed")
    elif len(distribution):
        figure.legend(*axes.get_legend_handles_labels(), loc="outside lower center", fontsize="small")
    return figure


def _units(dataset, original_column: str | None):
    """(original response, trace) per succeeded unit: the response column of single-turn rows, or each
    optimized assistant turn of `messages`/`conversations` (the trace replays its evolution)."""
    if "coevol_output" in dataset.column_names:
        column = original_column or next((c for c in CoEvolTransform.RESPONSE_COLUMNS if c in dataset.column_names), None)
        _require(dataset, (column or "output", "coevol_error", "coevol_trace"), "length_growth")
        for original, trace, error in zip(dataset[column], dataset["coevol_trace"], dataset["coevol_error"]):
            if error is None:
                yield original or "", trace
        return
    column = original_column or next((c for c in CoEvolTransform.CONVERSATION_COLUMNS if c in dataset.column_names),
                                     None)
    _require(dataset, (column or "messages", "coevol_error", "coevol_trace"), "length_growth")
    for turns, traces, error in zip(dataset[column], dataset["coevol_trace"], dataset["coevol_error"]):
        if error is None:
            answers = [m["content"] for m in normalize(turns) if m["role"] == "assistant"]
            yield from zip(answers, traces)  # the first assistant turns are the optimized ones, one trace each


def response_lengths(data, tokenizer=None, original_column: str | None = None) -> pd.DataFrame:
    """Token lengths per unit: `dataset`, `round` (0 = the original, r = the response as it stood
    after round r; a unit whose edit was rejected keeps its response), `tokens`. The last round of
    each unit is also its final response. `tokenizer`: see `hf_synth.tokens.token_counter`; by default
    the paper's, gpt-3.5-turbo's encoding (`hf_synth.tokens.paper_counter`)."""
    count = token_counter(tokenizer) if tokenizer is not None else paper_counter()[0]
    rows = []
    for name, dataset in _named(data, single="all"):
        units = list(_units(dataset, original_column))
        last = max((len(trace or []) for _, trace in units), default=0)
        for unit, (original, trace) in enumerate(units):
            response = original
            rows.append({"dataset": name, "unit": unit, "round": 0, "tokens": count(response)})
            for number in range(1, last + 1):
                step = (trace or [])[number - 1] if number <= len(trace or []) else None
                if step is not None and step["accepted"]:
                    response = step["edited"]
                rows.append({"dataset": name, "unit": unit, "round": number, "tokens": count(response)})
    return pd.DataFrame(rows, columns=["dataset", "unit", "round", "tokens"])


def length_growth(data, tokenizer=None, per_round: bool = False, original_column: str | None = None) -> pd.DataFrame:
    """Mean and median token length of the original and evolved responses and the ratio of the means,
    per dataset (`per_round=True`: per round, 0 = the original). Failed rows are left out."""
    return summarize_lengths(response_lengths(data, tokenizer, original_column), per_round)


def summarize_lengths(lengths: pd.DataFrame, per_round: bool = False) -> pd.DataFrame:
    """`length_growth` from a frame of `response_lengths`."""
    if per_round:
        stats = lengths.groupby(["dataset", "round"], sort=False)["tokens"].agg(["count", "mean", "median"])
        base = stats.xs(0, level="round")["mean"]
        stats["ratio"] = [row["mean"] / base[name] if base[name] else float("nan")
                          for (name, _), row in stats.iterrows()]
        return stats.reset_index().rename(columns={"count": "units"})
    rows = []
    for name, group in lengths.groupby("dataset", sort=False):
        original = group[group["round"] == 0]["tokens"]
        evolved = group[group["round"] == group["round"].max()]["tokens"]
        rows.append({"dataset": name, "units": len(original), "original_mean": original.mean(),
                     "original_median": original.median(), "evolved_mean": evolved.mean(),
                     "evolved_median": evolved.median(),
                     "ratio": evolved.mean() / original.mean() if original.mean() else float("nan")})
    return pd.DataFrame(rows).set_index("dataset")


def plot_length_growth(lengths: pd.DataFrame):
    """Box plots of the original and evolved token lengths per dataset, means marked; `lengths` is the
    frame of `response_lengths`."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(lengths["dataset"]))
    figure = Figure(figsize=(1.5 + 2.2 * len(names), 3.8), layout="constrained")
    axes = figure.subplots()
    boxes, labels = [], []
    for name in names:
        group = lengths[lengths["dataset"] == name]
        boxes += [group[group["round"] == 0]["tokens"], group[group["round"] == group["round"].max()]["tokens"]]
        labels += [f"{name}\noriginal", f"{name}\nevolved"]
    if any(len(box) for box in boxes):
        axes.boxplot(boxes, tick_labels=labels, showmeans=True)
    else:
        say_no_data(axes, "no responses to measure: every row failed")
    axes.set(title="Response length in tokens", ylabel="tokens")
    return figure


# What a pair of verdicts on an edit says (the edit shown second, then first: Eq. 4's two orders).
_VERDICT_PAIRS = {("1", "1"): "preferred the first position in both orders",
                  ("2", "2"): "preferred the second position in both orders",
                  ("1", "2"): "preferred the original in both orders", ("equal", "equal"): "called them equal"}


def why_unchanged(dataset) -> str | None:
    """In words, how many responses changed and what the judge said of the edits it did not accept —
    e.g. "0 of 4 responses changed; of the 4 edits not accepted, the judge preferred the first position
    in both orders for 4 — a position-biased judge …". Single-turn output only; None otherwise."""
    if "coevol_trace" not in dataset.column_names or "coevol_output" not in dataset.column_names:
        return None
    done = [(rounds, trace) for rounds, trace, error in zip(dataset["coevol_rounds"], dataset["coevol_trace"],
                                                             dataset["coevol_error"]) if error is None]
    if not done or not all(isinstance(rounds, int) for rounds, _ in done):
        return None
    said = Counter()
    for _, trace in done:
        for step in trace or []:
            pair = tuple(step.get("parsed_verdicts") or ())
            if not step.get("accepted") and len(pair) == 2:
                said[_VERDICT_PAIRS.get(pair, "gave no readable verdict" if None in pair else "was split between "
                                        "the orders")] += 1
    sentence = f"{sum(rounds > 0 for rounds, _ in done)} of {len(done)} responses changed"
    if said:
        sentence += f"; of the {sum(said.values())} edits not accepted, the judge " + ", ".join(
            f"{reason} for {n}" for reason, n in said.most_common())
        if "position in both orders" in said.most_common(1)[0][0]:
            sentence += (" — a position-biased judge, from which Eq. 4 accepts no edit; try a stronger judge "
                         "model (llms={'judge': ...})")
    return sentence


def outcome_lines(dataset) -> list[str]:
    """What a CoEvol run did, for its summary: the accepted rounds and, when no response changed, why."""
    rounds = Counter()
    for value, error in zip(dataset["coevol_rounds"], dataset["coevol_error"]):
        if error is None:
            rounds.update(value if isinstance(value, list) else [value])
    lines = ["accepted rounds (rounds: rows): " + ", ".join(f"{k}: {rounds[k]}" for k in sorted(rounds))] if rounds else []
    explained = why_unchanged(dataset)
    return lines + ([explained] if explained else [])


def report_section(dataset, out, tokenizer, nlp) -> str:
    """CoEvol's section of the analysis report (`analysis.report`)."""
    parts = ["### Accepted rounds of evolution"]
    distribution = round_distribution(dataset)
    parts += [table(out, "coevol_rounds", distribution), figure(out, "coevol_rounds", plot_round_distribution(distribution))]
    parts.append("### Response length")
    if tokenizer is None:
        parts.append(f"Tokens counted with {paper_counter()[1]}.")
    lengths = response_lengths(dataset, tokenizer)
    parts += [table(out, "coevol_lengths", summarize_lengths(lengths)), figure(out, "coevol_lengths", plot_length_growth(lengths))]
    parts += ["### Evolving directions of the advisors' suggestions", directions_section(out, "coevol_directions", suggestion_lines(dataset),
                                                                                 "suggestion lines", nlp)]
    return "\n\n".join(parts)
