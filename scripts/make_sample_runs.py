"""Make the small runs the sample dataset cards and the notebooks are built from, on the embedded model
(SmolLM2-135M-Instruct, llama.cpp) with today's defaults (structured replies, the embedded model's
budget), seeded: `coevol`, CoEvol over 12 Alpaca rows (up to 2 rounds); `review`, ReviewInstruct over
6 Alpaca seeds (3 rounds, 3 reviewers, with difficulty labels); `r2s`, R2S over 4 shipped documents
(3 turns, with the nine-metric evaluation). Each run is written to notebooks/data/ as Parquet with its
recipe beside it. A few minutes each on 2 cores.

    python scripts/make_sample_runs.py [coevol] [review] [r2s]

(then `python scripts/render_sample_cards.py` for the sample cards.)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import datasets

from hf_synth import LLM, CoEvolTransform, R2STransform, ReviewInstructTransform
from hf_synth.runs import recipe
from hf_synth.transforms import DialogueEvalTransform, DifficultyTransform

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "hf_synth" / "data"
OUT = ROOT / "notebooks" / "data"


def run(name: str, source: str, rows: list[int], steps) -> None:
    dataset = datasets.load_dataset("json", data_files=str(DATA / source), split="train").select(rows)
    started = time.monotonic()
    for step in steps:
        dataset = dataset.map(step, batched=True)
    made = recipe.make(steps, source=f"hf_synth/data/{source}", limit=len(rows), seconds=time.monotonic() - started)
    made["input"].update(source=f"hf_synth/data/{source}", rows=rows)  # as the repository names it
    dataset.to_parquet(str(OUT / f"{name}.parquet"))
    (OUT / f"{name}.recipe.json").write_text(json.dumps(made, indent=2, ensure_ascii=False) + "\n")
    print(f"{name}: {len(dataset)} rows in {made['run']['seconds']} s", file=sys.stderr)


def main() -> None:
    which = sys.argv[1:] or ["coevol", "review", "r2s"]
    llm = LLM(seed=1)
    if "coevol" in which:
        run("coevol_embedded", "alpaca_sample.jsonl", list(range(12)), [CoEvolTransform(llm, max_rounds=2)])
    if "review" in which:
        run("review_instruct_embedded", "alpaca_sample.jsonl", list(range(6)),
            [ReviewInstructTransform(llm, rounds=3, num_reviewers=3), DifficultyTransform(llm)])
    if "r2s" in which:
        run("r2s_embedded", "documents_sample.jsonl", [0, 1, 6, 7],
            [R2STransform(llm, turns=3), DialogueEvalTransform(llm)])


if __name__ == "__main__":
    main()
