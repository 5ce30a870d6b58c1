"""Against peers: the same single-call job (rewrite each response: CoEvol's `edit` prompt, one request
per row) over the same rows and the same fake server, run by hf_synth, bespokelabs-curator and
distilabel. The peers are installed into throwaway virtualenvs made here (not project dependencies);
each job runs in a fresh process with fresh caches, and its wall and CPU time (with its child
processes) are measured from outside.

Usage: python scripts/bench_peers.py [--rows 2000] [--latency 0 0.2] [--concurrency 64] [--venvs DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import children_cpu, edit_requests, fake_server, machine, sample_rows, table

JOBS = Path(__file__).resolve().parent / "peers"
PEERS = {"bespokelabs-curator": ["bespokelabs-curator"], "distilabel": ["distilabel[openai]", "requests"]}


def make_venv(folder: Path, requirements: list[str]) -> Path:
    python = folder / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return python


def installed(python: Path, package: str) -> str:
    return subprocess.run([str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
                          capture_output=True, text=True, check=True).stdout.strip()


def run_job(python: Path, job: str, rows: Path, url: str, concurrency: int, scratch: Path) -> tuple[float, float]:
    env = dict(os.environ, HF_DATASETS_CACHE=str(scratch / "datasets"), HF_SYNTH_CACHE=str(scratch / "hf_synth"),
               CURATOR_CACHE_DIR=str(scratch / "curator"), DISTILABEL_CACHE_DIR=str(scratch / "distilabel"),
               HF_HUB_OFFLINE="1", TELEMETRY_ENABLED="false", DISTILABEL_LOG_LEVEL="WARNING")
    cpu, wall = children_cpu(), time.perf_counter()
    done = subprocess.run([str(python), str(JOBS / job), str(rows), url, str(concurrency)], env=env,
                          capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if done.returncode != 0 or "rows out:" not in done.stdout:
        raise SystemExit(f"{job} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--venvs", type=Path, help="keep the peers' virtualenvs here, to reuse (default: thrown away)")
    args = parser.parse_args()
    scratch_root = Path(tempfile.mkdtemp(prefix="hf_synth_peers_"))
    venvs = args.venvs or scratch_root / "venvs"
    try:
        pythons = {"hf_synth": Path(sys.executable)}
        for peer, requirements in PEERS.items():
            pythons[peer] = make_venv(venvs / peer.split("-")[-1], requirements)
        versions = {peer: installed(python, peer) for peer, python in pythons.items()}
        rows = sample_rows(args.rows)
        raw, prompts = scratch_root / "rows.jsonl", scratch_root / "prompts.jsonl"
        raw.write_text("".join(json.dumps(dict(zip(rows, values))) + "\n" for values in zip(*rows.values())))
        prompts.write_text("".join(json.dumps({"messages": messages}) + "\n" for messages in edit_requests(rows)))
        jobs = {"hf_synth": ("hf_synth_job.py", raw), "bespokelabs-curator": ("curator_job.py", prompts),
                "distilabel": ("distilabel_job.py", prompts)}
        results = []
        for latency in args.latency:
            ideal = args.rows * latency / args.concurrency
            for tool, (job, data) in jobs.items():
                scratch = Path(tempfile.mkdtemp(dir=scratch_root))
                with fake_server(latency=latency, replies="echo") as url:
                    wall, cpu = run_job(pythons[tool], job, data, url, args.concurrency, scratch)
                results.append([f"{latency * 1000:g} ms", f"{tool} {versions[tool]}", wall, cpu,
                                1000 * cpu / args.rows, f"{ideal:.2f}"])
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    print(machine(), file=sys.stderr)
    print(f"{args.rows} rows, one request each, at most {args.concurrency} at once; wall and CPU include "
          "starting Python and importing the tool")
    print(table(["latency", "tool", "wall s", "CPU s", "CPU ms/row", "ideal s (rows × latency / C)"], results))


if __name__ == "__main__":
    main()
