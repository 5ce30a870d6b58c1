"""Who a failed request is the fault of, decided in this one place.

A transport reports what went wrong with one of four exceptions (below); `classify` says whose fault
it is and whether to try again:

- **The row's**: the endpoint answered, about this request only — a 400/413/422 (context too long,
  invalid content, content policy), a reply withheld by a content filter, cut at `max_tokens` or
  empty. Not retried (the same request gets the same answer); the row is marked; the endpoint is
  healthy, so it never counts toward stopping the run.
- **The endpoint's**: connection refused or dropped, timeouts, 5xx, 408/409, 429, a 200 that is not a
  chat completion. Retried with backoff; what still fails after its retries marks its row *and*
  counts toward the breaker that stops a run whose endpoint has gone bad.
- **The run's**: 401, 403, 404 and redirects — no request can succeed; the run stops at once with one sentence.
"""
from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from typing import Mapping

import aiohttp

ROW, ENDPOINT, RUN = "row", "endpoint", "run"


class TransportFailure(Exception):
    """What a transport raises when a request got no completion."""


class StatusError(TransportFailure):
    """The endpoint answered with an HTTP error status. `message` is the error's own text when the body
    was an OpenAI-style error object."""

    def __init__(self, status: int, message: str = "", headers: Mapping[str, str] | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class ConnectionFailed(TransportFailure):
    """No reply: the connection could not be made, or it was dropped before the reply was whole. Raised
    from the HTTP library's own error, which tells the two apart."""


class NotACompletion(TransportFailure):
    """A 200 whose body is not a chat completion (a proxy's HTML page, cut or undecodable JSON, no
    `choices`, a `content` that is neither text nor a list of text parts)."""


class RequestTimedOut(TransportFailure):
    """The whole request (connect, headers, body) took longer than the LLM's `timeout`."""


class NotReturned(TransportFailure):
    """A batch ended (expired, cancelled, failed) without this request's result; it is sent again."""


@dataclass(frozen=True)
class Failure:
    blame: str               # ROW, ENDPOINT or RUN
    retry: bool
    rate_limited: bool = False
    unreachable: bool = False  # no connection could be made at all (not one dropped midway)


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, StatusError):
        if exc.status == 429:
            return Failure(ENDPOINT, retry=True, rate_limited=True)
        if exc.status in (401, 403, 404) or exc.status < 400:  # (a redirect: base_url is not the API's)
            return Failure(RUN, retry=False)
        if exc.status in (408, 409) or exc.status >= 500:
            return Failure(ENDPOINT, retry=True)
        return Failure(ROW, retry=False)
    if isinstance(exc, ConnectionFailed):
        return Failure(ENDPOINT, retry=True, unreachable=could_not_connect(exc))
    if isinstance(exc, (RequestTimedOut, NotACompletion, NotReturned)):
        return Failure(ENDPOINT, retry=True)
    return Failure(ENDPOINT, retry=False)


CONSTRAINT_FIELDS = ("grammar", "structured_outputs", "regex", "response_format", "guided_")


def refuses_constraint(exc: BaseException, body: dict) -> bool:
    """Whether a 4xx refuses the structured-reply constraint `body` carries (a server of another
    dialect: "unrecognized argument: grammar"), which no request of the run can get past: the run's
    failure, not the row's."""
    if not isinstance(exc, StatusError) or not 400 <= exc.status < 500:
        return False
    sent = [field for field in body if field.startswith(CONSTRAINT_FIELDS)]
    return any(field in exc.message for field in sent) or (bool(sent) and "json_schema" in exc.message)


def could_not_connect(exc: BaseException) -> bool:
    """Whether no connection could be made (refused, no route, unknown host, TLS refused, no answer
    to the handshake), as opposed to one that was made and then dropped (aiohttp's
    `ServerDisconnectedError`, a payload cut short): told by aiohttp's own errors."""
    return any(isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
               for cause in _chain(exc))


MAX_RETRY_AFTER = 60.0


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms`` or ``Retry-After``, in seconds or as an
    HTTP date), at most `MAX_RETRY_AFTER`; None when it asked nothing readable."""
    headers = {name.lower(): value for name, value in getattr(exc, "headers", {}).items()}
    try:
        if "retry-after-ms" in headers:
            return min(float(headers["retry-after-ms"]) / 1000, MAX_RETRY_AFTER)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            seconds = max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        return min(seconds, MAX_RETRY_AFTER)
    except (TypeError, ValueError):
        return None


def describe(exc: BaseException, timeout: float, secret: str | None = None) -> str:
    """What happened, in a few words, for a row's error or a run's last failure. `secret` is masked
    wherever the endpoint echoed it back — before anything is cut, so no part of it survives."""
    if isinstance(exc, NotACompletion):
        text = f"the endpoint's reply was not a chat completion ({exc})"
    elif isinstance(exc, ConnectionFailed) and could_not_connect(exc):
        text = f"could not connect ({_root(exc)})"
    elif isinstance(exc, RequestTimedOut) or any(isinstance(cause, TimeoutError) for cause in _chain(exc)):
        text = f"no complete reply within timeout={timeout:g}s"
    elif isinstance(exc, ConnectionFailed):
        text = f"connection dropped ({_root(exc)})"
    elif isinstance(exc, StatusError):
        message = exc.message.replace(secret, "***") if secret else exc.message
        text = f"HTTP {exc.status}: {message[:200]}"
    elif isinstance(exc, NotReturned):
        text = f"its batch ended without its result ({exc})"
    else:
        text = type(exc).__name__
    return text.replace(secret, "***") if secret else text


def _root(exc: BaseException) -> str:
    """The name of the first cause of `exc` (e.g. ConnectionRefusedError), not counting our own
    wrapper, nor the CancelledError and bare TimeoutError under any timeout: they say nothing of what
    timed out."""
    names = [type(cause).__name__ for cause in _chain(exc)
             if cause is exc or type(cause) not in (asyncio.CancelledError, TimeoutError)]
    return names[-1]


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
