"""Sends chat requests to one endpoint. The only module that talks to an LLM.

One `AsyncOpenAI` client (on the SDK's aiohttp transport) per endpoint and process, made lazily and
never pickled, and one adaptive concurrency limit shared by every row (halved on 429, regrown slowly). Retries with exponential backoff and jitter for
connection errors, timeouts, 429, 5xx and replies that are not a chat completion (honouring
``Retry-After``), within the request's `max_retries` and, except 429s, the run's retry budget; no
retry for other 4xx. An endpoint that cannot serve the run at all (unreachable, key rejected, unknown
model, or most requests failing) raises `EndpointError` once instead of failing row by row.
"""
from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass

import openai
from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

from ..errors import EndpointError
from ..protocol import CallFailed
from .config import LLM, OPENAI_BASE_URL, without_credentials
from .pacing import AdaptiveLimit, ErrorRate, RateBudget, RetryBudget

logger = logging.getLogger(__name__)


class NotACompletion(Exception):
    """A 200 whose body is not a chat completion (a proxy's HTML page, JSON without choices)."""


RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, NotACompletion)
MAX_RETRY_AFTER = 60.0
# An endpoint is declared unreachable after this many connection failures in a row, when it has
# never answered or has not answered for OUTAGE_SECONDS.
CONNECTION_FAILURES_TO_GIVE_UP = 8
OUTAGE_SECONDS = 120.0

_backoff = wait_random_exponential(multiplier=0.5, max=30)


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _wait(retry_state) -> float:
    asked = retry_after(retry_state.outcome.exception())
    return min(asked, MAX_RETRY_AFTER) if asked is not None else _backoff(retry_state)


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    retries: int


class Engine:
    """Sends one LLM's requests to one of its URLs (`base_url`, or a replica's)."""

    def __init__(self, llm: LLM, base_url: str | None = None, budget: RateBudget | None = None, replica: int = 0):
        self.llm = llm
        self.base_url = base_url or llm.base_url
        self.replica = replica  # which of the embedded model's servers, for the embedded LLM
        self.budget = budget  # shared by the LLM's replicas
        self._client: openai.AsyncOpenAI | None = None
        self.limit = AdaptiveLimit(llm.max_concurrency)
        self._retry_budget = RetryBudget()
        self._errors = ErrorRate()
        self._connection_failures = 0
        self._ever_answered = False
        self._last_answer = time.monotonic()
        self.fatal: EndpointError | None = None  # set once the endpoint cannot serve this run

    async def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            if self.llm.embedded:
                from .local import embedded_server_urls

                # Blocking on purpose: the servers must be started by this long-lived loop thread,
                # since they are told to die with the thread that started them.
                base_url = embedded_server_urls()[self.replica]
            else:
                base_url = self.base_url
            api_key = self.llm.api_key
            if not api_key:
                if base_url.rstrip("/") == OPENAI_BASE_URL:
                    raise EndpointError(
                        "No API key for the OpenAI API: set OPENAI_API_KEY or pass LLM(api_key=...).")
                api_key = "EMPTY"  # self-hosted servers (vLLM, llama.cpp, ...) often need none
            # aiohttp under the SDK: about half the CPU per request of its default httpx transport
            self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                              timeout=self.llm.timeout, http_client=openai.DefaultAioHttpClient())
        return self._client

    @property
    def where(self) -> str:
        if self.llm.embedded:
            return "the embedded llama.cpp server"
        return self.llm.endpoint_id if self.base_url == self.llm.base_url else without_credentials(self.base_url)

    async def complete(self, messages) -> Completion:
        if self.fatal is not None:
            raise self.fatal
        try:
            completion = await self._complete(messages)
        except EndpointError as error:
            self.fatal = error
            raise
        except CallFailed as failed:
            if self.fatal is not None:  # decided while this request was failing: report that instead
                raise self.fatal from None
            self._errors.record(True)
            if self._errors.too_high() and self.fatal is None:
                self.fatal = EndpointError(
                    f"{self.where} is failing: {self._errors.describe()} after their retries (the last: {failed}); "
                    "completed requests are cached, so the same run resumes when the endpoint is well.")
            raise
        self._errors.record(False)
        return completion

    def _should_retry(self, retry_state) -> bool:
        error = retry_state.outcome.exception()
        if not isinstance(error, RETRYABLE) or self.fatal is not None:
            return False
        # 429s are paced by the adaptive limit, not spent from the budget
        return isinstance(error, openai.RateLimitError) or self._retry_budget.withdraw()

    async def _complete(self, messages) -> Completion:
        client = await self._get_client()
        self._retry_budget.requested()
        retrying = AsyncRetrying(stop=stop_after_attempt(self.llm.max_retries + 1), wait=_wait,
                                 retry=self._should_retry, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    if self.budget is not None:
                        await self.budget.spend(messages)
                    async with self.limit.slot() as sent_at:
                        if self.fatal is not None:  # decided while this request waited: do not send it
                            raise self.fatal
                        try:
                            completion = await self._send(client, messages)
                        except openai.RateLimitError:
                            self.limit.rate_limited(sent_at)
                            raise
                    self.limit.succeeded()
                    completion.retries = attempt.retry_state.attempt_number - 1
                    return completion
        except openai.AuthenticationError:
            raise EndpointError(f"{self.where} rejected the API key (401): set OPENAI_API_KEY or pass "
                                "LLM(api_key=...) with a valid key.") from None
        except openai.PermissionDeniedError:
            raise EndpointError(f"{self.where} refused access to model {self.llm.model!r} (403): "
                                "check the key's permissions.") from None
        except openai.NotFoundError:
            raise EndpointError(f"{self.where} has no model {self.llm.model!r} or no chat completions "
                                "route (404): check model= and base_url= (it usually ends in /v1).") from None
        except (openai.APIError, NotACompletion) as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            spent = isinstance(exc, RETRYABLE) and attempts <= self.llm.max_retries
            raise CallFailed(f"{self._describe(exc)} (after {attempts} attempt{'s' * (attempts > 1)}"
                             f"{'; the run has used up its retry budget' if spent else ''})") from None

    async def _send(self, client: openai.AsyncOpenAI, messages) -> Completion:
        try:
            # `post` is the SDK's documented way to send a body as is: `chat.completions.create` spends
            # more CPU validating and converting our already well-formed messages than the request
            # takes on the wire (docs/performance.md).
            response = await client.post("/chat/completions", cast_to=object, body={
                "model": self.llm.model or "embedded", "messages": messages, **self.llm.sampling(),
                **self.llm.extra_body})
        except openai.APIConnectionError as exc:
            self._connection_failures += 1
            outage = not self._ever_answered or time.monotonic() - self._last_answer > OUTAGE_SECONDS
            if self._connection_failures >= CONNECTION_FAILURES_TO_GIVE_UP and outage:
                raise EndpointError(f"Cannot reach the LLM endpoint {self.where} ({self._describe(exc)}): is "
                                    "the server running and base_url right?") from None
            raise
        self._connection_failures = 0
        self._ever_answered = True
        self._last_answer = time.monotonic()
        try:
            choice = response["choices"][0]
            text = choice["message"].get("content") or ""
        except (TypeError, KeyError, IndexError, AttributeError):
            raise NotACompletion("not JSON" if isinstance(response, str) else "no choices") from None
        usage = response.get("usage") or {}
        return Completion(text=text, finish_reason=choice.get("finish_reason"),
                          prompt_tokens=usage.get("prompt_tokens") or 0,
                          completion_tokens=usage.get("completion_tokens") or 0, retries=0)

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, NotACompletion):
            return f"the endpoint's reply was not a chat completion ({exc})"
        if isinstance(exc, openai.APITimeoutError):
            return f"timed out after {self.llm.timeout:g}s"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return f"connection failed: {type(cause).__name__}"
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}
            detail = str(body.get("message") or exc.message or "")
            key = self.llm.api_key
            if key and key in detail:
                detail = detail.replace(key, "***")
            return f"HTTP {exc.status_code}: {detail[:200]}"
        return type(exc).__name__
