"""R2S: a raw document turned into a knowledge-grounded multi-turn dialogue with the Chain of
Dialogue logic (Hou et al., 2024, "Raw Text is All you Need: Knowledge-intensive Multi-turn Instruction
Tuning for Large Language Model", arXiv:2407.03040).

First the logic flow of the dialogue is planned: its purpose and the dialogue type of each turn
(abstract, Section 4.1). Each turn of the chain (Section 4.2, Figure 2), seeing the flow and the chain
so far: write the User utterance, name its Dialogue Type (one of the six logic types of Section 4.1),
Search for the information the reply needs, Find it in the document — every Find span is checked
against the document and the result recorded — and write the Assistant reply on the grounded spans. The paper's baselines, `direct` and `cot`, ask for
the whole dialogue in one request (Tables 2–4). Sans-I/O: `generate` yields chat requests.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import r2s_prompts as prompts
from ..protocol import Chat, Protocol, RowError, assistant, require_text, system, user
from ..shapes import Choice, Line, Quoted, Shape
from .grounding import Span, ground

TURNS = 5
STRATEGIES = ("cod", "direct", "cot", "gllm")
# Above the longest document of the paper's benchmark (4,001 characters, Table 1), so its own data is
# never cut; a cut document gets a note in r2s_note.
MAX_DOCUMENT_CHARS = 6000
TYPES = tuple(prompts.TYPES)


@dataclass
class Turn:
    """One turn of the dialogue with its chain annotations, as recorded in `r2s_cod`."""

    type: str | None       # one of TYPES, or None when the reply named none (and for the baselines)
    user: str
    search: list[str]
    find: list[Span]
    assistant: str


@dataclass
class Dialogue:
    messages: list[dict]     # the SFT conversation, annotations stripped
    turns: list[Turn]
    note: str | None         # what was done to the input, e.g. a truncated document
    flow: str | None = None  # the planned logic flow (cod), as the planner wrote it


def generate(document, *, turns: int = TURNS, strategy: str = "cod",
             max_document_chars: int = MAX_DOCUMENT_CHARS) -> Protocol:
    """A dialogue of `turns` user/assistant turns about `document`; returns a `Dialogue`.

    `cod`: the Chain of Dialogue, turn by turn (Section 4.2). `direct` and `cot`: the paper's
    baselines, the whole dialogue in one request. `gllm`: one request to a generator fine-tuned on
    `hf_synth.export.gllm_pairs` (Section 4.3), whose annotated reply is parsed and its Find spans
    checked against the document like the chain's."""
    require_text("document", document)
    document, note = fit(document, max_document_chars)
    flow = None
    if strategy == "cod":
        flow, chain = yield from chain_of_dialogue(document, turns)
    else:
        if strategy == "gllm":
            prompt = prompts.GLLM.format(document=document, turns=turns)
        else:
            template = prompts.DIRECT if strategy == "direct" else prompts.COT
            prompt = template.format(document=document, turns=turns, language_dialogue=prompts.LANGUAGE_DIALOGUE)
        # whole=False: a reply cut at max_tokens keeps its complete turns
        reply = yield Chat("generator", [system(prompts.GENERATOR_ROLE), user(prompt)], whole=False)
        chain = parse_annotated(reply, document) if strategy == "gllm" else parse_dialogue(reply)
        if getattr(reply, "finish_reason", None) == "length" and chain:
            chain = chain[:-1]  # the last turn may be the one the cut fell in
            note = _join(note, "the generator's reply was cut at max_tokens: its last turn was dropped")
        chain = chain[:turns]
        if not chain:
            raise RowError("the generator's reply held no 'User:' line followed by an 'Assistant:' line")
        if len(chain) < turns:
            note = _join(note, f"the generator wrote {len(chain)} of {turns} turns")
    messages = [message for turn in chain for message in (user(turn.user), assistant(turn.assistant))]
    return Dialogue(messages, chain, note, flow)


def _join(*notes) -> str:
    return "; ".join(filter(None, notes))


