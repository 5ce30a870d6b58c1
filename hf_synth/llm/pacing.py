"""How hard an endpoint may be pressed: an adaptive concurrency limit, optional request and token
rate budgets, a retry budget, and the breaker that tells a failing endpoint from failing rows. Pure bookkeeping on one event loop; no I/O."""
from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque

from aiolimiter import AsyncLimiter


class AdaptiveLimit:
    """At most `limit` requests in flight, between 1 and `maximum`: additive increase, multiplicative
    decrease. Sustained rate limiting — a quarter or more of the last `limit` answers were 429s, once at
    least half of them are in — halves the limit, once per round trip (a 429 to a request sent before
    the last cut does not cut again); isolated 429s, which hosted APIs sprinkle even well under their
    limits, are only retried. Every `limit` successes add one, back up to `maximum`."""

    SUSTAINED = 0.25

    def __init__(self, maximum: int):
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self.cuts = 0
        self._cut_at = float("-inf")
        self._answers: deque[bool] = deque(maxlen=maximum)  # the last answers, True for a 429
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
        self._answers.append(True)
        if sent_at >= self._cut_at and self._sustained():
            self.limit = max(1.0, self.limit / 2)
            self._cut_at = time.monotonic()
            self.cuts += 1

    def _sustained(self) -> bool:
        recent = list(itertools.islice(reversed(self._answers), int(self.limit)))
        return len(recent) >= self.limit / 2 and sum(recent) >= self.SUSTAINED * len(recent)

    def succeeded(self) -> None:
        self._answers.append(False)
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
    """Retries may add at most `ratio` to the requests sent, plus `per_second` retries a second whatever
    was sent (so a client slowed by a busy machine is not starved), plus a `reserve` to start with; a
    healthy run banks at most `cap` (the Finagle/gRPC retry budget): when most requests fail, the
    endpoint's load stops multiplying and requests fail fast instead."""

    def __init__(self, ratio: float = 0.5, reserve: float = 20.0, cap: float = 100.0, per_second: float = 10.0):
        self.ratio = ratio
        self.cap = cap
        self.per_second = per_second
        self.tokens = reserve
        self._refilled = time.monotonic()

    def requested(self) -> None:
        self.tokens = min(self.cap, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.cap, self.tokens + (now - self._refilled) * self.per_second)
        self._refilled = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Breaker:
    """Whether an endpoint has stopped serving, judged by whether *other* requests complete — not by the
    share of failures, which a cluster of bad rows (over-long prompts a proxy times out with a 504)
    can dominate while the endpoint serves every other row.

    A failure is a suspect only when no request completed after it was sent; a completion clears the
    counts. Once `next_look` failed attempts are suspects in a row, an endpoint that served this job
    should be looked at (`attempt_failed` says so); if it turns out to be serving, those were their rows'
    failures and the next look comes after twice as many (`serving`). An endpoint that never served
    this job is failing once `first_look` requests in a row failed for good (`request_failed`): each
    after its retries, so a few fast errors before the first slow completion stop nothing."""

    def __init__(self, first_look: int = 10):
        self.first_look = self.next_look = first_look
        self.attempts = 0   # suspect attempts in a row
        self.requests = 0   # suspect requests in a row (failed for good)
        self.last_completion = float("-inf")

    def completed(self) -> None:
        self.last_completion = time.monotonic()
        self.attempts = self.requests = 0
        self.next_look = self.first_look

    def attempt_failed(self, sent_at: float) -> bool:
        """Count an attempt sent at `sent_at` that failed; whether to look at the endpoint now."""
        if self.last_completion >= sent_at:
            return False  # others completed meanwhile: it failed alone
        self.attempts += 1
        return self.attempts >= self.next_look

    def request_failed(self, first_sent: float) -> bool:
        """Count a request first sent at `first_sent` that failed for good; whether `first_look` did so in
        a row."""
        if self.last_completion >= first_sent:
            return False
        self.requests += 1
        return self.requests >= self.first_look

    def serving(self) -> None:
        self.last_completion = time.monotonic()
        self.next_look = max(self.first_look, self.attempts * 2)  # (a completion meanwhile reset the count)
