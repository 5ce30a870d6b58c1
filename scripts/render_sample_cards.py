"""Render the dataset card of each shipped sample run (notebooks/data/*.parquet with its recipe) into
dataset_cards/samples/, so a reader sees what a published card looks like before running anything.
`tests/test_hub.py` checks that the files are what this script writes today.

    python scripts/render_sample_cards.py
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "notebooks" / "data"
SAMPLES = ROOT / "dataset_cards" / "samples"
LANGUAGES = {"r2s_embedded": ["en", "zh"]}  # the shipped documents are English and Chinese


def render(name: str) -> str:
    """The card of the sample run `name`: its data and recipe, the project's own license (the sample
    data was written for it), no analysis section (`hf-synth publish` adds one)."""
    from hf_synth.hub import build_card

    dataset = datasets.Dataset.from_parquet(str(RUNS / f"{name}.parquet"))
    recipe = json.loads((RUNS / f"{name}.recipe.json").read_text())
    card = build_card(dataset, recipe=recipe, license="apache-2.0", language=LANGUAGES.get(name, ["en"]),
                      repo_id=f"example/{name.replace('_', '-')}")
    return str(card)


def names() -> list[str]:
    return sorted(path.name.removesuffix(".recipe.json") for path in RUNS.glob("*.recipe.json"))


def main() -> None:
    datasets.disable_progress_bars()
    SAMPLES.mkdir(exist_ok=True)
    for name in names():
        (SAMPLES / f"{name}.md").write_text(render(name), encoding="utf-8")
        print(f"dataset_cards/samples/{name}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
