"""`LLM`: the description of one OpenAI-compatible endpoint and how to sample from it.

It is a plain value: no client, no connection, nothing unpicklable. Clients are made lazily by the
engine in each process. The API key is a secret: it is kept out of `repr`, pickles and fingerprints.
"""
from __future__ import annotations

import os
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from ..errors import EndpointError

OPENAI_BASE_URL = "https://api.openai.com/v1"

# Keys given explicitly, by endpoint, for this process and the worker processes it forks.
# Pickles carry no key: a worker finds it here (fork) or in the environment.
_API_KEYS: dict[str, str] = {}


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class LLM:
    """One OpenAI-compatible chat endpoint (OpenAI, vLLM, SGLang, llama.cpp, Ollama, TGI, ...).

    `LLM()` with no `model` and no `base_url` (and no ``OPENAI_BASE_URL``) is the embedded local
    model: a llama.cpp server with SmolLM2-135M-Instruct, started on first use.

    Sampling defaults are CoEvol's (Appendix B): temperature 0, top_p 1.0, max_tokens 1000.
    `base_url` may be a list: replicas serving the same model (several vLLM servers, say). Each
    request goes to the replica with the fewest outstanding requests, each replica with its own
    `max_concurrency`; a replica that fails for good is left out of the run. The first URL names
    the endpoint in the request cache and the fingerprint, so adding or removing replicas keeps
    both.

    `max_concurrency`, `timeout`, `max_retries` and the optional `requests_per_minute` and
    `tokens_per_minute` budgets (for hosted APIs; a request counts its prompt's characters / 4
    plus `max_tokens`) tune how requests are sent, per process: they never change what a run
    produces, so they are not part of the fingerprint.
    """

    def __init__(
        self,
        model: str | None = None,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 1000,
        seed: int | None = None,
        max_concurrency: int = 64,
        timeout: float = 600.0,
        max_retries: int = 5,
        extra_body: dict[str, Any] | None = None,
        requests_per_minute: int | None = None,
        tokens_per_minute: int | None = None,
    ):
        if isinstance(base_url, (list, tuple)):
            if not base_url or not all(isinstance(url, str) and url for url in base_url):
                raise ValueError(f"LLM(base_url={base_url!r}): give one URL or a non-empty list of URLs.")
            replicas = tuple(base_url)
            base_url = base_url[0]
        else:
            base_url = base_url or os.environ.get("OPENAI_BASE_URL")
            replicas = ()
        self.embedded = model is None and base_url is None
        if base_url is None and not self.embedded:
            base_url = OPENAI_BASE_URL
        self.replicas = replicas or ((base_url,) if base_url else ())
        if not self.embedded and not model:
            raise ValueError(
                f"LLM(base_url={base_url!r}) needs model=: pass the model name the server serves "
                "(e.g. the one listed by GET /v1/models)."
            )
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0 or max_tokens < 1:
            raise ValueError("LLM: max_concurrency and max_tokens must be >= 1, max_retries >= 0, timeout > 0.")
        if (requests_per_minute or 1) < 1 or (tokens_per_minute or max_tokens) < max_tokens:
            raise ValueError(f"LLM: requests_per_minute must be >= 1 and tokens_per_minute >= max_tokens "
                             f"({max_tokens}), since every request counts its max_tokens.")
        self.model = model
        self.base_url = base_url
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = dict(extra_body or {})
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        if api_key:
            _API_KEYS[self.endpoint_id] = api_key

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

    @property
    def api_key(self) -> str | None:
        if self.embedded:
            return "embedded"
        return _API_KEYS.get(self.endpoint_id) or os.environ.get("OPENAI_API_KEY")

    def sampling(self) -> dict[str, Any]:
        """The parameters sent with every request (they change the output)."""
        params = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}
        if self.seed is not None:
            params["seed"] = self.seed
        return params

    def identity(self) -> dict[str, Any]:
        """Everything about this LLM that changes what it answers: keys the request cache and
        the dataset fingerprint. No secret, no concurrency, no timeouts."""
        return {
            "endpoint": self.endpoint_id,
            "model": self.model,
            **self.sampling(),
            "extra_body": self.extra_body,
        }

    def settings(self) -> dict[str, Any]:
        """The arguments that rebuild this LLM with `LLM(**settings)`, without the API key or the
        URL's credentials: what a recipe or a dataset card may show."""
        urls = [without_credentials(url) for url in self.replicas]
        return {"model": self.model, "base_url": None if self.embedded else urls[0] if len(urls) == 1 else urls,
                **self.sampling(), "seed": self.seed, "extra_body": self.extra_body,
                "max_concurrency": self.max_concurrency, "timeout": self.timeout, "max_retries": self.max_retries,
                "requests_per_minute": self.requests_per_minute, "tokens_per_minute": self.tokens_per_minute}

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
        return f"LLM({where}, temperature={self.temperature}, top_p={self.top_p}, max_tokens={self.max_tokens})"

    def __eq__(self, other):
        return isinstance(other, LLM) and self.__dict__ == other.__dict__

    def __hash__(self):
        return hash(repr(self))
