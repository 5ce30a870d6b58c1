"""Sends chat requests to one endpoint. The only module that talks to an LLM.

One `AsyncOpenAI` client (on the SDK's aiohttp transport) per endpoint, key and process, made lazily
and never pickled, and one adaptive concurrency limit shared by every row (halved on 429, regrown
slowly). Each attempt has a deadline of `timeout` seconds for the whole request. What a failure means
— retry it, mark the row, or stop the run — is decided by `failures.classify`: retries with exponential
backoff and jitter (honouring ``Retry-After``) within the request's `max_retries` and, except 429s,
the run's retry budget. Only the endpoint's failures count toward stopping a run: when at least half
of the last requests failed, when no connection can be made at all, or when the endpoint answered
none of a batch's requests. Every run (a batch) starts with a fresh window.
"""
from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from dataclasses import dataclass

import openai
from tenacity import AsyncRetrying, stop_after_attempt, wait_random_exponential

from ..errors import CallFailed, EndpointError
from .config import LLM, OPENAI_BASE_URL, without_credentials
from .failures import ENDPOINT, RUN, NotACompletion, RequestTimedOut, classify, describe, reply_text
from .pacing import AdaptiveLimit, ErrorRate, RateBudget, RetryBudget
from . import structured
from ..shapes import Shape

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0
# An endpoint is declared unreachable after this many attempts in a row that could not connect at
# all, when it has not answered in this run or not for OUTAGE_SECONDS.
CONNECTION_FAILURES_TO_GIVE_UP = 8
OUTAGE_SECONDS = 120.0
# A connection not made within half of `timeout`, 2 to 20 seconds, is not coming: it fails as one that
# could not connect, so an endpoint whose packets are dropped counts as unreachable, not as slow. (Under
# 2 s, a busy machine's stalls would pass for lost handshakes.)
CONNECT_TIMEOUT = (2.0, 20.0)

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

    async def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            if self.llm.embedded:
                from .local import embedded_server_urls

                # Blocking on purpose: the servers must be started by this long-lived loop thread,
                # since they are told to die with the thread that started them.
                base_url = embedded_server_urls()[self.replica]
            else:
                base_url = self.base_url
            api_key = self.llm.api_key.reveal()
            if not api_key:
                if without_credentials(base_url) == OPENAI_BASE_URL:
                    raise EndpointError(f"No API key for the OpenAI API: set {self.llm.api_key_env} or pass "
                                        "LLM(api_key=...).")
                api_key = "EMPTY"  # self-hosted servers (vLLM, llama.cpp, ...) often need none
            # aiohttp under the SDK: about half the CPU per request of its default httpx transport
            self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                                              timeout=openai.Timeout(self.llm.timeout, connect=min(
                                                  max(CONNECT_TIMEOUT[0], self.llm.timeout / 2), CONNECT_TIMEOUT[1])),
                                              http_client=openai.DefaultAioHttpClient())
        return self._client

    @property
    def where(self) -> str:
        if self.llm.embedded:
            return "the embedded llama.cpp server"
        return self.llm.endpoint_id if self.base_url == self.llm.base_url else without_credentials(self.base_url)

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self.llm.timeout, self.llm.api_key.reveal())

    async def complete(self, messages, shape: Shape | None = None) -> Completion:
        """The completion of `messages`, held to `shape` when the LLM is `structured`; `CallFailed` when
        this request failed for good, `EndpointError` when the endpoint cannot serve this run."""
        if self.fatal is not None:
            raise self.fatal
        try:
            completion = await self._complete(messages, shape)
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
        return completion

    def _should_retry(self, retry_state) -> bool:
        failure = classify(retry_state.outcome.exception())
        if not failure.retry or self.fatal is not None:
            return False
        # 429s are paced by the adaptive limit, not spent from the budget
        return failure.rate_limited or self._retry_budget.withdraw()

    async def _complete(self, messages, shape: Shape | None) -> Completion:
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
                            completion = await self._attempt(client, messages, shape)
                        except openai.RateLimitError:
                            self.limit.rate_limited(sent_at)
                            raise
                        except openai.APIStatusError as exc:
                            if classify(exc).blame == RUN:  # said while holding the slot: nothing more is sent
                                raise EndpointError(await self._stop_message(client, exc)) from None
                            raise
                    self.limit.succeeded()
                    completion.retries = attempt.retry_state.attempt_number - 1
                    return completion
        except (openai.APIError, NotACompletion, RequestTimedOut) as exc:
            failure = classify(exc)
            attempts = retrying.statistics.get("attempt_number", 1)
            spent = failure.retry and attempts <= self.llm.max_retries
            raise CallFailed(f"{self._describe(exc)} (after {attempts} attempt{'s' * (attempts > 1)}"
                             f"{'; the run has used up its retry budget' if spent else ''})", blame=failure.blame) from None

    async def _stop_message(self, client: openai.AsyncOpenAI, exc: openai.APIStatusError) -> str:
        if isinstance(exc, openai.AuthenticationError):
            return (f"{self.where} rejected the API key (401): set {self.llm.api_key_env} or pass LLM(api_key=...) "
                    "with a valid key.")
        if isinstance(exc, openai.PermissionDeniedError):
            return f"{self.where} refused access to model {self.llm.model!r} (403): check the key's permissions."
        served = await self._served_models(client)
        if served:
            return (f"{self.where} has no model {self.llm.model!r} (404); it serves "
                    f"{', '.join(map(repr, served[:10]))}{' …' if len(served) > 10 else ''}: check model=.")
        return (f"{self.where} has no model {self.llm.model!r} or no chat completions route (404): check model= "
                "and base_url= (it usually ends in /v1).")

    async def _served_models(self, client: openai.AsyncOpenAI) -> list[str]:
        """The model names the endpoint lists (GET /models), or [] when it lists none or cannot say."""
        try:
            async with asyncio.timeout(min(self.llm.timeout, 10)):
                listing = await client.get("/models", cast_to=object)
            return sorted(str(model["id"]) for model in listing["data"])
        except (openai.APIError, TimeoutError, json.JSONDecodeError, TypeError, KeyError):
            return []

    async def _attempt(self, client: openai.AsyncOpenAI, messages, shape: Shape | None) -> Completion:
        """One attempt, within the deadline; keeps count of connections that could not be made."""
        try:
            async with asyncio.timeout(self.llm.timeout):
                response = await self._post(client, messages, self.llm.constraint(shape))
        except TimeoutError:
            raise RequestTimedOut() from None
        except json.JSONDecodeError:  # a 200 that says it is JSON and is cut or garbled
            self._answered()
            raise NotACompletion("its JSON is cut or malformed") from None
        except openai.APIConnectionError as exc:
            if classify(exc).unreachable:
                self._cannot_connect += 1
                outage = self._last_answer is None or time.monotonic() - self._last_answer > OUTAGE_SECONDS
                if self._cannot_connect >= CONNECTION_FAILURES_TO_GIVE_UP and outage:
                    raise EndpointError(f"Cannot reach the LLM endpoint {self.where} ({self._describe(exc)} "
                                        f"{self._cannot_connect} times in a row): is the server running and "
                                        "base_url right?") from None
            raise
        except openai.APIStatusError:
            self._answered()
            raise
        self._answered()
        completion = parse_completion(response)
        if shape is not None and self.llm.structured:
            completion.text = structured.read(shape, self.llm.structured, completion.text)
        return completion

    def _answered(self) -> None:
        self._cannot_connect = 0
        self._last_answer = time.monotonic()

    async def _post(self, client: openai.AsyncOpenAI, messages, constraint: dict | None):
        # `post` is the SDK's documented way to send a body as is: `chat.completions.create` spends
        # more CPU validating and converting our already well-formed messages than the request
        # takes on the wire (docs/performance.md).
        return await client.post("/chat/completions", cast_to=object, body={
            "model": self.llm.model or "embedded", "messages": self.llm.messages(messages), **self.llm.sampling(),
            **self.llm.extra_body, **(constraint or {})})


def parse_completion(response) -> Completion:
    """A `Completion` from a chat completion's JSON; `NotACompletion` for anything else."""
    try:
        choice = response["choices"][0]
        content = choice["message"].get("content")
    except (TypeError, KeyError, IndexError, AttributeError):
        raise NotACompletion("not JSON" if isinstance(response, (str, bytes)) else "no choices") from None
    usage = response.get("usage") or {}
    if not isinstance(usage, dict):
        usage = {}
    return Completion(text=reply_text(content), finish_reason=choice.get("finish_reason"),
                      prompt_tokens=int(usage.get("prompt_tokens") or 0),
                      completion_tokens=int(usage.get("completion_tokens") or 0), retries=0)
