"""Our judges and measures as `evaluate` modules, loadable offline from the installed package:

    import evaluate
    from hf_synth.metrics import path

    coverage = evaluate.load(path("r2s_coverage"))
    coverage.compute(dialogues=[messages, ...], documents=[text, ...])

Modules: `r2s_dialogue_eval` (R2S's nine metrics by an LLM judge, Section 3.2), `r2s_coverage` (the
deterministic coverage, no LLM), `coevol_pairwise` (CoEvol's position-swapped judge as a comparison of
two response sets, Eq. 4), `quality_rating` (the AlpaGasus-style rating) and `verb_object_diversity`
(Self-Instruct's verb–object pairs of a set of instructions, spaCy). Each is a thin adapter over the
transform or function that computes the same numbers, with the same keys as its columns; `evaluate`
(in maintenance mode) is only the door, never the scoring. Needs the `[evaluate]` extra.
"""
from __future__ import annotations

from pathlib import Path

import datasets

MODULES = ("r2s_dialogue_eval", "r2s_coverage", "coevol_pairwise", "quality_rating", "verb_object_diversity")


# The inputs of the two R2S modules: OpenAI-style dialogues and the document each is about.
DIALOGUES = datasets.Features({"dialogues": datasets.List({"role": datasets.Value("string"),
                                                          "content": datasets.Value("string")}),
                               "documents": datasets.Value("string")})


def path(name: str) -> str:
    """The folder of module `name`, for `evaluate.load` (a local path: nothing is downloaded)."""
    if name not in MODULES:
        raise ValueError(f"no hf_synth metric {name!r}; there are {', '.join(MODULES)}")
    return str(Path(__file__).parent / name)


def mean(values) -> float | None:
    """The mean of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def shares(values, labels) -> dict[str, float]:
    """The share of each label among `values`."""
    values = list(values)
    return {label: (sum(v == label for v in values) / len(values) if values else 0.0) for label in labels}
