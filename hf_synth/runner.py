"""The runner: drives many method protocols at once against the LLMs, one row per protocol.

Every row advances on its own (a row in its third round never waits for a slow row in its first).
Requests go through the request cache, then the engine of the LLM that plays the request's agent.
A request that fails for good, or whose reply is unusable (cut, filtered, empty), is thrown into its
protocol; a row that does not recover is marked with the reason and kept. Only an `EndpointError` (the endpoint cannot serve anyone) stops the run.
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import EndpointError, HFSynthError
from .llm.cache import RequestCache, request_key
from .llm.config import LLM
from .llm.engine import Completion, Engine
from .llm.local import embedded_servers
from .llm.pacing import RateBudget
from .protocol import CallFailed, Chat, Protocol, Reply, RowError


@dataclass
class Usage:
    """The work a row needed: completions and their tokens (the same whether served or cached)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def as_dict(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass
class RunStats:
    """What this process actually sent, for summaries and tests (not written to datasets)."""

    sent: int = 0
    cached: int = 0
    retries: int = 0
    failed: int = 0


@dataclass
class Outcome:
    result: Any = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    call_failed: bool = False   # the error is an LLM call that failed for good, not the row's input


class _Process:
    """Per-process state: engines (one per endpoint and settings) and caches (one per folder)."""

    def __init__(self):
        self.pid = os.getpid()
        self.engines: dict[str, list[Engine]] = {}  # by LLM: one per replica
        self.caches: dict[str, RequestCache] = {}
        self.stats = RunStats()


_process: _Process | None = None


def process_state() -> _Process:
    global _process
    if _process is None or _process.pid != os.getpid():
        _process = _Process()
    return _process


def stats() -> RunStats:
    return process_state().stats


class Runner:
    def __init__(self, llms: Mapping[str, LLM], default: LLM, cache_dir: str | None | bool = True):
        """`llms` maps agent names to their LLM; agents not named use `default`. `cache_dir` is a
        folder, True for the default folder, or False for no request cache."""
        state = process_state()
        self._state = state
        self._llms = dict(llms)
        self._default = default
        self._cache = None
        if cache_dir is not False:
            folder = str(cache_dir) if cache_dir not in (True, None) else ""
            if folder not in state.caches:
                state.caches[folder] = RequestCache(folder or None)
            self._cache = state.caches[folder]

    def _engines(self, llm: LLM) -> list[Engine]:
        """One engine per replica of `llm`, made once per process."""
        # the key is part of who we are to the endpoint (in memory only: a new key, a new client)
        key = json.dumps([llm.__dict__, llm.api_key], sort_keys=True, default=str)
        engines = self._state.engines.get(key)
        if engines is None:
            budget = (RateBudget(llm.requests_per_minute, llm.tokens_per_minute, llm.max_tokens)
                      if llm.requests_per_minute or llm.tokens_per_minute else None)
            urls = llm.replicas or [None] * embedded_servers()  # the embedded model runs one server per core
            engines = self._state.engines[key] = [Engine(llm, url, budget, replica) for replica, url in enumerate(urls)]
        return engines

    async def _complete(self, llm: LLM, messages) -> Completion:
        """Sends to the replica with the fewest outstanding requests among those that can still serve
        this run; a replica that cannot passes the request on, until none is left."""
        engines = self._engines(llm)
        while True:
            serving = [engine for engine in engines if engine.fatal is None] or engines[:1]
            try:
                return await min(serving, key=lambda engine: engine.limit.outstanding).complete(messages)
            except EndpointError:
                if all(engine.fatal is not None for engine in engines):
                    raise

    async def run(self, protocols: list[Protocol]) -> list[Outcome]:
        for engines in self._state.engines.values():
            for engine in engines:
                engine.fatal = None  # every run gives every endpoint a new chance
        tasks = [asyncio.ensure_future(self._drive(p)) for p in protocols]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        finally:
            if self._cache is not None:
                self._cache.flush()

    async def _drive(self, protocol: Protocol) -> Outcome:
        outcome = Outcome()
        try:
            request = next(protocol)
            while True:
                try:
                    if isinstance(request, Chat):
                        reply = await self._ask(request, outcome.usage)
                    else:
                        reply = await self._ask_all(request, outcome.usage)
                except CallFailed as failed:
                    request = protocol.throw(failed)
                else:
                    request = protocol.send(reply)
        except StopIteration as done:
            outcome.result = done.value
        except HFSynthError:
            raise
        except CallFailed as failed:
            outcome.error, outcome.call_failed = f"LLM call failed: {failed}", True
        except Exception as exc:  # a row must come out, marked, whatever went wrong in it
            outcome.error = str(exc) if isinstance(exc, RowError) else f"{type(exc).__name__}: {exc}"
        return outcome

    async def _ask_all(self, chats: list[Chat], usage: Usage) -> list[Reply]:
        # Siblings run to completion even when one fails: their replies are cached for a re-run.
        replies = await asyncio.gather(*(self._ask(chat, usage) for chat in chats), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def _ask(self, chat: Chat, usage: Usage) -> Reply:
        llm = self._llms.get(chat.agent, self._default)
        stats = self._state.stats
        key = request_key(llm.identity(), chat.messages) if self._cache is not None else None
        stored = self._cache.get(key) if key else None
        if stored is None:
            try:
                completion = await self._complete(llm, chat.messages)
            except CallFailed:
                stats.failed += 1
                raise
            stats.sent += 1
            stats.retries += completion.retries
            stored = {"text": completion.text, "finish_reason": completion.finish_reason,
                      "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
            if key:
                self._cache.put(key, stored)
        else:
            stats.cached += 1
        usage.calls += 1
        usage.prompt_tokens += stored["prompt_tokens"]
        usage.completion_tokens += stored["completion_tokens"]
        problem = unusable(stored, llm, chat.whole)
        if problem:
            raise CallFailed(problem)
        return Reply(stored["text"], stored["finish_reason"])


def unusable(reply: dict, llm: LLM, whole: bool = True) -> str | None:
    """Why a reply cannot be used, or None. A reply withheld by a content filter, empty, or cut at
    `max_tokens` when the request needs it whole is never handed to a method: half a verdict must
    not pass for a verdict. Such replies are cached like any other (the same request would get them
    again) and their row is marked."""
    if reply["finish_reason"] == "length" and whole:
        return (f"the reply was cut at max_tokens={llm.max_tokens} (finish_reason=length); "
                "give the LLM a larger max_tokens")
    if reply["finish_reason"] == "content_filter":
        return "the endpoint's content filter withheld the reply (finish_reason=content_filter)"
    if not reply["text"].strip():
        return "the reply was empty"
    return None