def chain_of_dialogue(document: str, turns: int) -> Protocol:
    """The logic flow is planned first; then per turn, one request writes it (user, type, search,
    find) seeing the flow and the chain so far, the Find spans are checked against the document, and
    a second request writes the reply on the grounded ones. Returns (flow, turns)."""
    # the flow is a working note the turns read: used even when cut at max_tokens (whole=False)
    flow = (yield Chat("planner", [system(prompts.PLANNER_ROLE), user(prompts.PLANNER.format(
        document=document, turns=turns, types=prompts.TYPE_LIST, characteristics=prompts.CHARACTERISTICS,
        language=prompts.LANGUAGE))], whole=False, shape=flow_shape(turns))).strip()
    chain: list[Turn] = []
    for number in range(1, turns + 1):
        so_far = [message for turn in chain for message in (user(turn.user), assistant(turn.assistant))]
        prompt = prompts.QUESTIONER.format(
            document=document, flow=flow, dialogue=annotate(chain) or "(not started)", turn=number, turns=turns,
            types=prompts.TYPE_LIST, characteristics=prompts.CHARACTERISTICS, language=prompts.LANGUAGE)
        plan = parse_block((yield Chat("questioner", [system(prompts.QUESTIONER_ROLE), user(prompt)], shape=TURN_PLAN)))
        utterance = plan.get("user", "").strip()
        if not utterance:
            raise RowError(f"turn {number}: the questioner's reply held no 'User:' line")
        kind = dialogue_type(plan.get("type", ""))
        find = [ground(span, document) for span in find_spans(plan.get("find", ""))]
        passages = "\n".join(f'- "{span.text}"' for span in find if span.grounded) or prompts.NO_PASSAGES
        move = ", so ".join(prompts.TYPES[kind]) if kind else prompts.ANY_MOVE
        answerer = system(prompts.ANSWERER.format(find=passages, move=move))
        reply = (yield Chat("answerer", [answerer, *so_far, user(utterance)])).strip()
        if not reply:
            raise RowError(f"turn {number}: the assistant's reply is empty")
        chain.append(Turn(kind, utterance, search_phrases(plan.get("search", "")), find, reply))
    return flow, chain


def fit(document: str, max_chars: int) -> tuple[str, str | None]:
    """The document cut to `max_chars` at the last sentence end (if one lies in the second half),
    with a note saying so; unchanged documents get no note."""
    if len(document) <= max_chars:
        return document, None
    cut = document[:max_chars]
    end = max(cut.rfind(mark) for mark in ".!?。！？\n")
    if end >= max_chars // 2:
        cut = cut[:end + 1]
    return cut, f"document truncated from {len(document)} to {len(cut)} characters (max_document_chars={max_chars})"


# -- reading the model's replies

# What the questioner is asked to write (prompts.QUESTIONER, Figure 2's order), and what `parse_block` reads
TURN_PLAN = Shape("turn_plan", "User: ", Line("user"), "\nDialogue Type: ", Choice("type", TYPES), "\nSearch: ",
                  Line("search"), "\nFind: ", Quoted("find"))


def flow_shape(turns: int) -> Shape:
    """What the planner is asked to write (prompts.PLANNER): the purpose, then each turn's type."""
    lines = [part for n in range(1, turns + 1)
             for part in (f"\nTurn {n}: ", Choice(f"turn_{n}_type", TYPES), ": ", Line(f"turn_{n}_covers"))]
    return Shape("logic_flow", "Purpose: ", Line("purpose"), *lines)


_LABELS = {"type": r"dialogue\s*types?|types?|对话类型|类型", "user": r"user|用户", "search": r"search|搜索",
           "find": r"find|查找|发现", "assistant": r"assistant|助手"}
_FIELD = re.compile(r"^[\s*#>\-\d.]*(?:" + "|".join(f"(?P<{k}>{v})" for k, v in _LABELS.items()) + r")(?:\s*\d+)?[\s*_]*[:：][\s*_]*",
                    re.IGNORECASE | re.MULTILINE)


