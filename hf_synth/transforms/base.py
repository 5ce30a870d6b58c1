"""`Dataset.map` adapters: picklable callables that run a method over the rows of a batch.

They keep every input column and row and add `<prefix>_*` columns with explicit Arrow types (so a
first batch of all-None errors still writes), including `<prefix>_error` (None when the row
succeeded) and `<prefix>_usage`. Their fingerprint for `datasets`' cache is deterministic across
processes and depends only on what changes the output: method code and options, prompts, models and
sampling parameters — not the API key, concurrency, timeouts or retry counts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import uuid
from typing import Any, ClassVar, Mapping

import pyarrow as pa

from .. import __version__, shapes
from ..errors import ConfigError, InputError
from ..llm.door import spending
from ..llm.prices import TABLE_DATE, prices_of
from ..llm import loop, structured
from ..llm.config import LLM
from ..method import Method, register
from ..protocol import Protocol
from .runner import Outcome, Runner, collector_eased
from ..status import counts
from .batches import Batch, as_arrow

logger = logging.getLogger(__name__)

USAGE = pa.struct([("calls", pa.int64()), ("prompt_tokens", pa.int64()), ("completion_tokens", pa.int64()),
                   ("reasoning_tokens", pa.int64()), ("cost", pa.float64())])
# The version of the columns every transform adds: part of the fingerprint, so that `datasets` never hands
# back a map made before a column changed (2: `*_usage` gained `reasoning_tokens` and `cost`).
COLUMNS_VERSION = 2
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def _fingerprint_only(state):
    raise TypeError("this pickle is a dataset fingerprint of a hf_synth transform, not a transform")


def _register_fingerprint(cls) -> None:
    """Tell `datasets`' hashing pickler (only that one: workers still get the full object) to hash
    `fingerprint_state()` instead of the whole transform, the way it special-cases tokenizers."""
    try:
        from datasets.utils._dill import pklregister
    except ImportError:  # another datasets layout: it then hashes the full pickled state
        return

    @pklregister(cls)
    def _save(pickler, obj):
        pickler.save_reduce(_fingerprint_only, (obj.fingerprint_state(),), obj=obj)


def is_batch(examples, column: str) -> bool:
    """Whether `Dataset.map`/`filter` passed a batch or one row. `column` must hold text, a number
    or a conversation (a list of dicts) per row, never a plain list, or a row could pass for a batch."""
    kind = type(examples).__name__
    if kind in ("LazyBatch", "LazyRow", "DataFrame"):
        return kind != "LazyRow"
    value = examples[column]  # a plain dict: a batch holds a list of values per column
    return isinstance(value, list) and (not value or not isinstance(value[0], dict))


class MapTransform:
    """Base class: a subclass declares its `method` (`hf_synth.method.Method`: name, prefix, options,
    sampling defaults, …) and says which columns it reads, the protocol for a row, and the columns it
    writes. Its options are keywords of the generic `__init__`, kept on the transform under their
    names; `check()` validates them."""

    method: ClassVar[Method]
    prefix: ClassVar[str]
    method_modules: ClassVar[tuple] = ()  # their source is part of the fingerprint
    sampling: ClassVar[Mapping[str, Any]] = {}  # the method's sampling defaults (its paper's)

    def __init__(self, llm: LLM | None = None, *, llms: Mapping[str, LLM] | None = None,
                 cache: bool | str = True, max_cost: float | None = None, max_requests: int | None = None,
                 **options):
        """`llm` plays every agent (default: the embedded local model); `llms` gives some agents
        their own. `cache` is True (default folder), a folder, or False (no request cache). Sampling
        fields an LLM leaves unset take the method's defaults (`sampling`). `max_cost` (US$) and
        `max_requests` cap what this transform sends, per process (`llm/spending.py`): a row whose next
        request could pass a cap is marked `not run: …`. `options` are the method's (its declaration's
        `options`; those not given take their defaults)."""
        declared = [option for option in self.method.options if option.kept]
        unknown = sorted(set(options) - {option.name for option in declared})
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected option {', '.join(map(repr, unknown))}; "
                            f"its options: {', '.join(option.name for option in declared)}")
        for option in declared:
            setattr(self, option.name, options.get(option.name, option.default))
        self.check()
        self.llm = (llm if llm is not None else LLM()).with_defaults(**self.sampling)
        self.llms = {agent: each.with_defaults(**self.sampling) for agent, each in (llms or {}).items()}
        self.cache = cache
        self.retrying = False  # set by `retry_failed`: a cached reply that failed its row is asked again
        self.max_cost, self.max_requests = max_cost, max_requests
        self._run_id = uuid.uuid4().hex  # its caps hold across its map batches (and are not fingerprinted)
        if max_cost is not None:
            _check_priced([self.llm, *self.llms.values()], max_cost)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "method" in cls.__dict__:
            cls.prefix = cls.method.prefix
            cls.sampling = cls.method.sampling
            register(cls)
            if "__init__" not in cls.__dict__:  # help() and IDEs show the declared options
                cls.__signature__ = _signature(cls.method)
        _register_fingerprint(cls)

    def check(self) -> None:
        """Raise `ValueError` for option values the method cannot run with."""

    def share_caps(self, other: "MapTransform") -> None:
        """Count what this transform sends against `other`'s caps (the steps of one run share them)."""
        self.max_cost, self.max_requests, self._run_id = other.max_cost, other.max_requests, other._run_id

    def options(self) -> dict[str, Any]:
        """The method's options, as given (part of the fingerprint and the recipe)."""
        return {option.name: _plain(getattr(self, option.name)) for option in self.method.options if option.kept}

    # -- what a subclass provides (the defaults read the declaration: `inputs` and `result`)
    def input_columns(self, column_names: list[str]) -> list[str]:
        columns = [getattr(self, option) for option in self.method.inputs]
        for option, column in zip(self.method.inputs, columns):
            if column not in column_names:
                raise InputError(f"{type(self).__name__} found no column {column!r} among {column_names}: pass "
                                 f"{option}= to name yours.")
        return columns

    def protocol(self, row: dict) -> Protocol:
        raise NotImplementedError

    def output_types(self, column_names: list[str]) -> dict[str, pa.DataType]:
        return {f.name: arrow_type(f.type) for f in dataclasses.fields(self.method.result)}

    def output_values(self, result: Any) -> dict[str, Any]:
        return as_plain(result)

    # -- the adapter
    def fingerprint_state(self) -> dict[str, Any]:
        code = hashlib.sha256()
        modules = list(self.method_modules)
        if any(llm.structured for llm in (self.llm, *self.llms.values())):
            modules += [shapes, structured]  # how replies are held to their shape changes them
        for module in modules:
            code.update(inspect.getsource(module).encode())
        return {"transform": type(self).__qualname__, "hf_synth": __version__, "columns": COLUMNS_VERSION,
                "code": code.hexdigest(),
                "options": self.options(), "llm": self.llm.identity(),
                "llms": {agent: llm.identity() for agent, llm in sorted(self.llms.items())}}

    def settings(self) -> dict[str, Any]:
        """What rebuilds this transform (see `hf_synth.runs.recipe`): its class, options and LLMs'
        settings; no API key, and not the local request cache folder."""
        return {"transform": type(self).__name__, "options": self.options(), "llm": self.llm.settings(),
                "llms": {agent: llm.settings() for agent, llm in sorted(self.llms.items())}}

    def prompt_templates(self) -> dict[str, str]:
        """The prompt templates of the method, by module and name (a dataset card lists them)."""
        return {f"{module.__name__.rsplit('.', 1)[-1]}.{name}": value for module in self.method_modules
                for name, value in vars(module).items() if name.isupper() and isinstance(value, str)}

    def outcomes(self, examples) -> tuple[list[Outcome], bool]:
        """Run the method over a batch (or a single row) in any format `batches.as_arrow` reads;
        returns one `Outcome` per row, in order, and whether `examples` was a batch."""
        outcomes, batch, runner = self._run(examples)
        runner.flush()
        return outcomes, batch.batched

    def _run(self, examples) -> tuple[list[Outcome], Batch, Runner]:
        """The outcomes of the rows of `examples`, the batch, and its runner, whose replies are being
        committed (`flush` waits for them)."""
        names = examples.column_names if isinstance(examples, pa.Table) else list(examples.keys())
        used = self.input_columns(names)
        batch = as_arrow(examples, lambda plain: is_batch(plain, used[0]))
        rows = batch.table.select(used).to_pylist()
        capped = self.max_cost is not None or self.max_requests is not None
        runner = Runner(self.llms, self.llm, self.cache, ask_again_unusable=self.retrying,
                        spending=spending(self._run_id, self.max_cost, self.max_requests) if capped else None)
        outcomes = loop.run(runner.run([self.protocol(row) for row in rows]))
        failed = sum(o.error is not None for o in outcomes)
        run = counts()
        logger.info("%s: %d rows, %d failed; this process sent %d requests, %d served from cache, %d retries",
                    type(self).__name__, len(rows), failed, run.sent, run.cached, run.retries)
        return outcomes, batch, runner

    def output_schema(self, column_names: list[str]) -> dict[str, pa.DataType]:
        """Every column this transform adds to a dataset with `column_names`, with its Arrow type."""
        types = {f"{self.prefix}_{name}": t for name, t in self.output_types(column_names).items()}
        types[f"{self.prefix}_error"] = pa.string()
        types[f"{self.prefix}_usage"] = USAGE
        return types

    def __call__(self, examples):
        """The batch with this transform's columns added, in the format it came in (a `datasets`
        batch or row, a `pyarrow.Table`, a pandas DataFrame, a dict of numpy arrays or of lists)."""
        with collector_eased():  # (the rows and outputs of a batch are made here, the run's requests in the runner)
            outcomes, batch, runner = self._run(examples)
            table = batch.table
            method_types = self.output_types(table.column_names)
            types = self.output_schema(table.column_names)
            values = [{} if outcome.error else self.output_values(outcome.result) for outcome in outcomes]
            columns = {f"{self.prefix}_{name}": [row.get(name) for row in values] for name in method_types}
            columns[f"{self.prefix}_error"] = [outcome.error for outcome in outcomes]
            columns[f"{self.prefix}_usage"] = [outcome.usage.as_dict() for outcome in outcomes]
            table = table.drop_columns([name for name in types if name in table.column_names])
            for name, values in columns.items():
                table = table.append_column(name, pa.array(values, type=types[name]))
            del outcomes, columns, values  # (freed now, not traversed by the young collection the exit brings)
            runner.flush()  # committed while the outputs were built: a process that asks next finds them
        return batch.back(table)

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}(llm={self.llm!r}, {options})"


