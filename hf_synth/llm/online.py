"""The online transport: each request is POSTed to the endpoint's `/chat/completions` at once, with
aiohttp directly.

One session per event loop, its keep-alive pool sized to the LLM's concurrency; the headers (the key
among them) are built once; each body is serialised once and each reply parsed once. The SDK's client
spent six times a bare aiohttp loop's CPU on every request (a pydantic options object, URL parsing,
header objects, an httpx layer over an aiohttp adapter); for thousands of short requests on a few
cores that, not the network, was the bottleneck (docs/performance.md).

What comes back is a `Completion`, or one of the failures of `failures.py`, raised from aiohttp's
own error so that a connection never made is told from one dropped.
"""
from __future__ import annotations

import asyncio

import aiohttp

from ..errors import EndpointError
from . import codec
from .config import LLM, OPENAI_BASE_URL, without_credentials
from .failures import ConnectionFailed, NotACompletion, RequestTimedOut, StatusError
from .transport import Completion, headroom, parse_completion

# A connection not made within half of `timeout`, 2 to 20 seconds, is not coming: it fails as one that
# could not connect, so an endpoint whose packets are dropped counts as unreachable, not as slow. (Under
# 2 s, a busy machine's stalls would pass for lost handshakes.)
CONNECT_TIMEOUT = (2.0, 20.0)


def connect_timeout(timeout: float) -> float:
    return min(max(CONNECT_TIMEOUT[0], timeout / 2), CONNECT_TIMEOUT[1])


class OnlineTransport:
    """Sends one LLM's requests to one of its URLs (`base_url`, or a replica's; None for the embedded
    model's server number `replica`, started on first use)."""

    def __init__(self, llm: LLM, base_url: str | None, replica: int = 0):
        self.llm = llm
        self.base_url = base_url
        self.replica = replica
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._url = ""

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is loop:
            return self._session
        base_url = self.base_url
        if base_url is None:
            from .local import embedded_server_urls

            # Blocking on purpose: the servers must be started by this long-lived loop thread, since
            # they are told to die with the thread that started them.
            base_url = embedded_server_urls()[self.replica]
        key = self.llm.api_key.reveal()
        if not key and without_credentials(base_url) == OPENAI_BASE_URL:
            raise EndpointError(f"No API key for the OpenAI API: set {self.llm.api_key_env} or pass LLM(api_key=...).")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:  # self-hosted servers (vLLM, llama.cpp, ...) often need none
            headers["Authorization"] = f"Bearer {key}"
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._loop = loop
        self._session = aiohttp.ClientSession(
            headers=headers, connector=aiohttp.TCPConnector(limit=self.llm.max_concurrency + 2, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self.llm.timeout, sock_connect=connect_timeout(self.llm.timeout)))
        return self._session

    async def send(self, body: dict) -> Completion:
        session = self._open()
        payload = codec.dumps(body)
        try:
            # (awaited rather than entered with `async with`: the same release, four coroutines fewer)
            response = await session.post(self._url, data=payload, allow_redirects=False)
            try:
                raw = await response.read()
            finally:
                response.release()
            status, headers = response.status, response.headers
        except aiohttp.ClientError as exc:  # (a connect timeout included: it is a ClientError)
            raise ConnectionFailed(type(exc).__name__) from exc
        except TimeoutError:
            raise RequestTimedOut() from None
        if status >= 300:
            raise StatusError(status, error_message(raw), headers)
        try:
            reply = codec.loads(raw)
        except UnicodeDecodeError:
            raise NotACompletion("its body is not UTF-8") from None
        except ValueError:  # cut, garbled, an HTML page
            raise NotACompletion("its JSON is cut or malformed" if raw.lstrip()[:1] in (b"{", b"[")
                                 else "not JSON") from None
        completion = parse_completion(reply)
        completion.headroom = headroom(headers)
        return completion

    async def served_models(self) -> list[str]:
        """The model names the endpoint lists (GET /models), or [] when it lists none or cannot say."""
        session = self._open()
        try:
            async with asyncio.timeout(min(self.llm.timeout, 10)):
                async with session.get(self._url.removesuffix("/chat/completions") + "/models") as response:
                    listing = codec.loads(await response.read())
            return sorted(str(model["id"]) for model in listing["data"])
        except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, KeyError):
            return []

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def error_message(raw: bytes) -> str:
    """The message of an HTTP error's body: an OpenAI-style error object's (or vLLM's, or FastAPI's
    `detail`), else the body's start as text."""
    try:
        body = codec.loads(raw)
    except ValueError:
        return raw[:300].decode("utf-8", "replace").strip()
    if isinstance(body, dict):
        error = body.get("error")
        for message in ((error or {}).get("message") if isinstance(error, dict) else error,
                        body.get("message"), body.get("detail")):
            if isinstance(message, str) and message:
                return message
    return raw[:300].decode("utf-8", "replace").strip()
