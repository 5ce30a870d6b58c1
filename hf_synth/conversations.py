"""Multi-turn data: OpenAI-style `messages` (role/content) on output, ShareGPT `conversations`
(from/value) also accepted on input. Pure functions; malformed data raises `RowError`."""
from __future__ import annotations

import json

from .protocol import RowError, describe

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system"}


def _decoded(value):
    """`value`, or the object its JSON text holds: `datasets` types a column whose turns have uneven
    keys (a `weight` here, a `name` there — most public chat data) as `Json`, and its rows then hold
    each turn as JSON text."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def normalize(turns) -> list[dict]:
    """OpenAI-style messages from OpenAI- or ShareGPT-style turns, checked: an optional system
    message, then user and assistant alternating from a user turn, every content non-empty text.
    Turns (or the whole conversation) given as JSON text are read as what they hold."""
    turns = _decoded(turns)
    if isinstance(turns, (list, tuple)):
        turns = [_decoded(turn) for turn in turns]
    if not isinstance(turns, (list, tuple)) or not turns:
        raise RowError(f"conversation is {describe(turns)}, expected a non-empty list of turns")
    messages = []
    for number, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            raise RowError(f"turn {number} is {describe(turn)}, expected a dict with role/content or from/value")
        # Arrow gives every turn of a column every key any turn has (None where absent), so a turn's
        # style is told by which keys hold a value, not by which keys exist.
        if turn.get("role") is not None or ("role" in turn and turn.get("from") is None):
            role, content = turn.get("role"), turn.get("content")
        elif "from" in turn:
            role, content = SHAREGPT_ROLES.get(str(turn.get("from")).lower(), turn.get("from")), turn.get("value")
        else:
            raise RowError(f"turn {number} has keys {sorted(turn)}, expected role/content or from/value")
        if role not in ("system", "user", "assistant"):
            raise RowError(f"turn {number} has unknown role {role!r}, expected system, user or assistant")
        if not isinstance(content, str) or not content.strip():
            raise RowError(f"turn {number} ({role}) has {describe(content)} content, expected non-empty text")
        messages.append({"role": role, "content": content})
    offset = 1 if messages[0]["role"] == "system" else 0
    for number, message in enumerate(messages[offset:]):
        expected = "user" if number % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise RowError(f"turn {number + offset + 1} is {message['role']!r} where {expected!r} was "
                           "expected: turns must alternate user/assistant after an optional system message")
    return messages


def transcript(messages: list[dict]) -> str:
    """The conversation as plain text for a prompt: one "User: …" / "Assistant: …" block per turn."""
    speakers = {"user": "User", "assistant": "Assistant", "system": "System"}
    return "".join(f"{speakers[m['role']]}: {m['content']}\n" for m in messages)