def _check_priced(llms, max_cost: float) -> None:
    unpriced = sorted({llm.model or "the embedded model" for llm in llms
                       if prices_of(llm.model, llm.prices, llm.batch) is None})
    if unpriced:
        raise ConfigError(f"max_cost={max_cost:g} needs the price of every model the run sends to, and "
                          f"{', '.join(map(repr, unpriced))} has none in the price table (dated {TABLE_DATE}): pass "
                          "LLM(prices=(IN, OUT)) in US$ per million tokens, or cap requests with max_requests=.")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}
_SCALARS = frozenset((str, int, float, bool, type(None)))


def as_plain(value):
    """`value` with its dataclasses as dicts and its tuples as lists, for Arrow: what
    `dataclasses.asdict` gives, without its deep copy of every value (which took two thirds of the
    main thread's time in a run). (Scalars are not passed down: the main thread's work between
    batches is time the event loop waits.)"""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind in (list, tuple):
        return [item if type(item) in _SCALARS else as_plain(item) for item in value]
    if kind is dict:
        return {key: item if type(item) in _SCALARS else as_plain(item) for key, item in value.items()}
    names = _FIELD_NAMES.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(kind):
            return value
        names = _FIELD_NAMES[kind] = tuple(field.name for field in dataclasses.fields(kind))
    plain = {}
    for name in names:
        item = getattr(value, name)
        plain[name] = item if type(item) in _SCALARS else as_plain(item)
    return plain


