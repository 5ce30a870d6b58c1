"""Mutation testing of the engine, the runner and the judge: how many deliberate bugs the tests catch.

mutmut (3.x) makes small changes ("mutants") to `hf_synth/llm/`, `hf_synth/transforms/runner.py` and
`hf_synth/methods/judge.py` — a `<` for a `<=`, a string changed, an argument dropped — and runs the
tests that cover each changed function against it; a mutant that no test fails "survived". The
configuration is `[tool.mutmut]` in pyproject.toml. It runs in a fresh clone of this checkout (mutmut
writes a `mutants/` folder beside the code), takes about three hours on 2 cores (docs/testing.md), and
is not part of CI.

    pip install "mutmut>=3.8,<4" psutil
    python scripts/mutation.py [--max-children N] [--keep DIR] [--memory-limit-gib 3] [MUTANT ...]

With --keep DIR the results stay in DIR, and running the script again with the same DIR resumes where
it stopped (mutmut keeps each mutant's verdict): the whole run can be spread over several sittings.
mutmut runs a mutant again only when its function changed, not when its tests did: name mutants (or
patterns such as 'hf_synth.llm.config.*settings*') to run just those again, say after adding a test.
Some mutants make the tests allocate memory without bound (one reached 20 GiB): any process of the run
that passes --memory-limit-gib is killed (mutmut then says "segfault"), and so is any mutant's process
that runs longer than --max-minutes (mutmut bounds CPU time only, and a test that hangs asleep uses
none); those mutants are reported apart.

Prints the share of mutants killed and the survivors by function (docs/testing.md discusses them).
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = [sys.executable, "-m", "mutmut"]  # the one installed beside this Python, on PATH or not


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-children", type=int, default=2 * (os.cpu_count() or 1),
                        help="mutants tested at once (default: twice the cores; the tests often wait on loopback)")
    parser.add_argument("--keep", help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("--memory-limit-gib", type=float, default=3.0, help="kill a mutant's tests past this")
    parser.add_argument("--max-minutes", type=float, default=20.0, help="kill a mutant's tests after this long")
    parser.add_argument("mutants", nargs="*", help="run only these mutants (names or patterns), even if done")
    args = parser.parse_args()
    folder = Path(args.keep or tempfile.mkdtemp(prefix="hf_synth_mutation_"))
    if not (folder / "pyproject.toml").exists():
        subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    stop = threading.Event()
    try:
        with open(folder / "mutmut.log", "w") as log:  # mostly its progress spinner
            mutmut = subprocess.Popen([*MUTMUT, "run", "--max-children", str(args.max_children), *args.mutants], cwd=folder,
                                      stdout=log, stderr=subprocess.STDOUT)
            threading.Thread(target=guard, args=(mutmut.pid, args.memory_limit_gib, args.max_minutes, stop),
                             daemon=True).start()
            mutmut.wait()
        stop.set()
        if mutmut.returncode not in (0, -signal.SIGKILL):
            last = (folder / "mutmut.log").read_text(errors="replace").replace("\r", "\n").splitlines()[-40:]
            sys.exit("mutmut stopped before testing the mutants:\n" + "\n".join(last))
        results = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=folder, capture_output=True,
                                 text=True).stdout
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    print(summary(results))


def guard(main: int, limit_gib: float, max_minutes: float, stop: threading.Event) -> None:
    """Kill any process mutmut forked (one per mutant under test, and what its tests start) whose
    resident memory passes `limit_gib` or that has run for `max_minutes`: mutmut bounds CPU time only."""
    mutmut = psutil.Process(main)
    while not stop.wait(2):
        for proc in mutmut.children(recursive=True):
            try:
                if (proc.memory_info().rss > limit_gib * 2**30
                        or time.time() - proc.create_time() > max_minutes * 60):
                    proc.kill()
            except psutil.Error:  # gone meanwhile
                continue


def summary(results: str) -> str:
    """The counts by outcome, the share killed of the mutants some test ran against, and the survivors
    grouped by function, from `mutmut results --all true`."""
    outcomes = collections.Counter()
    survivors = collections.Counter()
    for line in results.splitlines():
        match = re.match(r"\s*(\S+)__mutmut_\d+: (.+)$", line)
        if not match:
            continue
        name, outcome = match[1], match[2].strip()
        outcomes[outcome] += 1
        if outcome == "survived":
            survivors[name.replace("xǁ", "").replace("ǁ", ".").replace(".x_", ".")] += 1
    tested = outcomes["killed"] + outcomes["survived"] + outcomes["timeout"]
    lines = [f"mutants: {sum(outcomes.values())} — " + ", ".join(f"{k}: {v}" for k, v in outcomes.most_common()),
             f"killed: {outcomes['killed'] + outcomes['timeout']} of the {tested} that a test ran against "
             f"({(outcomes['killed'] + outcomes['timeout']) / tested:.1%})" if tested else "no mutant was tested",
             f"stopped by the memory or time limit (not counted above): {outcomes['segfault']}",
             "survivors by function:"]
    lines += [f"  {count:3d}  {name}" for name, count in survivors.most_common()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