def fields(text: str) -> list[tuple[str, str]]:
    """The labelled fields of a reply, in order: ("type" | "user" | "search" | "find" | "assistant", value).
    A label starts a line (markdown bullets and bold allowed) and ends with a colon, ASCII or full-width."""
    marks = list(_FIELD.finditer(text or ""))
    return [(mark.lastgroup, text[mark.end():following.start() if following else len(text)].strip())
            for mark, following in zip(marks, marks[1:] + [None])]


def parse_block(text: str) -> dict[str, str]:
    """One turn's fields; the first of each label counts (a model that runs on into a second turn
    does not overwrite the first)."""
    block: dict[str, str] = {}
    for name, value in fields(text):
        block.setdefault(name, value)
    return block


def parse_annotated(text: str, document: str) -> list[Turn]:
    """The turns of an annotated one-pass dialogue (a GLLM's reply, in `annotate`'s format): a turn
    starts at each User line and ends at its Assistant line; its Find spans are checked against the
    document. Turns without an Assistant line are dropped."""
    turns, block = [], None
    for name, value in fields(text):
        if name == "user":
            block = {"user": value}
        elif block is not None:
            block.setdefault(name, value)
            if name == "assistant":
                if block["user"] and value:
                    turns.append(Turn(dialogue_type(block.get("type", "")), block["user"],
                                      search_phrases(block.get("search", "")),
                                      [ground(span, document) for span in find_spans(block.get("find", ""))], value))
                block = None
    return turns


def parse_dialogue(text: str) -> list[Turn]:
    """User/Assistant pairs from a whole-dialogue reply (the baselines); text before the first User
    line (CoT's thoughts) and unanswered user lines are dropped."""
    turns, asked = [], None
    for name, value in fields(text):
        if name == "user" and value:
            asked = value
        elif name == "assistant" and value and asked is not None:
            turns.append(Turn(None, asked, [], [], value))
            asked = None
    return turns


_TYPE_ALIASES = {"问答": "Question-Answer", "问题-回答": "Question-Answer", "问题-问题": "Question-Question",
                 "陈述-询问": "Statement-Inquiry", "陈述-解释": "Statement-Explanation",
                 "观点-反驳": "Opinion-Rebuttal", "观点-赞同": "Opinion-Agreement", "观点-同意": "Opinion-Agreement"}


def dialogue_type(text: str) -> str | None:
    """The logic type named in `text` (any case, spacing or hyphenation; Chinese names too), else None."""
    squeezed = re.sub(r"[\s\-_–—/]", "", text).casefold()
    for name in TYPES:
        if re.sub(r"-", "", name).casefold() in squeezed:
            return name
    squeezed_zh = re.sub(r"[\s\-_–—/]", "-", text)
    return next((name for alias, name in _TYPE_ALIASES.items() if alias in squeezed_zh), None)


def search_phrases(text: str) -> list[str]:
    """Key phrases, separated by semicolons or lines; brackets and quotes around them dropped."""
    phrases = (p.strip().strip("[]【】\"'“”「」").strip() for p in re.split(r"[;；\n]", text))
    return [p for p in phrases if p]


_QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”|「([^」\n]+)」')


def find_spans(text: str) -> list[str]:
    """The spans of a Find field: the quoted passages when there are any, else one span per line."""
    quoted = [next(g for g in m.groups() if g is not None).strip() for m in _QUOTED.finditer(text)]
    if any(quoted):
        return [q for q in quoted if q]
    lines = (line.strip().lstrip("-*•").strip().strip("[]【】").strip() for line in text.splitlines())
    return [line for line in lines if line]


def annotate(turns: list[Turn], *, grounded_only: bool = True) -> str:
    """The dialogue in the chain's block format (what a generator model is trained to write, Section
    4.3); with `grounded_only`, Find spans that were not found in the document are left out."""
    blocks = []
    for turn in turns:
        spans = [s.text for s in turn.find if s.grounded or not grounded_only]
        lines = [f"User: {turn.user}", f"Dialogue Type: {turn.type}" if turn.type else None,
                 f"Search: {'; '.join(turn.search)}" if turn.search else None,
                 "Find: " + " ".join(f'"{s}"' for s in spans) if spans else None, f"Assistant: {turn.assistant}"]
        blocks.append("\n".join(line for line in lines if line))
    return "\n\n".join(blocks)