def _signature(method: Method) -> inspect.Signature:
    keyword = inspect.Parameter.KEYWORD_ONLY
    return inspect.Signature(
        [inspect.Parameter("llm", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
         *(inspect.Parameter(option.name, keyword, default=option.default) for option in method.options),
         inspect.Parameter("llms", keyword, default=None), inspect.Parameter("cache", keyword, default=True)])


def with_empty_outputs(dataset, transforms):
    """An empty `dataset` with every column `transforms` would add (`Dataset.map` calls nothing on an
    empty dataset, so it would come back without them); its columns are still checked."""
    import datasets
    from datasets.table import InMemoryTable

    table = dataset.features.arrow_schema.empty_table()
    for transform in transforms:
        transform.input_columns(table.column_names)
        for name, type_ in transform.output_schema(table.column_names).items():
            if name in table.column_names:
                table = table.drop_columns([name])
            table = table.append_column(name, pa.array([], type=type_))
    return datasets.Dataset(InMemoryTable(table))


def arrow_type(annotation: str) -> pa.DataType:
    """The Arrow type of a method dataclass field, from its annotation."""
    return {"str": pa.string(), "str | None": pa.string(), "list[str]": pa.list_(pa.string()),
            "list[str | None]": pa.list_(pa.string()), "float": pa.float64(), "float | None": pa.float64(),
            "bool": pa.bool_(), "int": pa.int64()}[annotation]


def record_type(cls) -> pa.DataType:
    """The Arrow struct of a method's dataclass (a trace entry)."""
    return pa.struct([(f.name, arrow_type(f.type)) for f in dataclasses.fields(cls)])
