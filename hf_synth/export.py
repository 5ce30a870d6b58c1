"""Training data for a generator model of your own (R2S's GLLM, Section 4.3): each finished R2S row
becomes a (document → annotated dialogue) pair, as an SFT conversation."""
from __future__ import annotations

from pathlib import Path

import datasets

from .errors import InputError
from .methods import r2s, r2s_prompts
from .methods.grounding import Span
from .protocol import assistant, system, user


def gllm_pairs(dialogues: datasets.Dataset, *, text_column: str = "text", grounded_only: bool = True,
               max_document_chars: int = r2s.MAX_DOCUMENT_CHARS, planned: bool = False) -> datasets.Dataset:
    """A dataset with `document`, `dialogue` (the turns in the chain's block format) and `messages`
    (system, the document with the generator's instruction, the annotated dialogue) for every row of
    an `R2STransform` output without `r2s_error`, made with the `cod` strategy. Find spans that were
    not found in the document are left out unless `grounded_only=False`. Documents are cut as the
    transform cut them: pass the `max_document_chars` it ran with.

    `planned=False` is the paper's "Direct" generator (Table 5): the dialogue alone. `planned=True`
    puts the logic flow the chain planned first (`r2s_flow`) before the turns, so that a generator
    trained on it plans before it writes; the `gllm` strategy reads such replies too (what comes
    before the first User line is not a turn)."""
    missing = [c for c in (text_column, "r2s_cod", "r2s_error", *(["r2s_flow"] if planned else []))
               if c not in dialogues.column_names]
    if missing:
        raise InputError(f"gllm_pairs needs the output of R2STransform; no column {', '.join(map(repr, missing))} among "
                         f"{dialogues.column_names} (name the document column with text_column=)")
    rows = {"document": [], "dialogue": [], "messages": []}
    flows = dialogues["r2s_flow"] if planned else [None] * len(dialogues)
    for document, cod, error, flow in zip(dialogues[text_column], dialogues["r2s_cod"], dialogues["r2s_error"], flows):
        if error is not None or not cod or not any(turn["type"] or turn["find"] for turn in cod):
            continue  # failed rows, and the baselines' dialogues (no chain to learn)
        turns = [r2s.Turn(t["type"], t["user"], t["search"], [Span(**s) for s in t["find"]], t["assistant"]) for t in cod]
        document, _ = r2s.fit(document, max_document_chars)
        dialogue = r2s.annotate(turns, grounded_only=grounded_only)
        if planned and flow:
            dialogue = f"{flow.strip()}\n\n{dialogue}"
        prompt = r2s_prompts.GLLM.format(document=document, turns=len(turns))
        rows["document"].append(document)
        rows["dialogue"].append(dialogue)
        rows["messages"].append([system(r2s_prompts.GENERATOR_ROLE), user(prompt), assistant(dialogue)])
    return datasets.Dataset.from_dict(rows)


def write_gllm_pairs(dialogues: datasets.Dataset, path: str, transform) -> None:
    """After `hf-synth r2s --gllm FILE`: the pairs of `dialogues` (made by `transform`) as JSON lines,
    the direct variant in FILE and the planned one beside it (FILE.planned.jsonl)."""
    options = {"text_column": transform.text_column, "max_document_chars": transform.max_document_chars}
    planned_path = str(Path(path).with_suffix("")) + ".planned.jsonl"
    for variant, where in ((False, path), (True, planned_path)):
        pairs = gllm_pairs(dialogues, planned=variant, **options)
        pairs.to_json(where, force_ascii=False)
        print(f"{len(pairs)} document → {'planned ' if variant else ''}annotated dialogue pairs written to {where}")
