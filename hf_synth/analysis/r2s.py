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


def evaluation_means(dataset) -> pd.DataFrame:
    """Mean of each `DialogueEvalTransform` column (the nine metrics, Avg. and the deterministic
    coverage) over the rows where it was read, and how many rows that is."""
    from ..methods.dialogue_eval import SCORES

    columns = {name.upper(): pd.Series(dataset[f"eval_{name}"], dtype="float64")
               for name in (*SCORES, "cr", "avg", "coverage")}
    return pd.DataFrame([{n: c.mean() for n, c in columns.items()}, {n: int(c.notna().sum()) for n, c in columns.items()}],
                        index=["mean", "rows scored"])
