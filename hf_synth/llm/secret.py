"""`Secret`: an API key that belongs to one `LLM` and reaches every kind of worker without being written
anywhere.

A pickle carries only the *name* of the environment variable that holds the key, never the key. A key
given in code is put in this process's environment under a name of its own (``HF_SYNTH_KEY_<random>``):
forked and spawned workers inherit the environment, so they find it there; a runner that starts other
workers (Ray) passes `Secret.environment()` to them. A key read from a variable (``OPENAI_API_KEY`` by
default) is read again from that variable in each worker.
"""
from __future__ import annotations

import hmac
import os
import secrets
import weakref

from ..errors import ConfigError, EndpointError

GIVEN_PREFIX = "HF_SYNTH_KEY_"
_NAMING = secrets.token_bytes(16)  # names a given key's variable without revealing anything of it
_holders: dict[str, int] = {}  # a given key's variable -> the Secrets of this process that hold it


def environment_without_keys() -> dict[str, str]:
    """This process's environment without the variables that hold keys given in code: for the
    processes hf_synth starts that send no requests."""
    return {name: value for name, value in os.environ.items() if not name.startswith(GIVEN_PREFIX)}


def _let_go(name: str, pid: int) -> None:
    _holders[name] -= 1
    if not _holders[name] and os.getpid() == pid:
        del _holders[name]
        os.environ.pop(name, None)


def check_key(key: str, where: str) -> None:
    """Refuse a key that no HTTP header can carry, in one sentence that does not show it."""
    if not isinstance(key, str):
        raise ConfigError(f"{where}: the API key must be text, not {type(key).__name__}.")
    if not key:
        raise ConfigError(f"{where}: the API key is empty.")
    if any(c.isspace() or ord(c) < 32 or ord(c) >= 127 for c in key):
        raise ConfigError(f"{where}: the API key contains whitespace, a control character or a non-ASCII "
                          "character (a trailing newline from a file?); strip it and try again.")


class Secret:
    """An API key: never printed, compared in constant time, pickled as the name of its variable."""

    __slots__ = ("env", "_value", "had_value", "__weakref__")

    def __init__(self, env: str, value: str | None, had_value: bool):
        self.env = env
        self._value = value
        self.had_value = had_value

    @classmethod
    def given(cls, key: str) -> "Secret":
        check_key(key, "LLM(api_key=...)")
        name = GIVEN_PREFIX + hmac.new(_NAMING, key.encode(), "sha256").hexdigest()[:16]
        os.environ[name] = key  # inherited by forked and spawned workers
        secret = cls(name, key, True)
        _holders[name] = _holders.get(name, 0) + 1
        weakref.finalize(secret, _let_go, name, os.getpid())
        return secret

    @classmethod
    def from_environment(cls, name: str) -> "Secret":
        key = os.environ.get(name) or None
        if key is not None:
            check_key(key, f"the environment variable {name}")
        return cls(name, key, key is not None)

    def reveal(self) -> str | None:
        """The key, for the Authorization header only. In a worker it comes from the environment."""
        if self._value is None and self.had_value:
            self._value = os.environ.get(self.env) or None
            if self._value is None:
                how = ("set it in the workers' environment" if not self.env.startswith(GIVEN_PREFIX)
                       else "run the workers with fork or spawn, hf_synth.ray, or put the key in an "
                            "environment variable and pass LLM(api_key_env=NAME)")
                raise EndpointError(f"The API key did not reach this worker process (it looked in the environment "
                                    f"variable {self.env}): {how}.")
        return self._value

    def environment(self) -> dict[str, str]:
        """The variable a worker needs to find the key (for runners whose workers do not inherit ours)."""
        value = self.reveal()
        return {self.env: value} if value is not None else {}

    def __getstate__(self):
        return {"env": self.env, "had_value": self.had_value}

    def __setstate__(self, state):
        self.env, self.had_value, self._value = state["env"], state["had_value"], None

    def __eq__(self, other):
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal() or "", other.reveal() or "")

    def __hash__(self):
        return 0  # equal secrets must hash alike; nothing about the key goes into a hash

    def __repr__(self):
        return "Secret(***)" if self.had_value else "Secret(None)"
