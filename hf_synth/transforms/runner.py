"""The runner: drives many method protocols at once, one row per protocol, and counts rows.

Every row advances on its own (a row in its third round never waits for a slow row in its first).
Each request goes through the door of `llm/` (`llm/door.py`), which answers with a reply, the row's
failure (thrown into the protocol: a method may recover) or the run's stop. A row that does not
recover is marked with the reason and kept. Only an `EndpointError` (the endpoint cannot serve this
run) stops the run.
"""
from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import status
from ..errors import CallFailed, HFSynthError, RowError
from ..llm.config import LLM
from ..llm.door import Door, Usage
from ..llm.spending import CAP, Spending
from ..protocol import Chat, Protocol, Reply

logger = logging.getLogger(__name__)


_sparing = 0  # runs in this process now easing the collector
_thresholds: tuple[int, ...] = ()  # the collector's thresholds before them
YOUNG_THRESHOLD = 50_000  # allocations between young collections during a run (Python's default: 700)


@contextmanager
def collector_eased():
    """While rows run (and a batch's rows and outputs are made), the cyclic garbage collector leaves
    alone the objects that were there before (`gc.freeze`), and collects the young generation after
    50,000 allocations rather than 700; both are handed back when the last run ends (`gc.unfreeze`,
    the thresholds it had).

    Every request allocates many short-lived objects, so young collections come often. About one in a
    hundred of them was a full one, over all the process's objects — `datasets`, Arrow and their
    modules, some 120,000: a tenth of a run's CPU. The young ones each scan the rows still waiting
    again: 300 a 5,000-request run at 700 took 40–45 ms; 5 at 50,000 take 7–13 ms (docs/performance.md).
    Cyclic garbage among the older objects is collected after the run, not during it. A process that
    froze objects itself (a server before it forks) is left as it is."""
    global _sparing, _thresholds
    if _sparing == 0 and gc.get_freeze_count():
        yield
        return
    if _sparing == 0:
        gc.freeze()
        _thresholds = gc.get_threshold()
        gc.set_threshold(max(YOUNG_THRESHOLD, _thresholds[0]), *_thresholds[1:])
    _sparing += 1
    try:
        yield
    finally:
        _sparing -= 1
        if _sparing == 0:
            gc.set_threshold(*_thresholds)
            gc.unfreeze()


def _first_request(protocol: Protocol) -> Chat | list[Chat] | Exception:
    """The protocol's first request, or what its first step raised (the row's to report)."""
    try:
        return next(protocol)
    except Exception as exc:  # (StopIteration included: a row that needs no request)
        return exc


def _chats(request) -> list[Chat]:
    return [request] if isinstance(request, Chat) else request if isinstance(request, list) else []


@dataclass
class Outcome:
    result: Any = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    call_failed: bool = False   # the error is an LLM call that failed for good, not the row's input


class Runner:
    def __init__(self, llms: Mapping[str, LLM], default: LLM, cache_dir: str | None | bool = True,
                 ask_again_unusable: bool = False, spending: Spending | None = None):
        """`llms` maps agent names to their LLM; agents not named use `default`. `cache_dir` is a
        folder, True for the default folder, or False for no request cache. `ask_again_unusable`: a
        cached reply that cannot be used (empty, cut, filtered) is asked for again (an explicit retry).
        `spending` holds the run's caps on cost and requests."""
        self._door = Door(llms, default, cache_dir, ask_again_unusable, spending)
        self._counts = status.counts()

    async def run(self, protocols: list[Protocol]) -> list[Outcome]:
        self._door.begin_run()
        tasks = []
        try:
            with collector_eased():
                firsts = [_first_request(protocol) for protocol in protocols]
                self._door.prefetch([chat for first in firsts for chat in _chats(first)])
                tasks = [asyncio.ensure_future(self._drive(p, first)) for p, first in zip(protocols, firsts)]
                outcomes = list(await asyncio.gather(*tasks))
            self._door.end_run()
        except BaseException:
            for task in tasks:
                task.cancel()
            self._door.flush()  # what completed is kept, whatever stopped the run
            raise
        finally:
            status.this_process().write_now()
        self._door.commit()  # (the caller's `flush` waits for it: meanwhile it builds the outputs)
        return outcomes

    def flush(self) -> None:
        """Wait until the replies of the run are committed (so another process finds them)."""
        self._door.flush()

    async def _drive(self, protocol: Protocol, request: Chat | list[Chat] | Exception) -> Outcome:
        """Run `protocol` from its first request (or what its first step raised) to its result."""
        outcome = Outcome()
        try:
            if isinstance(request, Exception):
                raise request
            while True:
                try:
                    if isinstance(request, Chat):
                        reply = await self._door.ask(request, outcome.usage)
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
            if failed.blame == CAP:  # nothing failed: the row was not run, and says so
                outcome.error = str(failed)
            else:
                outcome.error, outcome.call_failed = f"LLM call failed: {failed}", True
        except RowError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # a row must come out, marked, whatever went wrong in it
            logger.exception("unexpected error in a %s row (the row is marked and the run goes on)",
                             getattr(protocol, "__qualname__", "method"))
            outcome.error = f"{type(exc).__name__}: {exc}"
        self._counts.rows += 1
        self._counts.rows_failed += outcome.error is not None
        self._counts.rows_paid += outcome.usage.waited > 0
        return outcome

    async def _ask_all(self, chats: list[Chat], usage: Usage) -> list[Reply]:
        # Siblings run to completion even when one fails: their replies are cached for a re-run.
        replies = await asyncio.gather(*(self._door.ask(chat, usage) for chat in chats), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies
