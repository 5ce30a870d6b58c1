"""Sends chat requests to one endpoint. The only module that talks to an LLM.

One `AsyncOpenAI` client per process (made lazily, never pickled), one concurrency limit shared by
every row, retries with exponential backoff and jitter for connection errors, timeouts, 429 and 5xx
(honouring ``Retry-After``), no retry for other 4xx. An endpoint that cannot serve the run at all
(unreachable, key rejected, unknown model) raises `EndpointError` once instead of failing row by row.
"""
from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from dataclasses import dataclass

import openai
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ..errors import EndpointError
from ..protocol import CallFailed
from .config import LLM, OPENAI_BASE_URL

logger = logging.getLogger(__name__)

RETRYABLE = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError)
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
    def __init__(self, llm: LLM):
        self.llm = llm
        self._client: openai.AsyncOpenAI | None = None
        self._limit = asyncio.Semaphore(llm.max_concurrency)
        self._connection_failures = 0
        self._ever_answered = False
        self._last_answer = time.monotonic()
        self.fatal: EndpointError | None = None  # set once the endpoint cannot serve this run

    async def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            if self.llm.embedded:
                from .local import embedded_server_url

                # Blocking on purpose: the server must be started by this long-lived loop thread,
                # since it is told to die with the thread that started it.
                base_url = embedded_server_url()
            else:
                base_url = self.llm.base_url
            api_key = self.llm.api_key
            if not api_key:
                if base_url.rstrip("/") == OPENAI_BASE_URL:
                    raise EndpointError(
                        "No API key for the OpenAI API: set OPENAI_API_KEY or pass LLM(api_key=...).")
                api_key = "EMPTY"  # self-hosted servers (vLLM, llama.cpp, ...) often need none
            self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                              timeout=self.llm.timeout)
        return self._client

    @property
    def where(self) -> str:
        return "the embedded llama.cpp server" if self.llm.embedded else self.llm.endpoint_id

    async def complete(self, messages) -> Completion:
        async with self._limit:
            if self.fatal is not None:  # decided while this request waited: do not send it
                raise self.fatal
            try:
                return await self._complete(messages)
            except EndpointError as error:
                self.fatal = error
                raise

    async def _complete(self, messages) -> Completion:
        client = await self._get_client()
        retrying = AsyncRetrying(stop=stop_after_attempt(self.llm.max_retries + 1), wait=_wait,
                                 retry=retry_if_exception_type(RETRYABLE), reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    completion = await self._send(client, messages)
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
        except openai.APIError as exc:
            attempts = self.llm.max_retries + 1 if isinstance(exc, RETRYABLE) else 1
            raise CallFailed(f"{self._describe(exc)} (after {attempts} attempt{'s' * (attempts > 1)})") from None

    async def _send(self, client: openai.AsyncOpenAI, messages) -> Completion:
        try:
            response = await client.chat.completions.create(
                model=self.llm.model or "embedded", messages=list(messages), **self.llm.sampling(),
                extra_body=self.llm.extra_body or None)
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
        if not response.choices:
            raise CallFailed("the endpoint's reply had no choices")
        choice = response.choices[0]
        usage = response.usage
        return Completion(text=choice.message.content or "", finish_reason=choice.finish_reason,
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, retries=0)

    def _describe(self, exc: openai.APIError) -> str:
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
