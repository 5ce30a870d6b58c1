"""R2S output in numbers: the dialogue types the chain chose and how many Find spans were grounded."""
from __future__ import annotations

from collections import Counter

import pandas as pd


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
