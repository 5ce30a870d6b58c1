"""Print the reliability table of docs/reliability.md: CoEvol (full mode, one round, 8 calls a row)
over 20 rows with each kind of fault injected into 30% of the requests, all kinds mixed (also for
ReviewInstruct and R2S), a rate-limited endpoint, and runs killed with SIGKILL at three points.

    python scripts/fault_table.py
"""
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import datasets  # noqa: E402
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit  # noqa: E402
from faults import KINDS, alpaca, run  # noqa: E402

from hf_synth import LLM, CoEvolTransform  # noqa: E402


def main() -> None:
    logging.disable(logging.WARNING)
    datasets.disable_progress_bars()
    print("| faults injected (30% of requests) | injected | rows in | rows out, in order | rows with errors "
          "| requests sent / minimum |")
    print("| --- | --- | --- | --- | --- | --- |")
    scenarios = [([kind], "coevol") for kind in KINDS] + [(list(KINDS), m) for m in ("coevol", "review", "r2s")]
    for kinds, method in scenarios:
        o = run(kinds, rows=20 if len(kinds) == 1 else 30, seed=1, method=method)
        print(f"| {o.faults}{'' if method == 'coevol' else f' ({method})'} | {sum(o.injected.values())} | {o.rows_in} | {o.rows_out}{', yes' if o.in_order else ', NO'} "
              f"| {o.rows_with_errors} | {o.sent} / {o.minimum} |")

    with FakeOpenAI(coevol_replies(prefer_edit), latency=0.05) as server:
        server.capacity = 6
        llm = LLM(model="m", base_url=server.url, max_concurrency=64, max_retries=10)
        out = alpaca(60).map(CoEvolTransform(llm, mode="edit", max_rounds=1, cache=False), batched=True)
        errors = sum(e is not None for e in out["coevol_error"])
        print(f"| 429 beyond 6 requests at once (no Retry-After), max_concurrency 64 | {server.injected['HTTP 429']} "
              f"| 60 | 60, yes | {errors} | {len(server.requests)} / 60 |")

    import test_resume
    for num_proc in (0, 2):
        with tempfile.TemporaryDirectory() as folder:
            test_resume.test_killed_runs_resume_and_pay_only_for_the_requests_in_flight(Path(folder), num_proc)


if __name__ == "__main__":
    main()
