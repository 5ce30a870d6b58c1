"""One URL of one LLM, and how hard to press it.

An `Endpoint` sends requests through its transport under one adaptive concurrency limit shared by
every row (halved on 429, regrown slowly), the LLM's optional rate budgets, and what a hosted API says
is left of its own limits (``x-ratelimit-*`` headers: when one is spent, new requests wait for its
reset instead of drawing 429s). What a failure means —
retry it, mark the row, or stop the run — is decided by `failures.classify`: retries with exponential
backoff and full jitter (honouring ``Retry-After``) within the request's `max_retries` and, except
429s, the run's retry budget. Only the endpoint's failures count toward stopping a run: when at least
half of the last requests failed, when no connection can be made at all, or when the endpoint
answered none of a batch's requests. Every run (a batch) starts with a fresh window.

The retry loop is written out rather than built per request from a library: it runs for every
request, and its decisions read state the endpoint shares across requests (the breaker, the budget).
"""
from __future__ import annotations

import asyncio
import random
import time

from ..errors import CallFailed, EndpointError
from .config import LLM, without_credentials
from .failures import (ENDPOINT, RUN, ConnectionFailed, NotACompletion, StatusError, TransportFailure, classify, describe,
                       retry_after)
from .pacing import AdaptiveLimit, ErrorRate, RateBudget, RetryBudget
from .transport import Completion, Transport

# An endpoint is declared unreachable after this many attempts in a row that could not connect at
# all, when it has not answered in this run or not for OUTAGE_SECONDS.
CONNECTION_FAILURES_TO_GIVE_UP = 8
OUTAGE_SECONDS = 120.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0


def wait_before_retry(exc: BaseException, retry: int) -> float:
    """Seconds to wait before retry number `retry` (1 for the first) after `exc`: what the server
    asked for, else a random wait up to 0.5 s, 1 s, 2 s, … 30 s (exponential backoff, full jitter)."""
    asked = retry_after(exc)
    return asked if asked is not None else random.uniform(0, min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (retry - 1)))


