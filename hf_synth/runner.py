"""The runner: drives many method protocols at once against the LLMs, one row per protocol.

Every row advances on its own (a row in its third round never waits for a slow row in its first).
Requests go through the request cache, then the engine of the LLM that plays the request's agent;
identical requests in flight at the same time are sent once. A request that fails for good, or whose
reply is unusable (cut, filtered, empty), is thrown into its protocol; a row that does not recover is
marked with the reason and kept. Only an `EndpointError` (the endpoint cannot serve this run) stops
the run — including an endpoint that completed none of a run's requests, so that a map whose rows all
failed by the endpoint's fault is never cached by `datasets`.
"""
from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from . import status
from .status import RunStats
from .errors import CallFailed, EndpointError, HFSynthError, RowError
from .llm import loop
from .llm.cache import RequestCache, default_cache_dir, request_key
from .llm.config import LLM
from .llm.engine import Completion, Engine
from .llm.failures import unusable
from .llm.local import embedded_servers
from .llm.pacing import RateBudget
from .protocol import Chat, Protocol, Reply

logger = logging.getLogger(__name__)


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
class Outcome:
    result: Any = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    call_failed: bool = False   # the error is an LLM call that failed for good, not the row's input


class _Process:
    """Per-process state: engines (one per endpoint and settings) and caches (one per folder)."""

    def __init__(self):
        self.pid = os.getpid()
        self.engines: dict[LLM, list[Engine]] = {}  # by LLM (its key included): one per replica
        self.caches: dict[str, RequestCache] = {}
        self.in_flight: dict[str, asyncio.Future] = {}  # by request key: identical requests share one
        self.stats = RunStats()
        self.status_folder: str | None = None
        self.report_to(os.environ.get(status.FOLDER_VARIABLE))  # a worker of a run whose status is shown

    def report_to(self, folder: str | None) -> None:
        """Write this process's counts into `folder` for the live status (None: stop)."""
        started = self.status_folder is not None
        self.status_folder = folder
        self.status_since = replace(self.stats)  # what this process had done before
        if folder and not started:
            asyncio.run_coroutine_threadsafe(self._report(), loop.process_loop())

    def write_status(self) -> None:
        if self.status_folder:
            status.write(self.status_folder, self.stats, self.status_since)

    async def _report(self) -> None:
        while self.status_folder:
            self.write_status()
            await asyncio.sleep(status.WRITE_EVERY)


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
            folder = str(cache_dir if cache_dir not in (True, None) else default_cache_dir())
            if folder not in state.caches:
                state.caches[folder] = RequestCache(folder)
            self._cache = state.caches[folder]

    def _engines(self, llm: LLM) -> list[Engine]:
        """One engine per replica of `llm`, made once per process."""
        engines = self._state.engines.get(llm)  # LLMs with other keys are other LLMs: other clients
        if engines is None:
            budget = (RateBudget(llm.requests_per_minute, llm.tokens_per_minute, llm.max_tokens)
                      if llm.requests_per_minute or llm.tokens_per_minute else None)
            urls = llm.replicas or [None] * embedded_servers()  # the embedded model runs one server per core
            engines = self._state.engines[llm] = [Engine(llm, url, budget, replica) for replica, url in enumerate(urls)]
        return engines

    async def _complete(self, llm: LLM, chat: Chat) -> Completion:
        """Sends to the replica with the fewest outstanding requests among those that can still serve
        this run; a replica that cannot passes the request on, until none is left."""
        engines = self._engines(llm)
        while True:
            serving = [engine for engine in engines if engine.fatal is None] or engines[:1]
            try:
                return await min(serving, key=lambda engine: engine.limit.outstanding).complete(chat.messages, chat.shape)
            except EndpointError:
                if all(engine.fatal is not None for engine in engines):
                    raise

    async def run(self, protocols: list[Protocol]) -> list[Outcome]:
        for engines in self._state.engines.values():
            for engine in engines:
                engine.begin_run()
        tasks = [asyncio.ensure_future(self._drive(p)) for p in protocols]
        try:
            outcomes = list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        finally:
            if self._cache is not None:
                self._cache.flush()
            self._state.write_status()
        self._stop_if_nothing_completed()
        return outcomes

    def _stop_if_nothing_completed(self) -> None:
        for engines in self._state.engines.values():
            failed = sum(engine.endpoint_failures for engine in engines)
            if failed and not sum(engine.completed for engine in engines):
                raise EndpointError(f"{engines[0].where} completed none of this run's requests: {failed} failed "
                                    f"after their retries (the last: {engines[-1].last_failure or engines[0].last_failure}); "
                                    "completed requests are cached, so the same run resumes when the endpoint is well.")

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
        except RowError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a row must come out, marked, whatever went wrong in it
            logger.exception("unexpected error in a %s row (the row is marked and the run goes on)",
                             getattr(protocol, "__qualname__", "method"))
            outcome.error = f"{type(exc).__name__}: {exc}"
        self._state.stats.rows += 1
        self._state.stats.rows_failed += outcome.error is not None
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
        key = request_key(llm.identity(), chat.messages, llm.constraint(chat.shape))
        stored = self._cache.get(key) if self._cache is not None else None
        if stored is None:
            stored = await self._request_once(key, llm, chat)
        else:
            self._state.stats.cached += 1
        usage.calls += 1
        usage.prompt_tokens += stored["prompt_tokens"]
        usage.completion_tokens += stored["completion_tokens"]
        problem = unusable(stored, llm.max_tokens, chat.whole, chat.agent)
        if problem:
            raise CallFailed(problem)
        return Reply(stored["text"], stored["finish_reason"])

    async def _request_once(self, key: str, llm: LLM, chat: Chat) -> dict:
        """Send a request, or wait for the identical one already in flight; store its reply."""
        stats, in_flight = self._state.stats, self._state.in_flight
        if key in in_flight:
            stats.cached += 1
            return await asyncio.shield(in_flight[key])
        shared = in_flight[key] = asyncio.get_running_loop().create_future()
        shared.add_done_callback(lambda future: future.cancelled() or future.exception())  # retrieved
        stats.in_flight += 1
        try:
            completion = await self._complete(llm, chat)
        except BaseException as error:
            stats.failed += isinstance(error, CallFailed)
            if isinstance(error, asyncio.CancelledError):
                shared.cancel()
            else:
                shared.set_exception(error)
            raise
        finally:
            del in_flight[key]
            stats.in_flight -= 1
        stats.sent += 1
        stats.retries += completion.retries
        stats.prompt_tokens += completion.prompt_tokens
        stats.completion_tokens += completion.completion_tokens
        stored = {"text": completion.text, "finish_reason": completion.finish_reason,
                  "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens}
        if self._cache is not None:
            self._cache.put(key, stored)
        shared.set_result(stored)
        return stored
