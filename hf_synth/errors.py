"""Errors that stop a whole run. Plain exceptions with one-sentence messages, so they pickle
across `num_proc` workers (an SDK exception that cannot be unpickled makes `Dataset.map` hang)."""


class HFSynthError(RuntimeError):
    """Base class: the message is one sentence that says what went wrong and how to fix it."""


class EndpointError(HFSynthError):
    """The LLM endpoint cannot serve this run (unreachable, key rejected, model unknown)."""


class InputError(HFSynthError, ValueError):
    """The dataset does not have the shape the transform needs (e.g. missing columns)."""
