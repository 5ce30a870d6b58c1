"""A reply's `Shape` in each endpoint's dialect of constrained decoding, and the reply read back.

- ``"llama.cpp"``: a GBNF grammar (``grammar``), which llama.cpp's server and llama-cpp-python's take;
- ``"vllm"``: a regular expression (``structured_outputs.regex``; older vLLM took ``guided_regex``);
- ``"sglang"``: a regular expression (``regex``);
- ``"openai"``: a JSON schema (``response_format``, strict). JSON has no notion of a reply's lines, so
  the model writes the slots as a JSON object and the reply is rendered back to the text the method's
  parser reads (`Shape.render`); a reply that is not such an object is passed on as it came.

The grammar and the expression admit exactly the replies the shape renders, with two bounds that keep a
small model from running on to max_tokens inside a slot: a line has at most MAX_LINE characters (room
for a 300-word reply, the longest any method's prompt asks for) and a slot of quoted passages at most
MAX_PASSAGES passages of MAX_PASSAGE characters (JSON schemas bound only the number of passages:
OpenAI's strict mode takes no string lengths). A shape holds a reply to the format its prompt asks for
and never forbids what the paper allows: a slot of quoted passages may be empty (a turn the document
does not cover quotes nothing).
"""
from __future__ import annotations

import json
import re

from ..shapes import Choice, Line, Quoted, Shape, Text

DIALECTS = ("llama.cpp", "vllm", "sglang", "openai")
MAX_LINE, MAX_PASSAGE, MAX_PASSAGES = 2000, 300, 5

_REGEX_SPECIAL = set(".^$*+?{}[]\\|()")


def _terms(shape: Shape, literal, separator: str, slot) -> list[str]:
    """Each part of `shape` in a grammar's notation: literal text, a choice among literals, a slot."""
    return [literal(part) if isinstance(part, str)
            else "(" + separator.join(map(literal, part.options)) + ")" if isinstance(part, Choice)
            else slot[type(part)] for part in shape.parts]


def _regex_literal(text: str) -> str:
    return "".join("\\n" if c == "\n" else "\\" + c if c in _REGEX_SPECIAL else c for c in text)


_PASSAGE = rf'"[^"\n]{{1,{MAX_PASSAGE}}}"'
_REGEX_SLOT = {Line: rf"[^\n]{{1,{MAX_LINE}}}", Quoted: rf"({_PASSAGE}( {_PASSAGE}){{0,{MAX_PASSAGES - 1}}})?",
               Text: r"[\s\S]*"}


def regex(shape: Shape) -> str:
    return "".join(_terms(shape, _regex_literal, "|", _REGEX_SLOT))


def _gbnf_literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


_GBNF_SLOT = {Line: "line", Quoted: "quoted", Text: "text"}
_GBNF_RULES = {"line": rf"[^\n]{{1,{MAX_LINE}}}", "quoted": rf'(passage (" " passage){{0,{MAX_PASSAGES - 1}}})?',
               "passage": rf'"\"" [^"\n]{{1,{MAX_PASSAGE}}} "\""', "text": r"[^\x00]*"}


def gbnf(shape: Shape) -> str:
    used = {_GBNF_SLOT[type(part)] for part in shape.slots if not isinstance(part, Choice)}
    used |= {"passage"} if "quoted" in used else set()
    rules = [f"root ::= {' '.join(_terms(shape, _gbnf_literal, ' | ', _GBNF_SLOT))}"]
    return "\n".join(rules + [f"{rule} ::= {_GBNF_RULES[rule]}" for rule in sorted(used)]) + "\n"


def json_schema(shape: Shape) -> dict:
    def slot(part) -> dict:
        if isinstance(part, Choice):
            return {"type": "string", "enum": list(part.options)}
        if isinstance(part, Quoted):
            return {"type": "array", "items": {"type": "string"}, "minItems": 0, "maxItems": MAX_PASSAGES}
        return {"type": "string"}

    names = [part.name for part in shape.slots]
    return {"type": "object", "properties": {part.name: slot(part) for part in shape.slots}, "required": names,
            "additionalProperties": False}


def constraint(shape: Shape, dialect: str) -> dict:
    """The request-body fields that hold a reply to `shape` in `dialect`."""
    if dialect == "llama.cpp":
        return {"grammar": gbnf(shape)}
    if dialect == "vllm":
        return {"structured_outputs": {"regex": regex(shape)}}
    if dialect == "sglang":
        return {"regex": regex(shape)}
    if dialect == "openai":
        return {"response_format": {"type": "json_schema", "json_schema": {
            "name": shape.name, "strict": True, "schema": json_schema(shape)}}}
    raise ValueError(f"unknown dialect {dialect!r}; one of {', '.join(DIALECTS)}")


def read(shape: Shape, dialect: str, text: str) -> str:
    """The reply as the method's parser reads it: a JSON object's slots rendered as the shape's text.
    A reply that is not JSON reaches the parser as it came; one that starts as a JSON object but is not
    one (cut, or with a trailing comma once mended and still broken) reaches it behind a first line
    that names no value, so its parser finds it unreadable instead of reading a label out of raw JSON."""
    if dialect != "openai":
        return text
    values = _json_object(text)
    if isinstance(values, dict):
        return shape.render(values)
    if values is None and text.lstrip().startswith("{"):
        return NOT_THE_OBJECT + text
    return text


NOT_THE_OBJECT = "(a reply that is not the JSON object it was held to)\n"


def _json_object(text: str):
    """What JSON `text` holds (trailing commas mended, as some servers write them), or None."""
    for candidate in (text, re.sub(r",(\s*[}\]])", r"\1", text or "")):
        try:
            return json.loads(candidate)
        except (TypeError, ValueError):
            continue
    return None
