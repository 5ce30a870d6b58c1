"""Run a transform over a Ray cluster with Ray Data (the `[ray]` extra; the rest of hf_synth does not
import Ray).

    import ray
    from hf_synth import LLM, CoEvolTransform
    from hf_synth.ray import run

    ray.init(address="auto")
    out = run(ray.data.read_parquet("s3://bucket/alpaca/"), CoEvolTransform(LLM(model=..., base_url=[...])),
              output="s3://bucket/alpaca-coevol/")

The transform runs in a pool of `actors` Ray actors, each on Arrow batches of `batch_size` rows, the
output being what `Dataset.map` gives. What makes that safe on a real cluster:

- **One budget for the job.** Each LLM's `max_concurrency`, `requests_per_minute` and
  `tokens_per_minute` are divided among the actors, so the endpoint sees at most what the LLM says,
  however many actors run (the actor pool has a fixed size for that reason).
- **Actors that cannot starve their inputs.** Each actor asks for `num_cpus=0.5` by default: a pool of
  whole-CPU actors on a small cluster takes every CPU, and the tasks that read and repartition the data
  never run.
- **Keys reach the workers, and are written nowhere.** A small actor holds the LLMs' keys in memory and
  each worker asks it for them, then puts them in its environment under the names their `Secret`s look
  for (see `llm/secret.py`). They are never in the pickled transform; not in a `runtime_env`, whose
  variables Ray's runtime-env agent writes to its log file; and not in the actors' constructor
  arguments, which Ray Data keeps in the object store, which spills to disk.
- **Errors in one sentence.** An `EndpointError` (or any other `HFSynthError`) raised in an actor is
  raised to the caller as itself, not as a Ray exception wrapping a traceback.
- **A re-run is free.** On one node the actors share the node's request cache (the driver's cache
  folder); on several, `checkpoint=` keeps every finished batch on storage all nodes see (`runs/checkpoint.py`).
"""
from __future__ import annotations

import copy
import gc
import os
from typing import Any

import ray

from .runs.checkpoint import Checkpoint
from .errors import HFSynthError
from .llm.cache import default_cache_dir
from .llm.config import LLM
from .llm.secret import GIVEN_PREFIX
from .status import FOLDER_VARIABLE
from .transforms.base import MapTransform

ACTORS = 2
ACTOR_CPUS = 0.5
BATCH_SIZE = 64


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class _Keys:
    """Holds the job's keys in memory (and the folder its counts go to) and hands them to its actors.
    (Ray Data keeps an actor pool's constructor arguments in the object store, which spills to disk
    under memory pressure; a small reply to a call is not stored there.) If it dies, Ray starts it again
    from its creation task (whose small arguments the control store keeps in memory), and a worker
    restarted meanwhile waits for it rather than failing the job."""

    def __init__(self, keys: dict[str, str]):
        self.keys = keys

    def get(self) -> dict[str, str]:
        return self.keys


class _Worker:
    """One actor: the transform, applied to Arrow batches, with the keys put in the actor's environment
    where the LLMs' `Secret`s look for them, and each finished batch kept in `checkpoint` if given."""

    def __init__(self, transform: MapTransform, keys, checkpoint: str | None):
        os.environ.update(ray.get(keys.get.remote()))
        self.transform = transform
        self.checkpoint = Checkpoint(checkpoint, transform) if checkpoint else None

    def __call__(self, table):
        if self.checkpoint is None:
            return self.transform(table)
        stored = self.checkpoint.get(table)  # (not `or`: a table of no rows is falsy)
        return stored if stored is not None else self.checkpoint.put(table, self.transform(table))


