"""The one door into `llm/`: an agent's chat goes in, its reply comes out — or the row's failure
(`CallFailed`), or the run's stop (`EndpointError`).

Behind the door, in order: the agent's LLM; the request cache (a reply stored by any earlier run is
served as is); identical requests in flight at the same time sent once; the replica with the fewest
outstanding requests among those that can still serve the run; its endpoint's limits, budgets and
retries (`endpoint.py`) over its transport (`transport.py`); the structured-reply constraint and the
reading back of a reply written as JSON; the check that a reply is usable; usage and the process's
counts. A request goes down once and comes back once.

Per process, and shared by every run in it: one set of endpoints per LLM (its key included), one
request cache per folder, the requests in flight.
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from functools import partial
from typing import Mapping

from .. import status
from ..errors import CallFailed, EndpointError
from ..protocol import Chat, Reply
from ..shapes import Shape
from . import codec, structured
from .cache import RequestCache, default_cache_dir, key_of
from .config import LLM
from .endpoint import Endpoint
from .transport import Completion
from .failures import unusable
from .local import embedded_servers
from .batch_anthropic import AnthropicBatchTransport
from .batch_openai import OpenAIBatchTransport
from .online import OnlineTransport
from .pacing import RateBudget
from .prices import cost, prices_of
from .spending import Spending


@dataclass
class Usage:
    """The work a row needed: completions, their tokens (reasoning tokens counted apart, where the
    endpoint reports them) and what they cost when they were first paid (the same whether served or
    cached; None when no call's price is known)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cost: float | None = None
    waited: int = 0  # calls that went to the endpoint rather than the cache (not a column: the live status's)

    def as_dict(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "reasoning_tokens": self.reasoning_tokens, "cost": self.cost}


class _Shared:
    def __init__(self):
        self.pid = os.getpid()
        self.endpoints: dict[LLM, list[Endpoint]] = {}  # by LLM (its key included): one per replica
        self.caches: dict[str, RequestCache] = {}
        self.sent_at: dict[str, float] = {}             # requests in flight by key, oldest first: when they were sent
        self.waiting: dict[str, asyncio.Future] = {}    # their replies, by key, where an identical request waits
        self.spendings: dict[str, Spending] = {}        # a run's caps, by the run's id


_shared: _Shared | None = None


def shared() -> _Shared:
    """This process's endpoints, caches and requests in flight (a forked worker makes its own)."""
    global _shared
    if _shared is None or _shared.pid != os.getpid():
        _shared = _Shared()
    return _shared


def endpoints(llm: LLM) -> list[Endpoint]:
    """One endpoint per replica of `llm`, made once per process; they share the LLM's rate budget."""
    llm = llm.with_defaults()
    made = shared().endpoints
    if llm not in made:
        budget = (RateBudget(llm.requests_per_minute, llm.tokens_per_minute, llm.max_tokens)
                  if llm.requests_per_minute or llm.tokens_per_minute else None)
        urls = llm.replicas or [None] * embedded_servers()  # the embedded model runs one server per core
        if llm.batch:
            batches = AnthropicBatchTransport if llm.batch == "anthropic" else OpenAIBatchTransport
            made[llm] = [Endpoint(llm, batches(llm, url)) for url in urls]
        else:
            made[llm] = [Endpoint(llm, OnlineTransport(llm, url, replica), budget) for replica, url in enumerate(urls)]
        for endpoint in made[llm]:
            endpoint.before_send = partial(_write_held_replies, shared().caches)
    return made[llm]


def _write_held_replies(caches: dict[str, RequestCache]) -> None:
    """Before a request goes out, the replies completed so far are put on disk (`RequestCache.write_held`)."""
    for cache in caches.values():
        cache.write_held()


def spending(run: str, max_cost: float | None, max_requests: int | None) -> Spending:
    """The caps of the run `run` in this process (they hold across its `map` batches)."""
    spendings = shared().spendings
    if run not in spendings:
        spendings[run] = Spending(max_cost, max_requests)
    return spendings[run]


def forget_endpoints() -> None:
    """Close this process's connections and forget its endpoints, as a new process would start."""
    from . import loop

    made = shared().endpoints
    for endpoint in [endpoint for replicas in made.values() for endpoint in replicas]:
        loop.run(endpoint.transport.close())
    made.clear()


def request_cache(folder: str | os.PathLike | bool | None = True) -> RequestCache | None:
    """The request cache in `folder` (True or None: the default folder; False: none), opened once per
    process."""
    if folder is False:
        return None
    folder = str(folder if folder not in (True, None) else default_cache_dir())
    caches = shared().caches
    if folder not in caches:
        caches[folder] = RequestCache(folder)
    return caches[folder]


class _Route:
    """How one LLM's requests are made, worked out once: the identity that keys its cache entries, the
    body fields every request carries, the constraint of each reply shape."""

    def __init__(self, llm: LLM):
        self.llm = llm
        self.endpoints = endpoints(llm)
        self.identity = codec.canonical(llm.identity())
        self.fields = {"model": llm.model or "embedded", **llm.sampling(), **llm.extra_body}
        self.prices = prices_of(llm.model, llm.prices, llm.batch)  # None: unknown (a self-hosted model)
        self._constraints: dict[Shape, tuple[dict, bytes]] = {}

    def body(self, chat: Chat, constraint: dict | None) -> dict:
        """The JSON body that asks for `chat`."""
        return {**self.fields, "messages": self.llm.messages(chat.messages), **(constraint or {})}

    def constraint(self, shape: Shape | None) -> tuple[dict | None, bytes | None]:
        """The body fields holding a reply to `shape`, and their canonical JSON (None, None: none)."""
        if shape is None or not self.llm.structured:
            return None, None
        if shape not in self._constraints:
            fields = structured.constraint(shape, self.llm.structured)
            self._constraints[shape] = fields, codec.canonical(fields)
        return self._constraints[shape]


_NOT_LOOKED_UP = object()


class Door:
    """Asked by the runner for every reply of a run. `llms` maps agent names to their LLM; agents not
    named use `default`. `cache` is a folder, True for the default folder, or False for none. With
    `ask_again_unusable` (an explicit retry of failed rows), a cached reply that cannot be used —
    empty, cut, filtered — is asked for again instead of failing its row again."""

    def __init__(self, llms: Mapping[str, LLM], default: LLM, cache: str | os.PathLike | bool | None = True,
                 ask_again_unusable: bool = False, spending: Spending | None = None):
        self._ask_again_unusable = ask_again_unusable
        self._spending = spending
        self._shared = shared()
        self._counts = status.counts()
        self._cache = request_cache(cache)
        if self._cache is not None:
            self._cache.adopt_orphans()
        self._default = default.with_defaults()  # (a transform has given them its method's sampling)
        self._llms = {agent: llm.with_defaults() for agent, llm in llms.items()}
        self._routes: dict[str, _Route] = {}
        self._by_llm: dict[LLM, _Route] = {}
        # the first requests looked up together, by id(): (the chat, its key, its stored reply or None)
        self._looked_up: dict[int, tuple[Chat, str, dict | None]] = {}
        self._to_look_up: list[tuple[str, asyncio.Future]] = []  # later requests' keys, looked up at the turn's end

    def _route(self, agent: str) -> _Route:
        route = self._routes.get(agent)
        if route is None:
            llm = self._llms.get(agent, self._default)
            if llm not in self._by_llm:  # agents that share an LLM share its route
                self._by_llm[llm] = _Route(llm)
                for endpoint in self._by_llm[llm].endpoints:
                    if hasattr(endpoint.transport, "use_journal"):  # batches are journaled beside the cache
                        endpoint.transport.use_journal(self._cache.path.parent if self._cache is not None else default_cache_dir())
            route = self._routes[agent] = self._by_llm[llm]
        return route

    def prefetch(self, chats: list[Chat]) -> None:
        """Look up the stored replies of `chats`, about to be asked (a run's first requests), in one query
        rather than one each."""
        if self._cache is None or not chats:
            return
        keys = [self._key(chat) for chat in chats]
        found = self._cache.get_many(keys)
        self._looked_up = {id(chat): (chat, key, found.get(key, _NOT_LOOKED_UP)) for chat, key in zip(chats, keys)}

    def _key(self, chat: Chat) -> str:
        route = self._route(chat.agent)
        return key_of(route.identity, chat.messages, route.constraint(chat.shape)[1])

    def _key_and_stored(self, chat: Chat) -> tuple[str, dict | None | asyncio.Future]:
        """The key of `chat` and its stored reply (None: none) as looked up with the run's first requests
        (their key made once), or a future of it, looked up with the others asked in this turn."""
        looked_up = self._looked_up.pop(id(chat), None)
        if looked_up is None or looked_up[0] is not chat:
            key = self._key(chat)
            return key, self._look_up(key) if self._cache is not None else None
        _, key, stored = looked_up
        if stored is _NOT_LOOKED_UP:  # (its query failed: asked again, and alone if that fails too)
            return key, self._look_up(key)
        return key, stored if stored is not None else self._cache.recent(key)  # (completed since the look-up?)

    def _look_up(self, key: str) -> asyncio.Future:
        """The stored reply of `key`, looked up as this turn of the event loop ends, with every other key
        asked for in it: one query, not one each (each query lets go of Python's lock and has to take it
        back from whichever thread took it meanwhile)."""
        loop = asyncio.get_running_loop()
        if not self._to_look_up:
            loop.call_soon(self._look_up_now)
        future = loop.create_future()
        self._to_look_up.append((key, future))
        return future

    def _look_up_now(self) -> None:
        asked, self._to_look_up = self._to_look_up, []
        try:
            found = self._cache.get_many(list(dict.fromkeys(key for key, _ in asked)))
            for key, future in asked:
                if not future.done():  # (its row was cancelled meanwhile)
                    future.set_result(found[key] if key in found else self._cache.get(key))  # (a failed query: alone)
        except Exception as error:  # (the rows that asked fail with it, as they would have looked it up)
            for _, future in asked:
                if not future.done():
                    future.set_exception(error)

    def begin_run(self) -> None:
        """Every run gives each endpoint a new chance."""
        for made in self._shared.endpoints.values():
            for endpoint in made:
                endpoint.begin_run()

    def commit(self) -> None:
        """Start committing the replies not yet in SQLite (they are on disk already, in the reply log)."""
        if self._cache is not None:
            self._cache.commit()

    def flush(self) -> None:
        """Commit the replies not yet in SQLite, and wait for it."""
        if self._cache is not None:
            self._cache.flush()

    def end_run(self) -> None:
        """Stop a run whose requests failed by the endpoint's fault when the endpoint has never served
        this job (no completion, no cached reply), so that a map whose rows all failed that way is never
        cached by `datasets`."""
        for made in self._shared.endpoints.values():
            failed = sum(endpoint.endpoint_failures for endpoint in made)
            if failed and all(endpoint.canary is None for endpoint in made):
                last = made[-1].last_failure or made[0].last_failure
                raise EndpointError(f"{made[0].where} completed none of this job's requests: {failed} failed after "
                                    f"their retries (the last: {last}); completed requests are cached, so the same "
                                    "run resumes when the endpoint is well.")

    async def ask(self, chat: Chat, usage: Usage) -> Reply:
        """The reply to `chat` from its agent's LLM, counted in `usage`; `CallFailed` when the request
        failed for good or its reply cannot be used, `EndpointError` when the run must stop."""
        route = self._route(chat.agent)
        constraint = route.constraint(chat.shape)[0]
        key, stored = self._key_and_stored(chat)
        if isinstance(stored, asyncio.Future):
            stored = await stored
        if stored is not None and self._ask_again_unusable and unusable(stored, route.llm.max_tokens, chat.whole):
            stored = None
        if stored is None:
            usage.waited += 1
            stored = await self._request_once(key, route, chat, constraint)
        else:
            self._counts.cached += 1
            for endpoint in route.endpoints:  # the endpoint served this job before
                if endpoint.canary is None:
                    endpoint.canary = route.body(chat, constraint)
        usage.calls += 1
        usage.prompt_tokens += stored["prompt_tokens"]
        usage.completion_tokens += stored["completion_tokens"]
        usage.reasoning_tokens += stored.get("reasoning_tokens", 0)
        paid = stored.get("cost")  # (what it cost when it was first paid; older cache entries: at today's prices)
        if not isinstance(paid, (int, float)):
            paid = None
        if paid is None and route.prices:
            paid = cost(route.prices, stored["prompt_tokens"], stored["completion_tokens"])
        if paid is not None:
            usage.cost = (usage.cost or 0.0) + paid
        problem = unusable(stored, route.llm.max_tokens, chat.whole, chat.agent)
        if problem:
            raise CallFailed(problem)
        return Reply(stored["text"], stored["finish_reason"])

    async def _request_once(self, key: str, route: _Route, chat: Chat, constraint: dict | None) -> dict:
        """Send a request, or wait for the identical one already in flight; store its reply."""
        counts, sent_at, waiting = self._counts, self._shared.sent_at, self._shared.waiting
        if key in sent_at:
            counts.cached += 1
            if key not in waiting:  # the first to wait makes the future the request's sender settles
                waiting[key] = asyncio.get_running_loop().create_future()
                waiting[key].add_done_callback(lambda future: future.cancelled() or future.exception())  # retrieved
            return await asyncio.shield(waiting[key])
        body = route.body(chat, constraint)
        reserved = self._spending.reserve(route.prices, len(codec.dumps(body)), route.llm.max_tokens) \
            if self._spending is not None else 0.0  # (refused: the row is marked, nothing is sent)
        counts.in_flight += 1
        sent_at[key] = time.time()
        counts.request_since = int(next(iter(sent_at.values())))
        spent, failed, started = 0.0, None, time.monotonic()
        try:
            while True:  # to the least busy replica that can still serve this run; one that cannot passes it on
                try:
                    completion, retries = await _least_busy(route.endpoints).complete(body, chat.messages)
                    break
                except EndpointError:
                    if all(endpoint.fatal is not None for endpoint in route.endpoints):
                        raise
            stored = self._record(route, chat, constraint, completion, retries, started)
            if route.prices:
                stored["cost"] = cost(route.prices, stored["prompt_tokens"], stored["completion_tokens"])
            spent = stored.get("cost") or 0.0
        except BaseException as error:
            counts.failed += isinstance(error, CallFailed)
            failed = error
            raise
        finally:
            del sent_at[key]
            counts.in_flight -= 1
            counts.request_since = int(next(iter(sent_at.values()), 0))
            if self._spending is not None:
                self._spending.settle(reserved, spent)
            waiter = waiting.pop(key, None)
            if waiter is not None and failed is not None:
                waiter.cancel() if isinstance(failed, asyncio.CancelledError) else waiter.set_exception(failed)
        counts.cost_microusd += round(spent * 1e6)
        if self._cache is not None:
            self._cache.put(key, stored)
        if waiter is not None:
            waiter.set_result(stored)
        return stored

    def _record(self, route: _Route, chat: Chat, constraint: dict | None, completion: Completion, retries: int,
                started: float) -> dict:
        """The reply to store for `completion` (read back to its shape where it was constrained to one),
        counted."""
        text = completion.text
        if constraint is not None:
            text = structured.read(chat.shape, route.llm.structured, text)
        counts = self._counts
        counts.sent += 1
        counts.request_ms += round((time.monotonic() - started) * 1000)
        counts.retries += retries
        counts.prompt_tokens += completion.prompt_tokens
        counts.completion_tokens += completion.completion_tokens
        stored = {"text": text, "finish_reason": completion.finish_reason,
                  "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
        if completion.reasoning_tokens:
            stored["reasoning_tokens"] = completion.reasoning_tokens
        return stored


def _least_busy(endpoints: list[Endpoint]) -> Endpoint:
    """The replica with the fewest outstanding requests among those that can still serve this run (the
    first when none can: it says why)."""
    if len(endpoints) == 1:
        return endpoints[0]
    serving = [endpoint for endpoint in endpoints if endpoint.fatal is None] or endpoints[:1]
    return min(serving, key=lambda endpoint: endpoint.limit.outstanding)
