"""JSON on the hot path: every request's body, cache key and stored reply, and every reply parsed.

orjson does each in a tenth of the standard library's time (docs/performance.md), and its sorted
output is byte for byte the standard library's canonical form (`sort_keys`, compact separators, text as
UTF-8), so cache keys made before it still match. Text orjson refuses (a lone surrogate, which is not
valid Unicode) falls back to the standard library, escaped: a row never fails on how it is encoded.
"""
from __future__ import annotations

import json

import orjson


def dumps(value) -> bytes:
    """`value` as JSON bytes."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value).encode()


def canonical(value) -> bytes:
    """`value` as canonical JSON bytes: sorted keys, no spaces, text as UTF-8."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def loads(raw: bytes | str):
    """The value of JSON `raw`; `ValueError` when it is not JSON (cut, garbled, not UTF-8)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)  # what orjson refuses but JSON allows (an escaped lone surrogate)