def _share(llm: LLM, actors: int) -> LLM:
    """`llm` with its limits divided among `actors` processes."""
    def part(limit, least=1):
        return limit and max(least, limit // actors)

    return llm.replace(max_concurrency=part(llm.max_concurrency), requests_per_minute=part(llm.requests_per_minute),
                       tokens_per_minute=part(llm.tokens_per_minute, llm.sampling()["max_tokens"]))


def for_actors(transform: MapTransform, actors: int) -> tuple[MapTransform, dict[str, str]]:
    """A copy of `transform` for each of `actors` actors (limits divided, the request cache folder
    resolved here), and the environment variables that carry its LLMs' keys."""
    shared = copy.copy(transform)
    shared.llm = _share(transform.llm, actors)
    shared.llms = {agent: _share(llm, actors) for agent, llm in transform.llms.items()}
    if transform.cache is True:
        shared.cache = str(default_cache_dir().resolve())
    keys: dict[str, str] = {}
    for llm in (transform.llm, *transform.llms.values()):
        keys.update(llm.api_key.environment())
    return shared, keys


def map_batches(dataset, transform: MapTransform, *, actors: int = ACTORS, batch_size: int = BATCH_SIZE,
                num_cpus: float = ACTOR_CPUS, checkpoint: str | None = None):
    """The lazy `ray.data.Dataset` of `dataset` (a `ray.data.Dataset` or a `datasets.Dataset`) with
    `transform`'s columns. `checkpoint`: a folder or URI on storage every node sees (`Checkpoint`).
    Errors surface when it is consumed, as Ray's; `run` raises ours."""
    if not isinstance(transform, MapTransform):
        raise TypeError(f"hf_synth.ray runs hf_synth transforms, not {type(transform).__name__}")
    if type(dataset).__module__.startswith("datasets"):
        dataset = from_datasets(dataset, rows_per_block=max(batch_size, -(-len(dataset) // (4 * actors))))
    if checkpoint:
        Checkpoint(checkpoint, transform)  # a location that cannot be written is said before any request
    shared, keys = for_actors(transform, actors)
    # where the actors write their counts for the live status and the summary: a cluster that this
    # process did not start has not inherited it
    reporting = {FOLDER_VARIABLE: os.environ[FOLDER_VARIABLE]} if FOLDER_VARIABLE in os.environ else {}
    holder = _Keys.remote({**keys, **reporting})
    return dataset.map_batches(_Worker, fn_constructor_args=(shared, holder, checkpoint), batch_format="pyarrow",
                               batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=actors),
                               num_cpus=num_cpus)


def from_datasets(dataset, rows_per_block: int):
    """A `datasets.Dataset` as a Ray dataset of blocks of `rows_per_block` rows (one block would keep
    all but one actor idle)."""
    table = dataset.flatten_indices().data.table
    return ray.data.from_arrow([table.slice(start, rows_per_block) for start in range(0, max(len(table), 1), rows_per_block)])


def run(dataset, transform: MapTransform, *, output: str | None = None, **options) -> Any:
    """Run `transform` over `dataset` in the input's order: returns the materialized `ray.data.Dataset`,
    or writes Parquet files to `output` (a local folder or any `pyarrow` filesystem URI) and returns
    None. An `HFSynthError` raised in an actor is raised here as itself. `options`: `actors`,
    `batch_size`, `num_cpus`, `checkpoint` (see `map_batches`)."""
    context = ray.data.DataContext.get_current()
    saved = context.execution_options.preserve_order, context.raise_original_map_exception
    # in order, and an actor's own exception rather than Ray Data's UserCodeException (which loses it)
    context.execution_options.preserve_order = context.raise_original_map_exception = True
    try:
        return _execute(map_batches(dataset, transform, **options), output)
    except Exception as error:
        ours = own_error(error)
        if ours is None:
            raise
    finally:
        context.execution_options.preserve_order, context.raise_original_map_exception = saved
    # Ray's error, gone now, held the failed execution in reference cycles: collected at once, its actors
    # end (freeing their CPUs, and the keys' actor its keys) instead of living until a garbage collection
    # happens to run, while a run that follows waits for their CPUs (14-23 s on a 2-CPU cluster)
    gc.collect()
    raise ours


def _execute(mapped, output: str | None):
    # (a frame of its own: the execution is then not a local of `run`, whose frame the error raised keeps)
    if output is None:
        return mapped.materialize()
    mapped.write_parquet(output)
    return None


def connect(address: str) -> None:
    """Join the Ray cluster at `address` ("auto", "ray://head:10001", ...), or with "local" start one on
    this machine. (A local cluster listens on 127.0.0.1 only when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
    was set before Ray was imported, as the CLI does.)"""
    if not ray.is_initialized():
        # Ray's daemons inherit this process's environment: not the variables of keys given in code
        # (workers ask the keys actor for those)
        given = {name: value for name, value in os.environ.items() if name.startswith(GIVEN_PREFIX)}
        for name in given:
            del os.environ[name]
        try:
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        finally:
            os.environ.update(given)


def to_datasets(materialized):
    """A materialized Ray dataset as a `datasets.Dataset`, in order."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(pa.concat_tables(ray.get(materialized.to_arrow_refs()))))


def own_error(error: BaseException) -> HFSynthError | None:
    """The `HFSynthError` that Ray wrapped in `error`, rebuilt without Ray's traceback, if there is one."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, HFSynthError) and not isinstance(error, ray.exceptions.RayError):
            # our messages are one line; Ray Data appends its retry advice to the exception's text
            return type(error)(str(error.args[0]).split("\n", 1)[0] if error.args else "")
        cause = getattr(error, "cause", None)
        error = cause if isinstance(cause, BaseException) else error.__cause__ or error.__context__
    return None
