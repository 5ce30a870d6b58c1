"""Every error hf_synth raises, in one tree. Plain exceptions with one-sentence messages, so they pickle
across `num_proc` workers (an SDK exception that cannot be unpickled makes `Dataset.map` hang).

    HFSynthError                the run stops: the message says what went wrong and how to fix it
    ├── ConfigError             an LLM, transform or option made wrongly (refused when it is made)
    ├── InputError              the dataset lacks what the transform needs (e.g. a column)
    ├── EndpointError           the endpoint cannot serve this run (unreachable, key rejected, ...)
    ├── CacheError              the request cache cannot be opened or written
    └── WorkerDied              a `num_proc` worker process was killed (datasets' RuntimeError, said plainly)

    RowFailure                  one row fails: it is marked in <prefix>_error and the run goes on
    ├── CallFailed              one of its LLM calls failed for good, or its reply was unusable
    └── RowError                its input is not what the method can work on

Which failures are the row's and which the endpoint's is decided in one place: `llm/failures.py`.
"""


class HFSynthError(RuntimeError):
    """Base class: the message is one sentence that says what went wrong and how to fix it."""


class ConfigError(HFSynthError, ValueError):
    """An `LLM`, a transform or an option is malformed (a key with a newline, credentials in a URL)."""


class EndpointError(HFSynthError):
    """The LLM endpoint cannot serve this run (unreachable, key rejected, model unknown, failing)."""


class InputError(HFSynthError, ValueError):
    """The dataset does not have the shape the transform needs (e.g. missing columns)."""


class CacheError(HFSynthError):
    """The request cache cannot be opened or written (a read-only folder, a path that is a file)."""


class WorkerDied(HFSynthError):
    """A `num_proc` worker process died under `Dataset.map` (killed from outside, or by the system for
    lack of memory)."""


def as_what_happened(exc: BaseException) -> BaseException:
    """What `Dataset.map` with `num_proc` raised, as what happened: the pool's TimeoutError it raises
    while handling a KeyboardInterrupt (it waits 0.05 s for the interrupted workers) is that
    KeyboardInterrupt, and its RuntimeError for a worker that died is a `WorkerDied`. Anything else is
    itself."""
    seen = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__context__
    if type(exc) is RuntimeError and str(exc).startswith("One of the subprocesses has abruptly died"):
        return WorkerDied("A num_proc worker process died (killed from outside, or by the system for lack of "
                          "memory): completed requests are cached, so running the same job again resumes it "
                          "(with a smaller num_proc if memory is short).")
    return exc


class RowFailure(Exception):
    """Base class of what fails one row only; the row is kept and marked with the message."""


class CallFailed(RowFailure):
    """Thrown into a method when one of its requests failed for good (retries exhausted, the endpoint
    refused this request, or the reply was unusable). A method may catch it; if it does not, the row is
    marked with it. `blame` is "row" or "endpoint" (see `llm/failures.py`)."""

    def __init__(self, message: str, blame: str = "row"):
        super().__init__(message)
        self.blame = blame

    def __reduce__(self):
        return (type(self), (str(self), self.blame))


class RowError(RowFailure, ValueError):
    """Raised by a method for input it cannot work on; the row is marked with the message."""
