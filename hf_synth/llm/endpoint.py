"""One URL of one LLM, and how hard to press it.

An `Endpoint` sends requests through its transport under one adaptive concurrency limit shared by
every row (halved on 429, regrown slowly), the LLM's optional rate budgets, and what a hosted API says
is left of its own limits (``x-ratelimit-*`` headers: when one is spent, new requests wait for its
reset instead of drawing 429s). What a failure means —
retry it, mark the row, or stop the run — is decided by `failures.classify`: retries with exponential
backoff and full jitter (honouring ``Retry-After``) within the request's `max_retries` and, except
429s, the run's retry budget. A request that still fails marks its row. The run stops when no
connection can be made at all, or when attempts keep failing with none completing meanwhile and the
endpoint has never served this job or no longer completes a request it completed before
(`pacing.Breaker`): a cluster of bad rows is theirs, not the endpoint's.

The retry loop is written out rather than built per request from a library: it runs for every
request, and its decisions read state the endpoint shares across requests (the breaker, the budget).
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Callable

from ..errors import CallFailed, EndpointError
from .config import LLM, without_credentials
from .failures import (ENDPOINT, RUN, NotACompletion, StatusError, TransportFailure, classify, describe,
                       refuses_constraint, retry_after)
from .pacing import AdaptiveLimit, Breaker, RateBudget, RetryBudget
from .transport import Completion, Transport

# An endpoint is declared unreachable after this many attempts in a row that could not connect at
# all, when it has not answered in this run or not for OUTAGE_SECONDS.
CONNECTION_FAILURES_TO_GIVE_UP = 8
OUTAGE_SECONDS = 120.0
BACKOFF_FIRST, BACKOFF_MAX = 0.5, 30.0
RESUME = "completed requests are cached, so the same run resumes when the endpoint is well."


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
        # a batch API queues what it is given: no limit on requests in flight, no pause before a retry
        self.paced = getattr(transport, "paced", True)
        self.limit = AdaptiveLimit(llm.max_concurrency if self.paced else 1 << 30)
        self._resume_at = 0.0  # no request is sent before (time.monotonic()): a rate limit is spent
        # a request of this job it completed (or the cache holds), asked again to see it still serves;
        # None while it has served none
        self.canary: dict | None = None
        self._retry_budget = RetryBudget(cap=max(100.0, 2.0 * llm.max_concurrency))  # the endpoint's load, across runs
        self.before_send: Callable[[], None] | None = None  # called as each attempt goes out (the door's)
        self.begin_run()

    def begin_run(self) -> None:
        """Forget the last run's failures: every run gives the endpoint a new chance."""
        self.fatal: EndpointError | None = None  # set once the endpoint cannot serve this run
        self.completed = 0           # requests of this run that got a completion
        self.endpoint_failures = 0   # requests of this run that failed for good by the endpoint's fault
        self.last_failure: str | None = None
        self._breaker = Breaker()
        self._judging = False
        self._judged = asyncio.Event()  # cleared while the endpoint is being judged: nothing new is sent
        self._sending = 0                # attempts sent and not yet answered
        self._sent_back = asyncio.Event()  # set as each is answered
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
        self._retry_budget.requested()
        retries, first_sent = 0, None
        try:
            while True:
                try:
                    completion = await self._attempt(body, messages)
                except TransportFailure as exc:
                    first_sent = first_sent or exc.sent_at
                    await self._before_retry(exc, retries, first_sent)
                    retries += 1
                    continue
                self._breaker.completed()
                self.completed += 1
                self.canary = body
                return completion, retries
        except EndpointError as error:  # no request can succeed: the endpoint cannot serve this run
            self.fatal = self.fatal or error
            raise self.fatal from None

    async def _before_retry(self, exc: TransportFailure, retries: int, first_sent: float) -> None:
        """What the failed attempt `exc` means, after `retries` retries of a request first sent at
        `first_sent`: returns once it is time to retry; raises `CallFailed` when the request fails for
        good, `EndpointError` when the run must stop."""
        failure = classify(exc)
        may = failure.retry and retries < self.llm.max_retries
        retry = may and self.fatal is None and (failure.rate_limited or not self.paced or self._retry_budget.withdraw())
        if failure.blame == ENDPOINT and self.canary is not None and (not retry or not failure.rate_limited) and \
                self._breaker.attempt_failed(exc.sent_at):
            await self._judge(self._describe(exc))
        if self.fatal is not None:  # decided while this request was failing: report that instead
            raise self.fatal from None
        if retry:
            if self.paced:
                await asyncio.sleep(wait_before_retry(exc, retries + 1))
            return
        attempts = retries + 1
        failed = CallFailed(f"{self._describe(exc)} (after {attempts} attempt{'s' * (attempts > 1)}"
                            f"{'; the run has used up its retry budget' if may else ''})", blame=failure.blame)
        if failure.blame == ENDPOINT:
            self.endpoint_failures += 1
            self.last_failure = str(failed)
            if self.canary is None and self._breaker.request_failed(first_sent):
                self.fatal = EndpointError(
                    f"{self.where} is failing: {self._breaker.requests} requests in a row failed after their "
                    f"retries, and it has completed none of this job's requests (the last: {failed}); {RESUME}")
                raise self.fatal from None
        raise failed from None

    async def _judge(self, last: str) -> None:
        """Attempts keep failing with nothing completing meanwhile. Is the endpoint still serving? It is
        asked again a request it completed before (`canary`): if it completes it, those were their rows'
        failures and the run goes on. If not, the requests already sent are waited for: one of them
        completing says the same (a hosted API that sprinkles errors fails a canary too, and answers
        errors at once while completions take their time); none completing stops the run. Nothing new is
        sent while it is judged."""
        if self._judging:
            return
        self._judging = True
        self._judged.clear()
        failed, looked_at = self._breaker.attempts, time.monotonic()
        try:
            try:
                await self.transport.send(self.canary)
            except TransportFailure as exc:
                while self._sending and self._breaker.last_completion < looked_at:
                    self._sent_back.clear()
                    await self._sent_back.wait()
                if self._breaker.last_completion < looked_at:
                    self.fatal = self.fatal or EndpointError(
                        f"{self.where} is failing: its last {failed} attempts failed with none completing "
                        f"meanwhile, and it no longer completes a request it completed before "
                        f"({self._describe(exc)}) (the last: {last}); {RESUME}")
            if self.fatal is None:
                self._breaker.serving()
        finally:
            self._judging = False
            self._judged.set()

    async def _attempt(self, body: dict, messages) -> Completion:
        """One attempt; keeps count of connections that could not be made."""
        if self.budget is not None:
            await self.budget.spend(messages)
        await self.limit.acquire()
        try:
            if self._judging:
                await self._judged.wait()
            while (paused := self._resume_at - time.monotonic()) > 0:  # the API said a limit is spent
                await asyncio.sleep(paused)
            sent_at = time.monotonic()
            if self.fatal is not None:  # decided while this request waited: do not send it
                raise self.fatal
            self._sending += 1
            if self.before_send is not None:
                self.before_send()
            try:
                completion = await self.transport.send(body)
            except TransportFailure as exc:
                exc.sent_at = sent_at  # the breaker asks whether anything completed since
                await self._note(exc, body)
                raise
            finally:
                self._sending -= 1
                self._sent_back.set()
        finally:
            self.limit.release()
        self._answered()
        self.limit.succeeded()
        if completion.headroom is not None:  # pace before the 429, not after it
            pause = completion.headroom.pause(self.llm.max_tokens)
            if pause > 0:
                self._resume_at = max(self._resume_at, time.monotonic() + pause)
        return completion

    async def _note(self, exc: TransportFailure, body: dict) -> None:
        """What a failed attempt says about the endpoint: it answered (the connection works), it asks
        to be pressed less (429), no request can succeed (a `RUN` failure, or a refused reply-shape
        constraint: said while holding the slot, so nothing more is sent), or no connection can be made
        at all."""
        failure = classify(exc)
        if refuses_constraint(exc, body):
            raise EndpointError(f"{self.where} refused the reply-shape constraint of structured="
                                f"{self.llm.structured!r} ({self._describe(exc)}): set structured= (--structured) "
                                "to this server's dialect, or None (--structured none).") from None
        if isinstance(exc, (StatusError, NotACompletion)):
            self._answered()
        if failure.rate_limited:
            self.limit.rate_limited(exc.sent_at)
        elif failure.blame == RUN:
            raise EndpointError(await self._stop_message(exc)) from None
        elif failure.unreachable:
            self._cannot_connect += 1
            outage = self._last_answer is None or time.monotonic() - self._last_answer > OUTAGE_SECONDS
            if self._cannot_connect >= CONNECTION_FAILURES_TO_GIVE_UP and outage:
                raise EndpointError(f"Cannot reach the LLM endpoint {self.where} ({self._describe(exc)} "
                                    f"{self._cannot_connect} times in a row): is the server running and "
                                    "base_url right?") from None

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
