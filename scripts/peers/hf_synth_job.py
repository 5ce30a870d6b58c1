"""The peers' benchmark job with hf_synth: CoEvol's edit mode, one request per row.
Run by scripts/bench_peers.py. Usage: hf_synth_job.py ROWS.jsonl BASE_URL CONCURRENCY"""
import sys

from datasets import load_dataset

from hf_synth import LLM, CoEvolTransform


def main(rows: str, base_url: str, concurrency: str) -> None:
    dataset = load_dataset("json", data_files=rows, split="train")
    llm = LLM(model="fake-model", base_url=base_url, max_concurrency=int(concurrency))
    out = dataset.map(CoEvolTransform(llm, mode="edit"), batched=True)
    print("rows out:", len(out), "failed:", len(out) - out["coevol_error"].count(None))


if __name__ == "__main__":
    main(*sys.argv[1:])
