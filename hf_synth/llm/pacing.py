"""How hard an endpoint may be pressed: an adaptive concurrency limit, optional request and token
rate budgets, a retry budget, and the error rate at which a run gives up. Pure bookkeeping on one event loop; no I/O."""
from __future__ import annotations

import asyncio
import time
from collections import deque

from aiolimiter import AsyncLimiter


class AdaptiveLimit:
    """At most `limit` requests in flight, between 1 and `maximum`: additive increase, multiplicative
    decrease. A 429 halves the limit — once per round trip: a 429 to a request sent before the last
    cut does not cut again — and every `limit` successes add one, back up to `maximum`."""

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self.cuts = 0
        self._cut_at = float("-inf")
        self._waiting: deque[asyncio.Future] = deque()  # first come, first served

    async def acquire(self) -> None:
        """Wait for a slot for one attempt (`release` it after)."""
        if self.in_flight >= int(self.limit) or self._waiting:
            # A freed slot is handed to one waiter, not announced to all: with thousands of rows
            # waiting, waking them all on every reply would cost more CPU than the requests.
            ready = asyncio.get_running_loop().create_future()
            self._waiting.append(ready)
            try:
                await ready
            except asyncio.CancelledError:
                if ready.done() and not ready.cancelled():
                    self.release()  # it was handed a slot it will not use
                raise
        else:
            self.in_flight += 1

    @property
    def outstanding(self) -> int:
        """Requests in flight or waiting for a slot."""
        return self.in_flight + len(self._waiting)

    def release(self) -> None:
        self.in_flight -= 1
        while self._waiting and self.in_flight < int(self.limit):
            ready = self._waiting.popleft()
            if not ready.done():  # a cancelled waiter is skipped
                self.in_flight += 1
                ready.set_result(None)

    def rate_limited(self, sent_at: float) -> None:
        if sent_at >= self._cut_at:
            self.limit = max(1.0, self.limit / 2)
            self._cut_at = time.monotonic()
            self.cuts += 1

    def succeeded(self) -> None:
        self.limit = min(float(self.maximum), self.limit + 1 / self.limit)


class RateBudget:
    """Optional requests-per-minute and tokens-per-minute budgets of a hosted API (leaky buckets that
    start full). A request's tokens are counted before it is sent, as its prompt's characters / 4
    plus `max_tokens`, the way hosted APIs count a request against a token limit."""

    def __init__(self, requests_per_minute: int | None, tokens_per_minute: int | None, max_tokens: int):
        self.requests = AsyncLimiter(requests_per_minute, 60) if requests_per_minute else None
        self.tokens = AsyncLimiter(tokens_per_minute, 60) if tokens_per_minute else None
        self.max_tokens = max_tokens

    async def spend(self, messages) -> None:
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None:
            estimate = sum(len(m.get("content") or "") for m in messages) // 4 + self.max_tokens
            await self.tokens.acquire(min(estimate, self.tokens.max_rate))


class RetryBudget:
    """Retries may add at most `ratio` to the requests sent, plus a `reserve` to start with, and a
    healthy run banks at most `cap` (the Finagle/gRPC retry budget): when most requests fail, the run
    stops multiplying its load and fails fast instead."""

    def __init__(self, ratio: float = 0.5, reserve: float = 20.0, cap: float = 100.0):
        self.ratio = ratio
        self.cap = cap
        self.tokens = reserve

    def requested(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ErrorRate:
    """Whether the endpoint has gone bad: at least `share` of the last `window` requests failed for
    good (after their retries), counting once `minimum` have."""

    def __init__(self, window: int = 50, share: float = 0.5, minimum: int = 10):
        self.share = share
        self.minimum = minimum
        self._outcomes: deque[bool] = deque(maxlen=window)

    def record(self, failed: bool) -> None:
        self._outcomes.append(failed)

    @property
    def failed(self) -> int:
        return sum(self._outcomes)

    def too_high(self) -> bool:
        return self.failed >= self.minimum and self.failed >= self.share * len(self._outcomes)

    def describe(self) -> str:
        return f"{self.failed} of the last {len(self._outcomes)} requests failed"
