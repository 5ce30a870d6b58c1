"""The shape of a reply that a method parses, declared next to the parser that reads it.

A `Shape` is a template: literal text and named slots, in the order the reply writes them. The slots:

- `Choice`: one of a few fixed strings (a verdict label, a dialogue type, a score);
- `Line`: free text on one line;
- `Quoted`: one or more "quoted passages" on one line;
- `Text`: free text over any number of lines (an explanation after a verdict).

A method attaches the shape to its `Chat`; whether and how the endpoint is held to it is the engine's
business (`llm/structured.py`), so the method stays sans-I/O and its prompts stay the paper's. The shape
also renders the text a reply with given values reads as (`render`), which is how a reply written as
JSON (for endpoints that only constrain to a JSON schema) reaches the parser as the text it expects, and
how the tests check that every reply a shape admits is one its parser reads.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Choice:
    name: str
    options: tuple[str, ...]

    def __init__(self, name: str, options):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "options", tuple(options))


@dataclass(frozen=True)
class Line:
    name: str


@dataclass(frozen=True)
class Quoted:
    name: str


@dataclass(frozen=True)
class Text:
    name: str


Slot = Choice | Line | Quoted | Text


@dataclass(frozen=True)
class Shape:
    """`Shape("judge", Choice("verdict", [...]), "\\n", Text("explanation"))`: literal strings and
    slots in the order the reply writes them. Slot names are unique."""

    name: str
    parts: tuple[str | Slot, ...]

    def __init__(self, name: str, *parts: str | Slot):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "parts", tuple(parts))
        names = [slot.name for slot in self.slots]
        if len(set(names)) != len(names):
            raise ValueError(f"shape {name!r}: slot names repeat: {names}")

    @property
    def slots(self) -> list[Slot]:
        return [part for part in self.parts if not isinstance(part, str)]

    def render(self, values: Mapping[str, object]) -> str:
        """The reply these slot values make: `Quoted` takes a list of passages, the others a string
        (a `Line` loses its line breaks)."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values.get(part.name)
            if isinstance(part, Quoted):
                passages = value if isinstance(value, (list, tuple)) else [value]
                out.append(" ".join(f'"{" ".join(str(p).replace(chr(34), chr(39)).split())}"' for p in passages if p))
            elif isinstance(part, Line):
                out.append(" ".join(str(value or "").split()))
            else:
                out.append(str(value or ""))
        return "".join(out)


def numbers(low: int, high: int, step: float = 1) -> tuple[str, ...]:
    """The scores from `low` to `high` by `step`, as a model writes them ("4", "4.5")."""
    count = round((high - low) / step)
    return tuple(f"{low + i * step:g}" for i in range(count + 1))
