"""What a method declares, once: its name and column prefix, its options, agents and sampling
defaults, its card template, how its output is summarised, reported and checked for unreadable
replies, and what its command line adds. The transform, the CLI, the card, the recipe, the report,
the run summary and the unreadable-replies counts read the declaration; none of them names a method.

A transform declares its method as the class attribute `method` (see `transforms/base.py`); the
class is then registered under the method's prefix. A package of your own registers its methods'
module as an entry point in the group ``hf_synth.methods``; the `hf-synth` command then offers them. Hooks into heavier modules (the report's section,
the summary's lines, a CLI step's transform) are given as ``"module:name"`` and imported only when used.
"""
from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Option:
    """One option of a method: a keyword of its transform (kept on it under `name`, and part of its
    fingerprint) and a flag of its command. `zero_means_none`: on the command line 0 stands for None
    (no limit). `many`: a list, the flag repeated. `kept=False`: a keyword that only shapes other
    options (e.g. a number of reviewers that picks the perspectives), not kept as such."""

    name: str
    default: Any
    help: str
    type: Callable | None = None
    choices: tuple | None = None
    flag: str | None = None
    zero_means_none: bool = False
    many: bool = False
    kept: bool = True

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Filter:
    """A filter a method offers on its output: a `Dataset.filter` predicate (`predicate`, "module:Class",
    called with the options as keywords), `hf-synth filter --keep <name>` with `options` as its flags."""

    name: str
    predicate: str
    help: str
    options: tuple[Option, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """Parsed values a succeeded row records (`read(value)`: a list, None where a reply was not read),
    for the counts of unreadable replies."""

    agent: str
    column: str
    read: Callable[[Any], list]


@dataclass(frozen=True)
class Step:
    """A step the method's command may add after the method, behind a flag (e.g. `--evaluate`): the
    transform it maps (``"module:Class"``, given the method's LLM and the options in `options`), or
    only what is done with the result (`after`, ``"module:function"(dataset, value, method_transform)``)."""

    flag: str
    help: str
    transform: str | None = None
    options: tuple[str, ...] = ()
    after: str | None = None
    metavar: str | None = None  # the flag takes a value (e.g. a file name); otherwise it is a switch


@dataclass(frozen=True)
class Method:
    name: str                   # how docs, cards, reports and summaries name it: "CoEvol"
    prefix: str                 # of its output columns: "coevol" -> coevol_error, coevol_usage, ...
    summary: str = ""           # one line: its command's help
    command: str | None = None  # its `hf-synth` command (None: a step, e.g. a judge)
    options: tuple[Option, ...] = ()
    inputs: tuple[str, ...] = ()  # the options that name the input columns it reads (all required)
    result: type | None = None    # a dataclass whose fields are its output columns (without the prefix)
    agents: tuple[str, ...] = ()
    sampling: Mapping[str, Any] = field(default_factory=dict)  # its paper's, for every agent
    card: str | None = None     # its card template in dataset_cards/ (None: the generic one)
    card_tag: str | None = None
    task_categories: tuple[str, ...] = ("text-generation",)
    marker: str | None = None   # a column only it writes: a dataset with it holds its output
    recorded: tuple[Recorded, ...] = ()
    unparsed: tuple[tuple[str, str], ...] = ()  # (a `<prefix>_error` pattern, the agent whose reply was not read)
    report: str | None = None   # "module:function"(dataset, report, tokenizer, nlp) -> markdown
    outcome: str | None = None  # "module:function"(dataset) -> lines for the run summary
    steps: tuple[Step, ...] = ()
    filters: tuple[Filter, ...] = ()
    title: Callable[[Any], str] | None = None  # the command's first line, from its transform

    def hook(self, name: str) -> Callable | None:
        """The function a hook names, imported now; None when the method declares none."""
        return resolve(getattr(self, name))

    def option(self, name: str) -> Option:
        return next(option for option in self.options if option.name == name)


def resolve(target: str | None) -> Any:
    if target is None:
        return None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


_TRANSFORMS: dict[str, type] = {}  # prefix -> the transform class that declares it


def register(transform: type) -> None:
    _TRANSFORMS[transform.method.prefix] = transform


_loaded = False


def transforms() -> dict[str, type]:
    """Every declared method's transform, by prefix: the built-in ones, those of installed packages
    (entry points in the group ``hf_synth.methods``, each naming a module that declares transforms),
    and any other module's imported so far."""
    global _loaded
    if not _loaded:
        _loaded = True
        importlib.import_module("hf_synth.transforms")
        for entry in importlib.metadata.entry_points(group="hf_synth.methods"):
            entry.load()
    return dict(_TRANSFORMS)


def declared() -> list[Method]:
    return [transform.method for transform in transforms().values()]


def by_prefix(prefix: str) -> Method | None:
    transform = transforms().get(prefix)
    return transform.method if transform is not None else None