class Endpoint:
    """Sends one LLM's requests to one of its URLs through `transport`."""

    def __init__(self, llm: LLM, transport: Transport, budget: RateBudget | None = None):
        self.llm = llm
        self.transport = transport
        self.budget = budget  # shared by the LLM's replicas
        self.limit = AdaptiveLimit(llm.max_concurrency)
        self._resume_at = 0.0  # no request is sent before (time.monotonic()): a rate limit is spent
        self.begin_run()

    def begin_run(self) -> None:
        """Forget the last run's failures: every run gives the endpoint a new chance."""
        self.fatal: EndpointError | None = None  # set once the endpoint cannot serve this run
        self.completed = 0           # requests of this run that got a completion
        self.endpoint_failures = 0   # requests of this run that failed for good by the endpoint's fault
        self.last_failure: str | None = None
        self._retry_budget = RetryBudget()
        self._errors = ErrorRate()
        self._cannot_connect = 0
        self._last_answer: float | None = None

    @property
    def where(self) -> str:
        if self.llm.embedded:
            return "the embedded llama.cpp server"
        url = self.transport.base_url
        return self.llm.endpoint_id if url == self.llm.base_url else without_credentials(url)

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self.llm.timeout, self.llm.api_key.reveal())

    async def complete(self, body: dict, messages) -> tuple[Completion, int]:
        """The completion of the request `body` and how many retries it took; `CallFailed` when this
        request failed for good, `EndpointError` when the endpoint cannot serve this run. `messages`
        are counted against the token budget."""
        if self.fatal is not None:
            raise self.fatal
        try:
            completed = await self._complete(body, messages)
        except EndpointError as error:
            self.fatal = self.fatal or error
            raise self.fatal from None
        except CallFailed as failed:
            if self.fatal is not None:  # decided while this request was failing: report that instead
                raise self.fatal from None
            if failed.blame == ENDPOINT:
                self.endpoint_failures += 1
                self.last_failure = str(failed)
                self._errors.record(True)
                if self._errors.too_high():
                    self.fatal = EndpointError(
                        f"{self.where} is failing: {self._errors.describe()} after their retries (the last: "
                        f"{failed}); completed requests are cached, so the same run resumes when the endpoint is well.")
            raise
        self._errors.record(False)
        self.completed += 1
        return completed

    async def _complete(self, body: dict, messages) -> tuple[Completion, int]:
        self._retry_budget.requested()
        retries = 0
        while True:
            try:
                return await self._attempt(body, messages), retries
            except TransportFailure as exc:
                failure = classify(exc)
                may = failure.retry and retries < self.llm.max_retries
                if not (may and self.fatal is None and (failure.rate_limited or self._retry_budget.withdraw())):
                    attempts = retries + 1
                    raise CallFailed(f"{self._describe(exc)} (after {attempts} attempt{'s' * (attempts > 1)}"
                                     f"{'; the run has used up its retry budget' if may else ''})",
                                     blame=failure.blame) from None
                retries += 1
                await asyncio.sleep(wait_before_retry(exc, retries))

    async def _attempt(self, body: dict, messages) -> Completion:
        """One attempt; keeps count of connections that could not be made."""
        if self.budget is not None:
            await self.budget.spend(messages)
        await self.limit.acquire()
        try:
            while (paused := self._resume_at - time.monotonic()) > 0:  # the API said a limit is spent
                await asyncio.sleep(paused)
            sent_at = time.monotonic()
            if self.fatal is not None:  # decided while this request waited: do not send it
                raise self.fatal
            try:
                completion = await self.transport.send(body)
            except StatusError as exc:
                self._answered()
                failure = classify(exc)
                if failure.rate_limited:
                    self.limit.rate_limited(sent_at)
                elif failure.blame == RUN:  # said while holding the slot: nothing more is sent
                    raise EndpointError(await self._stop_message(exc)) from None
                raise
            except NotACompletion:
                self._answered()
                raise
            except ConnectionFailed as exc:
                if classify(exc).unreachable:
                    self._cannot_connect += 1
                    outage = self._last_answer is None or time.monotonic() - self._last_answer > OUTAGE_SECONDS
                    if self._cannot_connect >= CONNECTION_FAILURES_TO_GIVE_UP and outage:
                        raise EndpointError(f"Cannot reach the LLM endpoint {self.where} ({self._describe(exc)} "
                                            f"{self._cannot_connect} times in a row): is the server running and "
                                            "base_url right?") from None
                raise
        finally:
            self.limit.release()
        self._answered()
        self.limit.succeeded()
        if completion.headroom is not None:  # pace before the 429, not after it
            pause = completion.headroom.pause(self.llm.max_tokens)
            if pause > 0:
                self._resume_at = max(self._resume_at, time.monotonic() + pause)
        return completion

    def _answered(self) -> None:
        self._cannot_connect = 0
        self._last_answer = time.monotonic()

    async def _stop_message(self, exc: StatusError) -> str:
        if exc.status == 401:
            return (f"{self.where} rejected the API key (401): set {self.llm.api_key_env} or pass LLM(api_key=...) "
                    "with a valid key.")
        if exc.status == 403:
            return f"{self.where} refused access to model {self.llm.model!r} (403): check the key's permissions."
        if exc.status < 400:
            where = exc.headers.get("Location") or exc.headers.get("location")
            return (f"{self.where} answered with a redirect ({exc.status}{f' to {without_credentials(where)}' if where else ''}): "
                    "check base_url= (its scheme, host and path, usually ending in /v1).")
        served = await self.transport.served_models() if hasattr(self.transport, "served_models") else []
        if served:
            return (f"{self.where} has no model {self.llm.model!r} (404); it serves "
                    f"{', '.join(map(repr, served[:10]))}{' …' if len(served) > 10 else ''}: check model=.")
        return (f"{self.where} has no model {self.llm.model!r} or no chat completions route (404): check model= "
                "and base_url= (it usually ends in /v1).")
