"""The seam below the door: a transport takes one chat-completion request body and gives back its
`Completion`, or raises one of the failures of `failures.py` (which decides what they mean).

A transport knows nothing of retries, limits, caches or methods: those live above it, in the door and
its endpoints, the same for every way of sending. The online transport (`online.py`) posts each body
over HTTP at once; a batch transport gathers the bodies the rows are waiting on and sends them
together.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Protocol

from .failures import NotACompletion, reply_text


@dataclass(frozen=True)
class Headroom:
    """What a hosted API says is left of its rate limits (the ``x-ratelimit-*`` headers OpenAI, Azure,
    Groq, Together and others send), and in how many seconds each is reset."""

    requests: int | None = None
    requests_reset: float = 0.0
    tokens: int | None = None
    tokens_reset: float = 0.0

    def pause(self, tokens_needed: int) -> float:
        """Seconds to hold new requests: until the reset of a limit that cannot take one more."""
        pause = 0.0
        if self.requests is not None and self.requests < 1:
            pause = self.requests_reset
        if self.tokens is not None and self.tokens < tokens_needed:
            pause = max(pause, self.tokens_reset)
        return pause


def headroom(headers: Mapping[str, str]) -> Headroom | None:
    """The rate-limit headroom `headers` report, or None when they report none."""
    if "x-ratelimit-remaining-requests" not in headers and "x-ratelimit-remaining-tokens" not in headers:
        return None
    return Headroom(_integer(headers.get("x-ratelimit-remaining-requests")),
                    _duration(headers.get("x-ratelimit-reset-requests")),
                    _integer(headers.get("x-ratelimit-remaining-tokens")),
                    _duration(headers.get("x-ratelimit-reset-tokens")))


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str | None) -> float:
    """Seconds in a reset header: ``"20ms"``, ``"1.5s"``, ``"6m0s"``, ``"1h2m"`` or a bare number of
    seconds; 0 when unreadable (at most a minute: a longer wait is the 429's to ask for)."""
    if not text:
        return 0.0
    try:
        return min(float(text), 60.0)
    except ValueError:
        pass
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    return min(sum(float(number) * _UNITS[unit] for number, unit in parts), 60.0)


def _integer(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


@dataclass
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    headroom: Headroom | None = None  # what the endpoint said is left of its rate limits
    reasoning_tokens: int = 0         # of the completion tokens, those a reasoning model spent thinking


class Transport(Protocol):
    base_url: str | None

    async def send(self, body: dict) -> Completion:
        """The completion of the request `body` (the JSON object of POST /chat/completions)."""


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
    details = usage.get("completion_tokens_details")
    return Completion(text=reply_text(content), finish_reason=choice.get("finish_reason"),
                      prompt_tokens=_count(usage.get("prompt_tokens")),
                      completion_tokens=_count(usage.get("completion_tokens")),
                      reasoning_tokens=_count(details.get("reasoning_tokens")) if isinstance(details, dict) else 0)


def _count(value) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0
