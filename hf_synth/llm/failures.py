"""Who a failed request is the fault of, decided in this one place.

- **The row's**: the endpoint answered, about this request only — a 400/413/422 (context too long,
  invalid content, content policy), a reply withheld by a content filter, cut at `max_tokens` or
  empty. Not retried (the same request gets the same answer); the row is marked; the endpoint is
  healthy, so it never counts toward stopping the run.
- **The endpoint's**: connection refused or dropped, timeouts, 5xx, 408/409, 429, a 200 that is not a
  chat completion. Retried with backoff; what still fails after its retries marks its row *and*
  counts toward the breaker that stops a run whose endpoint has gone bad.
- **The run's**: 401, 403, 404 — no request can succeed; the run stops at once with one sentence.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import openai

ROW, ENDPOINT, RUN = "row", "endpoint", "run"


class NotACompletion(Exception):
    """A 200 whose body is not a chat completion (a proxy's HTML page, cut JSON, no `choices`, a
    `content` that is neither text nor a list of text parts)."""


class RequestTimedOut(Exception):
    """The whole request (connect, headers, body) took longer than the LLM's `timeout`."""


@dataclass(frozen=True)
class Failure:
    blame: str               # ROW, ENDPOINT or RUN
    retry: bool
    rate_limited: bool = False
    unreachable: bool = False  # no connection could be made at all (not one dropped midway)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, openai.RateLimitError):
        return Failure(ENDPOINT, retry=True, rate_limited=True)
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)):
        return Failure(RUN, retry=False)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in (408, 409) or exc.status_code >= 500:
            return Failure(ENDPOINT, retry=True)
        return Failure(ROW, retry=False)
    if isinstance(exc, openai.APIConnectionError):  # the SDK reports a refused connection as a timeout too
        return Failure(ENDPOINT, retry=True, unreachable=could_not_connect(exc))
    if isinstance(exc, (RequestTimedOut, NotACompletion)):
        return Failure(ENDPOINT, retry=True)
    return Failure(ENDPOINT, retry=False)


def could_not_connect(exc: BaseException) -> bool:
    """Whether no connection could be made (refused, no route, unknown host, TLS refused, no answer
    to the handshake), as opposed to one that was made and then dropped. Told by aiohttp's own errors,
    under the SDK's: its httpx adapter reports a connection closed before any reply as a
    ConnectTimeout too."""
    return any(isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
               for cause in _chain(exc))


def describe(exc: BaseException, timeout: float, secret: str | None = None) -> str:
    """What happened, in a few words, for a row's error or a run's last failure. `secret` is masked
    wherever the endpoint echoed it back."""
    if isinstance(exc, NotACompletion):
        text = f"the endpoint's reply was not a chat completion ({exc})"
    elif isinstance(exc, openai.APIConnectionError) and could_not_connect(exc):
        text = f"could not connect ({_root(exc)})"
    elif isinstance(exc, RequestTimedOut) or any(isinstance(cause, TimeoutError) for cause in _chain(exc)):
        text = f"no complete reply within timeout={timeout:g}s"
    elif isinstance(exc, openai.APIConnectionError):
        text = f"connection dropped ({_root(exc)})"
    elif isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}  # the SDK hands us the error object
        detail = body.get("message") or exc.message or ""
        text = f"HTTP {exc.status_code}: {str(detail)[:200]}"
    else:
        text = type(exc).__name__
    return text.replace(secret, "***") if secret else text


def _root(exc: BaseException) -> str:
    """The name of the first cause of `exc` (e.g. ConnectionRefusedError), not counting the
    CancelledError and bare TimeoutError under any timeout: they say nothing of what timed out."""
    return [type(cause).__name__ for cause in _chain(exc)
            if cause is exc or type(cause) not in (asyncio.CancelledError, TimeoutError)][-1]


def _chain(exc: BaseException):
    """`exc` and its causes, each once."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def unusable(reply: dict, max_tokens: int, whole: bool = True, agent: str = "model") -> str | None:
    """Why `agent`'s reply cannot be used (the row's fault), or None. A reply withheld by a content
    filter, empty, or cut at `max_tokens` when the request needs it whole is never handed to a method:
    half a verdict must not pass for a verdict. Such replies are cached like any other (the same
    request would get them again) and their row is marked."""
    if reply["finish_reason"] == "length" and whole:
        return (f"the {agent}'s reply was cut at max_tokens={max_tokens} (finish_reason=length); "
                "give the LLM a larger max_tokens")
    if reply["finish_reason"] == "content_filter":
        return f"the endpoint's content filter withheld the {agent}'s reply (finish_reason=content_filter)"
    if not reply["text"].strip():
        return f"the {agent}'s reply was empty"
    return None


def reply_text(content) -> str:
    """A completion's `content` as text: a string, or a list of text parts joined; else not a completion."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) and isinstance(part.get("text"), str)
                                         for part in content):
        return "".join(part["text"] for part in content)
    raise NotACompletion(f"its content is {type(content).__name__}, not text")
