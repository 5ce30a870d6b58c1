"""One call for the numbers and figures of a finished run: `report(ds, folder)` finds which methods
wrote the dataset's columns and writes their tables (CSV), figures (PNG, and the directions sunburst
as HTML) and a markdown summary that a dataset card can embed."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..method import by_prefix, declared
from ..replies import ADVICE, unreadable_replies
from .directions import evolving_directions, plot_directions


@dataclass
class Report:
    folder: Path
    methods: list[str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    markdown: str = ""


def detect_methods(column_names: list[str]) -> list[str]:
    """The prefixes of the methods whose output is present (each declares a column only it writes)."""
    return [method.prefix for method in declared() if method.marker and method.marker in column_names]


def report(dataset, folder, *, tokenizer=None, nlp=None, failures: bool = True) -> Report:
    """Write the analysis of `dataset` to `folder`; returns what was written, with `summary.md`'s text.
    `tokenizer` counts tokens for the length figures (default: the embedded model's vocabulary);
    `nlp` is a spaCy pipeline for the verb–object directions (default: the English one installed).
    `failures=False` leaves out the failed rows' reasons and the replies not used (a dataset card
    lists them itself)."""
    methods = detect_methods(dataset.column_names)
    if not methods:
        markers = ", ".join(method.marker for method in declared() if method.marker)
        raise InputError(f"report found no output of a hf_synth method (columns {markers}) among {dataset.column_names}")
    out = Report(Path(folder), methods)
    out.folder.mkdir(parents=True, exist_ok=True)
    sections = [f"# Analysis\n\n{len(dataset)} rows."]
    unreadable = unreadable_replies(dataset)
    if failures and not unreadable.empty:  # (a dataset card lists them itself)
        sections += ["## Replies not used", table(out, "replies_not_used", unreadable, index=False), ADVICE]
    for method in map(by_prefix, methods):
        sections.append(f"## {method.name}")
        if failures:
            sections.append(_failures(dataset, method.prefix))
        section = method.hook("report")
        if section is not None:
            sections.append(section(dataset, out, tokenizer, nlp))
    out.markdown = "\n\n".join(sections) + "\n"
    summary = out.folder / "summary.md"
    summary.write_text(out.markdown, encoding="utf-8")
    out.files.append(summary)
    return out


def table(out: Report, name: str, frame: pd.DataFrame, index: bool = True) -> str:
    out.tables[name] = frame
    path = out.folder / f"{name}.csv"
    frame.to_csv(path, index=index)
    out.files.append(path)
    return frame.to_markdown(index=index, floatfmt=".3g")


def figure(out: Report, name: str, figure) -> str:
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


def directions_section(out: Report, name: str, texts: list[str], what: str, nlp) -> str:
    """The verb–object directions of `texts` (spaCy): a sentence, a table, a figure and its HTML version."""
    if not texts:
        return f"No {what} to parse."
    directions = evolving_directions(texts, nlp)
    numbers = directions.summary()
    text = (f"{numbers['texts']} {what}; {numbers['with_pair']} have a root verb with a direct object: "
            f"{numbers['distinct_verbs']} distinct verbs, {numbers['distinct_pairs']} distinct verb–object pairs.")
    if not directions.pairs:
        return text
    top = table(out, name, directions.top(), index=False)
    html = out.folder / f"{name}.html"
    plot = figure(out, name, plot_directions(directions, html=html))
    out.files.append(html)
    return f"{text}\n\n{plot}\n\n[interactive version]({html.name})\n\n<details><summary>Top verbs and objects</summary>\n\n{top}\n\n</details>"


