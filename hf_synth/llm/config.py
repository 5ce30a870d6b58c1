"""`LLM`: the description of one OpenAI-compatible endpoint and how to sample from it.

It is a frozen value, validated once when it is made: no client, no connection, nothing unpicklable.
Connections are made lazily by its transport in each process. Each field says what it is for (field metadata):
`identity` fields change what the endpoint answers (they key the request cache and the fingerprint),
`sampling` fields are sent with every request (and are part of the identity too), `transport` fields
only change how requests are sent. The API key is a `Secret` that belongs to this LLM: it never prints,
never hashes and never pickles (see `secret.py`).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError, EndpointError
from .secret import Secret
from . import structured
from ..shapes import Shape
from .structured import DIALECTS

OPENAI_BASE_URL = "https://api.openai.com/v1"
IDENTITY, SAMPLING, TRANSPORT = "identity", "sampling", "transport"
BATCH_DIALECTS = ("openai", "anthropic")
# What a sampling field left unset takes when no method states its own (CoEvol's, Appendix B).
GENERIC_SAMPLING = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 1000}
# The embedded 135M model, where the user set nothing else: a budget that suits it (a reply it does not
# end by 1,024 tokens is a loop, not an answer; ReviewInstruct's 8,192 cost minutes a row on a CPU) and
# llama.cpp's repetition penalty raised from 1.1 to 1.3 (over a window of 256 tokens, `local.py`):
# docs/performance.md. Never applied to another endpoint.
EMBEDDED_MAX_TOKENS = 1024
EMBEDDED_EXTRA_BODY = {"repeat_penalty": 1.3}


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def check_url(url: str) -> str:
    """`url` if it is an http(s) URL without credentials, else a `ConfigError` (that never shows them)."""
    if not isinstance(url, str) or not url:
        raise ConfigError(f"LLM(base_url={url!r}): give an http(s) URL such as http://host:8000/v1.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ConfigError(f"LLM(base_url=...): {without_credentials(url)!r} is not a valid URL.") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"LLM(base_url=...): the URL {without_credentials(url)} carries credentials "
                          "(user:password@); remove them and pass the key as api_key= (or api_key_env=).")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"LLM(base_url={url!r}): give an http(s) URL with a host, such as http://host:8000/v1.")
    return url


def _field(kind: str, default, **kwargs):
    return field(default=default, metadata={"kind": kind}, **kwargs)


@dataclass(frozen=True, eq=True, repr=False)
class LLM:
    """One OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, llama.cpp, Ollama, TGI, ...).

    `LLM()` with no `model` and no `base_url` (and no ``OPENAI_BASE_URL``) is the embedded local
    model: a llama.cpp server with SmolLM2-135M-Instruct, started on first use.

    `temperature`, `top_p` and `max_tokens` left unset (None) take the values of the method that uses
    this LLM (its paper's: ReviewInstruct samples at 0.1 with 8,192 tokens), and otherwise 0, 1.0 and
    1000 (CoEvol's, Appendix B). The embedded model takes at most 1,024 tokens and llama.cpp's
    `repeat_penalty` 1.3 where nothing else was set (a 135M model loops; docs/performance.md). A value
    given here always wins.
    `base_url` may be a list: replicas serving the same model (several vLLM servers, say). Each
    request goes to the replica with the fewest outstanding requests, each replica with its own
    `max_concurrency`; a replica that fails for good is left out of the run. The first URL names
    the endpoint in the request cache and the fingerprint, so adding or removing replicas keeps
    both.

    The key is `api_key`, or else the environment variable `api_key_env` (``OPENAI_API_KEY``); it
    belongs to this LLM and reaches forked and spawned workers (see `secret.py`).

    `structured` holds the replies a method parses to their declared shape (a verdict label, labelled
    fields, a score) by the endpoint's constrained decoding, in its dialect: ``"llama.cpp"``,
    ``"vllm"``, ``"sglang"`` or ``"openai"`` (see `structured.py`); None sends the paper's prompts
    alone. The default, ``"auto"``, is ``"llama.cpp"`` for the embedded model and None otherwise.

    `system_role=False` is for models without a system role (CoEvol Appendix A.2, e.g. Mixtral): each
    request's system prompt is put in front of its first user turn instead.

    `batch=True` (or ``"openai"``) sends the requests through the endpoint's Batch API (OpenAI's
    protocol: half the price, within 24 hours; docs/batch.md) instead of one by one; ``"anthropic"``
    through Anthropic's Message Batches (base_url https://api.anthropic.com, the `[anthropic]` extra):
    the requests the rows are waiting on go out as one batch per step of the method, looked at every
    `batch_poll` seconds. The outputs, the request
    cache and the fingerprint are the same as online.

    `prices` are US$ per million input and output tokens, for the cost shown and capped (`llm/prices.py`
    has a dated table of common hosted models; through a batch API, half); None: the table's, if any.

    `max_concurrency`, `timeout` (seconds for a whole request: connecting, headers and body; a
    connection not made within half of it, 2 to 20 s, counts toward the endpoint being unreachable),
    `max_retries` and the optional `requests_per_minute` and `tokens_per_minute` budgets (for hosted
    APIs; a request counts its prompt's characters / 4 plus `max_tokens`) tune how requests are sent,
    per process: they never change what a run produces, so they are not part of the fingerprint.
    """

    model: str | None = _field(IDENTITY, None)
    base_url: str | None = _field(IDENTITY, None)
    api_key: Any = field(default=None, repr=False, metadata={"kind": "secret"})
    temperature: float | None = _field(SAMPLING, None)
    top_p: float | None = _field(SAMPLING, None)
    max_tokens: int | None = _field(SAMPLING, None)
    seed: int | None = _field(SAMPLING, None)
    max_concurrency: int = _field(TRANSPORT, 64)
    timeout: float = _field(TRANSPORT, 600.0)
    max_retries: int = _field(TRANSPORT, 5)
    extra_body: dict[str, Any] | None = _field(IDENTITY, None)
    requests_per_minute: int | None = _field(TRANSPORT, None)
    tokens_per_minute: int | None = _field(TRANSPORT, None)
    api_key_env: str = field(default="OPENAI_API_KEY", metadata={"kind": TRANSPORT})
    system_role: bool = _field(IDENTITY, True)
    structured: str | None = _field(IDENTITY, "auto")
    batch: bool | str = _field(TRANSPORT, False)
    batch_poll: float = _field(TRANSPORT, 30.0)
    prices: tuple[float, float] | None = _field(TRANSPORT, None)
    replicas: tuple[str, ...] = field(init=False, default=(), compare=True, metadata={"kind": "derived"})

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)
        base_url = self.base_url
        if isinstance(base_url, (list, tuple)):
            if not base_url:
                raise ConfigError("LLM(base_url=[]): give one URL or a non-empty list of URLs.")
            replicas = tuple(check_url(url) for url in base_url)
            base_url = replicas[0]
        else:
            base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
            replicas = (check_url(base_url),) if base_url else ()
        embedded = self.model is None and base_url is None
        if base_url is None and not embedded:
            base_url, replicas = OPENAI_BASE_URL, (OPENAI_BASE_URL,)
        if not embedded and not self.model:
            raise ConfigError(f"LLM(base_url={without_credentials(base_url)!r}) needs model=: pass the model name "
                              "the server serves (e.g. the one listed by GET /v1/models).")
        if self.max_concurrency < 1 or self.max_retries < 0 or self.timeout <= 0 or (self.max_tokens is not None and self.max_tokens < 1):
            raise ConfigError("LLM: max_concurrency and max_tokens must be >= 1, max_retries >= 0, timeout > 0.")
        self._check_token_budget()
        if self.structured not in (None, "auto", *DIALECTS):
            raise ConfigError(f"LLM(structured={self.structured!r}): give one of {', '.join(map(repr, DIALECTS))}, "
                              "or None to leave replies unconstrained.")
        if self.batch not in (False, True, *BATCH_DIALECTS):
            raise ConfigError(f"LLM(batch={self.batch!r}): give True (the OpenAI Batch API's protocol), "
                              f"{' or '.join(map(repr, BATCH_DIALECTS))}, or False.")
        if self.batch is True:
            set_("batch", "openai")
        if self.batch == "anthropic" and self.structured not in (None, "auto"):
            raise ConfigError("LLM(batch='anthropic') holds no reply to a shape (Anthropic's API constrains no "
                              "decoding): leave structured= unset.")
        if self.batch and embedded:
            raise ConfigError("LLM(batch=True) sends requests through a hosted Batch API: give model= and base_url= "
                              "(the embedded model has none).")
        if self.prices is not None:
            try:
                prices = tuple(float(price) for price in self.prices)
            except (TypeError, ValueError):
                prices = ()
            if len(prices) != 2 or min(prices) < 0:
                raise ConfigError(f"LLM(prices={self.prices!r}): give two prices, US$ per million input and output "
                                  "tokens, e.g. prices=(0.15, 0.60).")
            set_("prices", prices)
        if self.batch_poll <= 0:
            raise ConfigError(f"LLM(batch_poll={self.batch_poll}): give the seconds between looks at a batch, > 0.")
        if self.structured == "auto":
            set_("structured", "llama.cpp" if embedded else None)
        if embedded:
            key = Secret(self.api_key_env, None, False)  # the embedded server takes no key
        elif isinstance(self.api_key, Secret):
            key = self.api_key
        elif self.api_key is not None:
            key = Secret.given(self.api_key)
        else:
            key = Secret.from_environment(self.api_key_env)
        set_("base_url", base_url)
        set_("replicas", replicas)
        set_("api_key", key)
        set_("extra_body", dict(self.extra_body or {}))

    def _check_token_budget(self) -> None:
        if (self.requests_per_minute or 1) < 1 or (self.tokens_per_minute or 1 << 62) < (self.max_tokens or 1):
            raise ConfigError(f"LLM: requests_per_minute must be >= 1 and tokens_per_minute >= max_tokens "
                              f"({self.max_tokens}), since every request counts its max_tokens.")

    def replace(self, **changes) -> "LLM":
        """A copy with `changes`, keeping its replicas and its key."""
        urls = list(self.replicas) if len(self.replicas) > 1 else self.base_url if self.replicas else None
        return dataclasses.replace(self, **{"base_url": urls, "api_key": self.api_key, **changes})

    def with_defaults(self, **method_sampling) -> "LLM":
        """This LLM with its unset sampling fields given the method's values (`method_sampling`),
        then the generic ones (for the embedded model, its own budget and repetition penalty): what
        is sent. Fields the user set are kept."""
        unset = {name: method_sampling.get(name, generic) for name, generic in GENERIC_SAMPLING.items()
                 if getattr(self, name) is None}
        if self.embedded:
            if "max_tokens" in unset:
                unset["max_tokens"] = min(unset["max_tokens"], EMBEDDED_MAX_TOKENS)
            if any(name not in self.extra_body for name in EMBEDDED_EXTRA_BODY):
                unset["extra_body"] = {**EMBEDDED_EXTRA_BODY, **self.extra_body}
        if not unset:
            return self
        resolved = self.replace(**unset)
        resolved._check_token_budget()
        return resolved

    @property
    def embedded(self) -> bool:
        return not self.replicas

    @property
    def endpoint_id(self) -> str:
        """Who answers, without credentials or ports that change per run."""
        if self.embedded:
            from .local import embedded_model_id

            try:
                return embedded_model_id()
            except EndpointError:
                return "embedded:not-installed"  # the run itself will say how to install it
        return without_credentials(self.base_url)

    def messages(self, messages) -> list[dict]:
        """`messages` as this model takes them: without a system role, the system prompt goes in front
        of the first user turn (CoEvol Appendix A.2)."""
        if self.system_role or not messages or messages[0]["role"] != "system":
            return list(messages)
        system, rest = messages[0], list(messages[1:])
        first = next((i for i, m in enumerate(rest) if m["role"] == "user"), None)
        if first is None:
            return [{"role": "user", "content": system["content"]}, *rest]
        rest[first] = {**rest[first], "content": f"{system['content']}\n\n{rest[first]['content']}"}
        return rest

    def constraint(self, shape: Shape | None) -> dict | None:
        """The request-body fields that hold a reply to `shape`, in this endpoint's dialect; None when
        the request has no shape or this LLM is not `structured`."""
        return structured.constraint(shape, self.structured) if shape is not None and self.structured else None

    def _fields(self, *kinds: str) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata["kind"] in kinds}

    def sampling(self) -> dict[str, Any]:
        """The parameters sent with every request (they change the output); unset ones at their
        generic values (a transform has given them its method's before anything is sent)."""
        params = self._fields(SAMPLING)
        if params["seed"] is None:
            del params["seed"]
        return {**params, **{name: value for name, value in GENERIC_SAMPLING.items() if params[name] is None}}

    def identity(self) -> dict[str, Any]:
        """Everything about this LLM that changes what it answers: keys the request cache and
        the dataset fingerprint. No secret, no concurrency, no timeouts."""
        identity = {"endpoint": self.endpoint_id, "model": self.model, **self.sampling(), "extra_body": self.extra_body}
        # (absent when default, so that older caches and fingerprints still match)
        if not self.system_role:
            identity["system_role"] = False
        if self.structured:
            identity["structured"] = self.structured
        return identity

    def settings(self) -> dict[str, Any]:
        """The arguments that rebuild this LLM with `LLM(**settings)`, without the API key or the
        URL's credentials: what a recipe or a dataset card may show."""
        settings = self._fields(IDENTITY, SAMPLING, TRANSPORT)
        urls = [without_credentials(url) for url in self.replicas]
        settings["base_url"] = None if self.embedded else urls[0] if len(urls) == 1 else urls
        return settings

    @property
    def kind(self) -> str:
        """What sort of endpoint answers, in words (a card shows this, not the URL)."""
        if self.embedded:
            return "embedded llama.cpp server"
        if without_credentials(self.base_url) == OPENAI_BASE_URL:
            return "OpenAI API"
        return "OpenAI-compatible server"

    def __repr__(self) -> str:
        where = "embedded llama.cpp" if self.embedded else f"{self.model!r} at {without_credentials(self.base_url)}"
        sampling = ", ".join(f"{name}={getattr(self, name)}" for name in GENERIC_SAMPLING
                             if getattr(self, name) is not None)
        return f"LLM({where}{', ' if sampling else ''}{sampling})"

    def __hash__(self):
        return hash(repr(self))
