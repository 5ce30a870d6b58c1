"""Live run status: rows done and failed, requests sent / cached / in flight, retries, tokens in and
out, throughput, time left and cost — while a job runs, not only at its end.

Every process that runs rows (the main one, each `num_proc` worker) writes its counts (`RunStats`) to
a small JSON file in a status folder twice a second; a display thread in the process that shows the
status sums the files. So workers report into the same status whatever starts them, and the hot path
only increments counters it already kept. The display is a tqdm bar (a widget in Jupyter); without a
terminal it logs one line every `log_every` seconds.

    with hf_synth.status.show(total=len(ds), prices=(0.15, 0.60)):
        out = ds.map(CoEvolTransform(llm), batched=True, num_proc=2)
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .errors import as_what_happened
from .llm.prices import prices_of

logger = logging.getLogger("hf_synth.status")

FOLDER_VARIABLE = "HF_SYNTH_STATUS_DIR"  # inherited by forked and spawned workers
WRITE_EVERY = 0.5
OLDEST_SHOWN = 10.0  # seconds a request has been in flight before the status line gives its age



@dataclass
class RunStats:
    """What a process did (`counts()`), or the sum over the processes of a run.
    Tokens are those of the requests sent (what a hosted API bills), not of cached replies."""

    rows: int = 0
    rows_failed: int = 0
    rows_paid: int = 0        # rows that waited on at least one request (not all served from the cache)
    sent: int = 0
    cached: int = 0
    in_flight: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_microusd: int = 0    # what the requests sent cost, where their prices are known (US$ / 1e6)
    request_ms: int = 0       # the time the requests sent took, summed
    batches: int = 0          # batches in flight (the batch API)
    batch_requests: int = 0   # the requests they carry
    batch_since: int = 0      # when the oldest of them was made (Unix seconds; 0: none in flight)
    request_since: int = 0    # when the oldest request in flight was sent (Unix seconds; 0: none)

    def add(self, other: dict) -> None:
        for f in fields(self):
            value = int(other.get(f.name, 0))
            if f.name in ("batch_since", "request_since"):  # (the oldest, not a sum)
                setattr(self, f.name, min(filter(None, (getattr(self, f.name), value)), default=0))
            else:
                setattr(self, f.name, getattr(self, f.name) + value)


class _Process:
    """This process's counts, and the status folder it reports them to (a worker of a run whose status
    is shown finds the folder in its environment)."""

    def __init__(self):
        self.pid = os.getpid()
        self.stats = RunStats()
        self.folder: str | None = None
        self.since = RunStats()

    def report_to(self, folder: str | None) -> None:
        started = self.folder is not None
        self.folder = folder
        self.since = replace(self.stats)  # what this process had done before
        if folder and not started:
            from .llm import loop

            asyncio.run_coroutine_threadsafe(self._report(), loop.process_loop())

    def write_now(self) -> None:
        if self.folder:
            write(self.folder, self.stats, self.since)

    async def _report(self) -> None:
        while self.folder:
            self.write_now()
            await asyncio.sleep(WRITE_EVERY)


_process: _Process | None = None


def this_process() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = _Process()
        _process.report_to(os.environ.get(FOLDER_VARIABLE))
    return _process


def counts() -> RunStats:
    """What this process has done so far (rows, requests, tokens): the runner and the LLM door count
    into it."""
    return this_process().stats


def write(folder: str, stats, since=None) -> None:
    """This process's counts (what it did after the counts `since`), replaced atomically: a reader
    never sees half a file."""
    counts = asdict(stats)
    if since is not None:
        counts = {name: value - getattr(since, name) for name, value in counts.items()}
    path = Path(folder) / f"{os.getpid()}.json"
    scratch = path.with_suffix(".tmp")
    try:
        scratch.write_text(json.dumps(counts))
        scratch.replace(path)
    except OSError:  # the status ended (its folder is gone): nothing to report to
        pass


def read(folder: str) -> RunStats:
    total = RunStats()
    for path in Path(folder).glob("*.json"):
        try:
            total.add(json.loads(path.read_text()))
        except (OSError, ValueError):  # being replaced right now: the next look will have it
            continue
    return total


def line(counts: RunStats, seconds: float, total: int | None = None, prices: tuple[float, float] | None = None) -> str:
    """The status in one line, e.g. `rows 120/500 (3 failed) | requests 840 answered, 96 cached, 32 in
    flight, 4 retries | tokens 1.2M in, 310k out | 14.2 req/s | left ~2m40s | $0.37`."""
    parts = [f"rows {counts.rows}" + (f"/{total}" if total else "") + (f" ({counts.rows_failed} failed)"
                                                                        if counts.rows_failed else "")]
    # the oldest request's age, once it is worth saying: a slow endpoint, not a hung run
    waited = time.time() - counts.request_since if counts.in_flight and counts.request_since else 0
    notes = [f"the oldest waiting {duration(waited)}"] if waited >= OLDEST_SHOWN else []
    typical = counts.request_ms / 1000 / counts.sent if counts.sent else 0
    if notes and typical and waited >= 5 * typical:  # one request far behind the others: say so
        notes.append(f"{waited / typical:.0f}x the average request")
    oldest = f" ({', '.join(notes)})" if notes else ""
    parts.append(f"requests {counts.sent} answered, {counts.cached} cached, {counts.in_flight} in flight{oldest}, "
                 f"{counts.retries} retries" + (f", {counts.failed} failed" if counts.failed else ""))
    if counts.batches:
        parts.append(f"batches {counts.batches} in flight ({counts.batch_requests} requests), oldest made "
                     f"{duration(max(0.0, time.time() - counts.batch_since))} ago")
    parts.append(f"tokens {short(counts.prompt_tokens)} in, {short(counts.completion_tokens)} out")
    if seconds > 0:
        parts.append(f"{counts.sent / seconds:.1f} req/s")
    # the rows left are reckoned at the pace of the rows that were paid for: rows the cache answered
    # whole take no time and cost nothing, and would make a resumed run look nearly done
    ahead = total - counts.rows if total and counts.rows_paid and counts.rows < total else 0
    if ahead:
        parts.append(f"left ~{duration(seconds * ahead / counts.rows_paid)}")
    if counts.cost_microusd or prices:
        cost = counts.cost_microusd / 1e6 if counts.cost_microusd else \
            (counts.prompt_tokens * prices[0] + counts.completion_tokens * prices[1]) / 1e6
        projected = f" (~${cost + cost * ahead / counts.rows_paid:.2f} in all)" if ahead else ""
        parts.append(f"${cost:.2f}{projected}")
    return " | ".join(parts)


@dataclass
class Live:
    """What `show` yields: `counts`, the run's final counts, once the block has ended."""

    counts: RunStats | None = None


