"""What a run will cost before paying for it: run a sample of rows, then project the requests, tokens,
cost (online and at batch prices) and time of the whole dataset, with a range from the sample's spread.

The sample's replies go into the request cache, so the real run does not pay for them again.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

from .. import status
from ..status import duration, short
from ..llm.prices import BATCH_DISCOUNT, cost, prices_of

Z = 1.96  # the range is the 95% interval of the mean, scaled to the dataset


@dataclass
class Projection:
    expected: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{short(round(self.expected))} ({short(round(self.low))}–{short(round(self.high))})"


@dataclass
class Estimate:
    rows: int                       # in the dataset
    sample: int                     # rows run
    requests: Projection
    prompt_tokens: Projection
    completion_tokens: Projection
    cost: Projection | None         # US$ at the online price (None: no price known)
    batch_cost: Projection | None   # through a batch API
    seconds: float | None           # at the LLM's concurrency (None: the sample was all cached)
    failed: int                     # sample rows that failed

    def lines(self) -> list[str]:
        said = [f"estimate for {self.rows} rows, from {self.sample} run now (their replies are cached: the run "
                "will not pay for them again); ranges: the 95% interval from the sample's spread",
                f"requests: {self.requests}", f"tokens: {self.prompt_tokens} in, {self.completion_tokens} out"]
        if self.cost is not None:
            said.append(f"cost: ${self.cost.expected:,.2f} (${self.cost.low:,.2f}–${self.cost.high:,.2f}) online, "
                        f"${self.batch_cost.expected:,.2f} through a batch API")
        else:
            said.append("cost: unknown (no price for this model: pass --prices IN,OUT)")
        if self.seconds is not None:
            said.append(f"time: about {duration(self.seconds)} online at this concurrency")
        if self.failed:
            said.append(f"{self.failed} of the {self.sample} sample rows failed: see their errors before the run")
        return said


def spread(rows: int, sample: int) -> list[int]:
    """`sample` row indices spread evenly over `rows` (deterministic: the same every time)."""
    if sample >= rows:
        return list(range(rows))
    return [int(i * rows / sample) for i in range(sample)]


def estimate(dataset, transform, *, rows: int = 20, batch_size: int | None = None) -> Estimate:
    """Run `transform` over `rows` rows of `dataset` spread over it, and project the whole run."""
    part = dataset.select(spread(len(dataset), rows))
    before = dict(vars(status.counts()))
    started = time.monotonic()
    out = part.map(transform, batched=True, batch_size=batch_size or max(len(part), 1), load_from_cache_file=False)
    wall = time.monotonic() - started
    after = status.counts()
    usage = out[f"{transform.prefix}_usage"]
    calls = [u["calls"] for u in usage]
    prompt = [u["prompt_tokens"] for u in usage]
    completion = [u["completion_tokens"] for u in usage]
    prices = prices_of(transform.llm.model, transform.llm.prices)
    # (one price for the whole run: the default LLM's; agents with models of their own are not priced apart)
    dollars = [cost(prices, p, c) for p, c in zip(prompt, completion)] if prices else None
    sent = after.sent - before.get("sent", 0)
    latency = (after.request_ms - before.get("request_ms", 0)) / 1000 / sent if sent else None
    total_requests = _project(calls, len(dataset))
    seconds = None
    if latency is not None:
        concurrency = transform.llm.max_concurrency * max(len(transform.llm.replicas), 1)
        seconds = max(wall, total_requests.expected * latency / concurrency)
    return Estimate(
        rows=len(dataset), sample=len(part), requests=total_requests, prompt_tokens=_project(prompt, len(dataset)),
        completion_tokens=_project(completion, len(dataset)),
        cost=_project(dollars, len(dataset)) if dollars else None,
        batch_cost=_project([d * BATCH_DISCOUNT for d in dollars], len(dataset)) if dollars else None,
        seconds=seconds, failed=sum(error is not None for error in out[f"{transform.prefix}_error"]))


def _project(values: list[float], rows: int) -> Projection:
    mean = statistics.fmean(values) if values else 0.0
    half = Z * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return Projection(mean * rows, max(0.0, mean - half) * rows, (mean + half) * rows)
