"""Free vs structured replies on the embedded model (SmolLM2-135M-Instruct on llama.cpp): the share of
the replies each parser could read, and the wall time, over the README's main job (CoEvol, 4 rows) and
the ReviewInstruct and R2S sample runs (scripts/make_sample_runs.py's settings). Each run starts with an
empty request cache. About 20 minutes on 2 cores.

    python scripts/bench_structured.py [coevol] [review] [r2s]

Prints a markdown table (docs/structured.md shows it).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import datasets
from benchlib import scratch

from hf_synth import LLM, CoEvolTransform, R2STransform, ReviewInstructTransform
from hf_synth.methods.judge import parse_verdict
from hf_synth.transforms import DialogueEvalTransform, DifficultyTransform

DATA = Path(__file__).resolve().parent.parent / "hf_synth" / "data"


def load(name: str, rows: list[int]) -> datasets.Dataset:
    return datasets.load_dataset("json", data_files=str(DATA / name), split="train").select(rows)


def coevol(structured):
    out = load("alpaca_sample.jsonl", range(4)).map(CoEvolTransform(LLM(structured=structured)), batched=True)
    verdicts = [parse_verdict(v) for trace in out["coevol_trace"] for r in trace or [] for v in r["verdicts"]]
    return {"CoEvol judge (verdict line)": (sum(v is not None for v in verdicts), len(verdicts))}, out


def review(structured):
    llm = LLM(temperature=0.1, max_tokens=256, seed=1, structured=structured)
    out = load("alpaca_sample.jsonl", range(6)).map(ReviewInstructTransform(llm, rounds=3, num_reviewers=3), batched=True)
    out = out.map(DifficultyTransform(llm), batched=True)
    asked = [r for trace in out["review_trace"] for r in trace or [] if r["next_instruction"] is not None]
    unasked = sum("the Chairman wrote no next question" in (e or "") for e in out["review_error"])
    labels = [label for labels in out["difficulty_labels"] for label in labels or []]
    return {"ReviewInstruct Chairman (question and direction)":
            (sum(r["direction"] is not None for r in asked), len(asked) + unasked),
            "difficulty judge (label line)": (sum(label is not None for label in labels), len(labels))}, out


def r2s(structured):
    llm = LLM(max_tokens=512, seed=1, structured=structured)
    out = load("documents_sample.jsonl", [0, 1, 6, 7]).map(R2STransform(llm, turns=3), batched=True)
    turns = [t for cod in out["r2s_cod"] for t in cod or []]
    unread = sum("held no 'User:' line" in (e or "") for e in out["r2s_error"])
    scored = out.map(DialogueEvalTransform(llm), batched=True)  # (rows without a dialogue are marked, not judged)
    judged = [avg for avg, error in zip(scored["eval_avg"], out["r2s_error"]) if error is None]
    return {"R2S questioner (User, type, find)": (sum(t["type"] is not None and bool(t["find"]) for t in turns),
                                                   len(turns) + unread),
            "R2S evaluator (all nine scores)": (sum(avg is not None for avg in judged), len(judged))}, out


def main() -> None:
    runs = {"coevol": coevol, "review": review, "r2s": r2s}
    which = sys.argv[1:] or list(runs)
    datasets.disable_caching()
    lines = ["| run | parser | free: read | structured: read | free: rows ok, time | structured: rows ok, time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in which:
        results = {}
        for structured in (None, "llama.cpp"):
            os.environ["HF_SYNTH_CACHE"] = scratch("hf_synth_bench_structured_")
            started = time.monotonic()
            read, out = runs[name](structured)
            error = next(column for column in out.column_names if column.endswith("_error"))
            results[structured] = read, sum(e is None for e in out[error]), len(out), time.monotonic() - started
        free, held = results[None], results["llama.cpp"]
        for parser in free[0]:
            (a, n), (b, m) = free[0][parser], held[0][parser]
            lines.append(f"| {name} | {parser} | {a} of {n} | {b} of {m} | {free[1]} of {free[2]}, {free[3]:.0f} s "
                         f"| {held[1]} of {held[2]}, {held[3]:.0f} s |")
        print("\n".join(lines[-len(free[0]):]), file=sys.stderr)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
