"""The vocabulary shared by methods and the runner.

A method is a generator: it yields a `Chat` (or a list of independent `Chat`s that may run at the
same time) and receives the reply text (or a list of them, in the same order). It never does I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generator, Union

from .errors import CallFailed, RowError  # noqa: F401  (the vocabulary methods use)
from .shapes import Shape


def system(content: str) -> dict:
    return {"role": "system", "content": content}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


@dataclass(frozen=True)
class Chat:
    """One chat-completion request. `agent` names the role that speaks (it picks the role's LLM
    and labels usage); `messages` is the OpenAI-style conversation sent to the model. `whole=False`
    says a reply cut at max_tokens is still usable (a working note, recorded as it is); by default
    a cut reply fails the request, so half a verdict or half an answer never passes for one.
    `shape` is the shape of the reply the method will parse (`shapes.py`); an `LLM` with `structured=`
    holds the endpoint to it."""

    agent: str
    messages: tuple[dict, ...]
    whole: bool = True
    shape: Shape | None = None

    def __init__(self, agent: str, messages, whole: bool = True, shape: Shape | None = None):
        object.__setattr__(self, "agent", agent)
        object.__setattr__(self, "messages", tuple(messages))
        object.__setattr__(self, "whole", whole)
        object.__setattr__(self, "shape", shape)


class Reply(str):
    """The text of a completion; behaves as a `str`. `finish_reason` is what the endpoint said
    (`stop`, `length`, `content_filter`, …) so a method can tell a truncated answer."""

    finish_reason: str | None

    def __new__(cls, text: str, finish_reason: str | None = "stop"):
        obj = super().__new__(cls, text)
        obj.finish_reason = finish_reason
        return obj

    def __reduce__(self):
        return (Reply, (str(self), self.finish_reason))


Request = Union[Chat, list[Chat]]
Protocol = Generator[Request, Any, Any]


def describe(value) -> str:
    """What a bad input value is, for an error message: "None", "empty", "text" or "a <type>"."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return "empty" if not value.strip() else "text"
    return f"a {type(value).__name__}"


def require_text(name: str, value, *, allow_empty: bool = False) -> str:
    """`value` if it is text (non-blank unless `allow_empty`), else a `RowError` naming `name`."""
    if not isinstance(value, str):
        raise RowError(f"{name} is {describe(value)}, expected text")
    if not allow_empty and not value.strip():
        raise RowError(f"{name} is empty")
    return value