@contextmanager
def show(total: int | None = None, *, prices: tuple[float, float] | None = None, model: str | None = None,
         batch: bool = False, every: float = 1.0, log_every: float = 30.0, stream=None):
    """Show the status of the rows mapped inside this block: a tqdm bar on a terminal or in Jupyter,
    a log line every `log_every` seconds otherwise. `total` is the rows expected (several steps: their
    sum); the cost shown is what the requests sent cost at their LLMs' prices, else at `prices` (US$ per
    million input and output tokens; default: the price table's for `model`; with `batch`, at half).
    Yields a `Live` whose `counts` hold every process's totals once the block ends. Ctrl-C under
    `num_proc` comes out of the block as a KeyboardInterrupt and a killed worker as a `WorkerDied`
    (`errors.as_what_happened`), not as the pool errors `Dataset.map` raises for them."""
    prices = prices_of(model, prices, batch)
    stream = stream or sys.stderr
    live = Live()
    _remove_abandoned()
    folder = tempfile.mkdtemp(prefix=FOLDER_PREFIX)
    Path(folder, OWNER).write_text(str(os.getpid()))
    previous = os.environ.get(FOLDER_VARIABLE)
    os.environ[FOLDER_VARIABLE] = folder
    this_process().report_to(folder)  # this process's rows, when it runs them itself
    stop, failed = threading.Event(), threading.Event()
    started = time.monotonic()
    thread = threading.Thread(target=_display, args=(folder, total, prices, every, log_every, stream, stop, started,
                                                     failed), name="hf_synth-status", daemon=True)
    thread.start()
    try:
        yield live
    except BaseException as exc:
        failed.set()  # the error is what the user needs to read, not a last status line above it
        plain = as_what_happened(exc)
        if plain is exc:
            raise
        raise plain from None
    finally:
        stop.set()
        thread.join(5)
        this_process().report_to(None)
        live.counts = read(folder)
        if previous is None:
            os.environ.pop(FOLDER_VARIABLE, None)
        else:
            os.environ[FOLDER_VARIABLE] = previous
        shutil.rmtree(folder, ignore_errors=True)


FOLDER_PREFIX, OWNER = "hf_synth_status_", "owner.pid"


def _remove_abandoned() -> None:
    """Remove the status folders of runs that were killed before they could (SIGKILL, a machine
    stopped): ours by their name and owner file, whose process is gone."""
    for folder in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*"):
        try:
            owner = int((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # not one of ours, or one being made: left alone
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # alive (another user's process): left alone


def _display(folder, total, prices, every, log_every, stream, stop, started, failed) -> None:
    interactive = hasattr(stream, "isatty") and stream.isatty() or _in_notebook()
    bar = None
    if interactive:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="row", desc="hf_synth", file=stream, dynamic_ncols=True)
    logged = started
    while True:
        done = stop.wait(every)
        if done and failed.is_set():
            break
        counts = read(folder)
        seconds = time.monotonic() - started
        if bar is not None:
            bar.update(counts.rows - bar.n)
            bar.set_postfix_str(line(counts, seconds, None, prices).split(" | ", 1)[1], refresh=True)
        elif done or time.monotonic() - logged >= log_every:
            logged = time.monotonic()
            if logger.isEnabledFor(logging.INFO) and logger.hasHandlers():
                logger.info("%s", line(counts, seconds, total, prices))
            else:  # logging is not set up (a script, a notebook's stderr): say it on the stream itself
                print(f"hf_synth: {line(counts, seconds, total, prices)}", file=stream, flush=True)
        if done:
            break
    if bar is not None:
        bar.close()


def _in_notebook() -> bool:
    # A notebook's kernel has imported IPython already; importing it here would cost a script with
    # IPython installed a tenth of a second of the event loop's time, in the display thread.
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def short(n: int) -> str:
    """A count in few characters: 950, 12k, 1.2M."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}k" if n >= 1e4 else str(n)


def duration(seconds: float) -> str:
    """Seconds as 45s, 2m40s or 1h05m."""
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
