"""Memory: peak RSS of the single-call job (CoEvol's `edit` mode, latency 0) over 10,000 and 100,000 rows,
each size in a fresh process, on a dataset loaded from files (memory-mapped Arrow, as `load_dataset`
gives). The run streams batch by batch, so its heap must not grow with the rows; what does grow is the
file-backed part, the pages of the dataset's own Arrow files that the kernel keeps mapped (and may drop).

Usage: python scripts/bench_memory.py [--rows 10000 100000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from benchlib import fake_server, machine, memory_peaks, peak_rss_mib, sample_rows, scratch, table, timed


def one_size(folder: Path, url: str) -> dict:
    """Runs in the child process: the job over the rows saved in `folder`; returns what it measured."""
    import datasets

    from hf_synth import LLM, CoEvolTransform
    from hf_synth.status import counts

    datasets.disable_progress_bars()
    dataset = datasets.load_from_disk(folder / "rows")
    rows = len(dataset)
    with timed() as run, memory_peaks() as peaks:
        out = dataset.map(CoEvolTransform(LLM(model="m", base_url=url), mode="edit", cache=folder / "requests"),
                          batched=True)
    arrow = sum(f.stat().st_size for f in folder.rglob("*.arrow")) / 2**20
    return {"rows": rows, "sent": counts().sent, "failed": len(out) - out["coevol_error"].count(None),
            "peak": peak_rss_mib(), "anon": peaks["anon"], "file": peaks["file"], "arrow": arrow, "wall": run["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_size(Path(args.child[0]), args.child[1])))
        return
    import datasets

    results = []
    with fake_server(replies="echo") as url:
        for rows in args.rows:
            folder = Path(scratch())
            datasets.Dataset.from_dict(sample_rows(rows)).save_to_disk(folder / "rows")
            child = subprocess.run([sys.executable, __file__, "--child", str(folder), url], capture_output=True,
                                   text=True, check=True)
            m = json.loads(child.stdout.splitlines()[-1])
            assert m["sent"] == rows and m["failed"] == 0
            results.append([m["rows"], m["sent"], m["wall"], m["peak"], m["anon"], m["file"], m["arrow"]])
    print(machine(), file=sys.stderr)
    print("CoEvol edit mode, latency 0, Dataset.map batch_size 1000; MiB")
    print(table(["rows", "requests", "wall s", "peak RSS (whole process)", "peak heap (anonymous) during map",
                 "peak file-backed during map (Arrow maps, libraries)", "Arrow files (input + output)"], results))


if __name__ == "__main__":
    main()
