"""The OpenAI Batch API transport: the requests the rows are waiting on go out together, at the batch
price, one batch per step of the method (a hop), not one per request.

`send(body)` does not post its request. It puts it among the requests waiting and returns when the
batch that carries it has ended. Once the event loop has turned `SETTLE_TURNS` times with no new
request — every row is then waiting on a reply — the waiting requests are sent as one batch, split
only at the API's limits (`MAX_REQUESTS` requests or `MAX_BYTES` a file). When the batch ends, each
waiting request gets its completion or its failure (a failed line is classified like an online
reply; a line the batch did not return — expired, cancelled — is `NotReturned` and sent again in a
later batch), and its row moves on to its next step. So a run needs as many batches as its protocol
has steps: CoEvol's full mode, 3 rounds, 15.

Nothing is paid twice: each batch is journaled beside the request cache before it is created
(`journal.py`); a run started again after being stopped re-attaches to the batches that carry the
requests it is waiting on. Their replies go into the request cache like online ones, so a finished
job run again, online or by batch, pays for nothing.

The few calls a batch takes (upload, create, poll, download) go through the `openai` client.
"""
from __future__ import annotations

import asyncio
import hashlib
import importlib
import logging
import time

from .. import status
from ..errors import EndpointError
from . import codec
from .cache import default_cache_dir
from .config import LLM, without_credentials
from .failures import (ENDPOINT, ConnectionFailed, NotReturned, RequestTimedOut, StatusError, TransportFailure, classify,
                       retry_after)
from .journal import Entry, Journal
from .online import error_message
from .transport import Completion, parse_completion

logger = logging.getLogger("hf_synth.status.batches")  # (the CLI shows the status lines)

SETTLE_TURNS = 20  # event-loop turns with no new request before the waiting ones are sent
MAX_REQUESTS, MAX_BYTES = 50_000, 200 * 2**20  # OpenAI's limits for one batch's input file
ROUTE = "/v1/chat/completions"
ENDED = ("completed", "expired", "cancelled", "failed")
MISSED_LOOKS = 10  # failed looks in a row at a batch before its requests fail (and are sent again)


def custom_id(body: dict) -> str:
    """A request's id in a batch: the hash of its canonical body (the same request, the same id, in
    any run — which is how a run started again finds its requests in the journal)."""
    return hashlib.sha256(codec.canonical(body)).hexdigest()[:40]


class OpenAIBatchTransport:
    """Sends one LLM's requests to `base_url`'s Batch API."""

    paced = False  # the API queues what it is given: no concurrency limit, no pause before a retry
    CLIENT = "openai"  # the package whose client speaks this dialect

    def __init__(self, llm: LLM, base_url: str):
        self.llm = llm
        self.base_url = base_url
        self.where = without_credentials(base_url)
        self.journal = Journal(default_cache_dir())
        self.in_flight: dict[str, tuple[int, int]] = {}  # batch id -> (its requests, when it was made), while it runs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client = None
        self._waiting: dict[str, tuple[dict, list[asyncio.Future]]] = {}
        self._quiet_turns = 0
        self._settling = False
        self._collected: set[str] = set()  # journal entries whose results this process has handed out
        self._tasks: set[asyncio.Task] = set()

    def use_journal(self, folder) -> None:
        """Journal batches in `folder` (the request cache's)."""
        self.journal = Journal(folder)

    async def send(self, body: dict) -> Completion:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new loop (a forked worker): nothing of the old one is usable
            self._loop, self._client, self._waiting, self._settling = loop, None, {}, False
        future = loop.create_future()
        self._waiting.setdefault(custom_id(body), (body, []))[1].append(future)
        self._quiet_turns = 0
        if not self._settling:
            self._settling = True
            loop.call_soon(self._settle)
        return await future

    def _settle(self) -> None:
        self._quiet_turns += 1
        if self._quiet_turns < SETTLE_TURNS:
            self._loop.call_soon(self._settle)
            return
        self._settling = False
        waiting, self._waiting = self._waiting, {}
        task = self._loop.create_task(self._send_hop(waiting))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_hop(self, waiting: dict) -> None:
        parts = []
        try:
            for entry in self.journal.entries(self.where):  # batches a stopped run left in flight
                if entry.id not in self._collected and (carried := waiting.keys() & set(entry.custom_ids)):
                    parts.append((entry, {key: waiting.pop(key) for key in carried}))
            parts += [(None, chunk) for chunk in _chunks(waiting)]
            await asyncio.gather(*(self._run_batch(entry, chunk) for entry, chunk in parts))
        except BaseException as error:  # whatever went wrong, no row is left waiting
            for _, chunk in parts or [(None, waiting)]:
                _fail(chunk, error if isinstance(error, Exception) else ConnectionFailed("the run was stopped"))
            raise

    async def _run_batch(self, entry: Entry | None, chunk: dict) -> None:
        try:
            if entry is None or entry.batch_id is None:
                entry, batch = await self._created(entry, chunk)
            else:
                batch = await self._retrieve(entry.batch_id)
            self._in_flight(batch.id, (len(chunk), self._made_at(batch)))
            try:
                batch = await self._ended(batch)
            finally:
                self._in_flight(batch.id, None)
            results = await self._results(batch)
        except (TransportFailure, EndpointError) as error:
            _fail(chunk, error)
            return
        self._collected.add(entry.id)
        # completions first: their rows' success is seen before any failure of the same batch
        for key in sorted(chunk, key=lambda key: not isinstance(results.get(key), Completion)):
            outcome = results.get(key) or NotReturned(f"batch {batch.id} ended {self._status(batch)}")
            for future in chunk[key][1]:
                if not future.done():
                    (future.set_result if isinstance(outcome, Completion) else future.set_exception)(outcome)

    def _in_flight(self, batch_id: str, carried: tuple[int, int] | None) -> None:
        """Note a batch in flight (its requests and when it was made) or ended, for the live status."""
        if carried is None:
            self.in_flight.pop(batch_id, None)
        else:
            self.in_flight[batch_id] = carried
        counts = status.counts()
        counts.batches = len(self.in_flight)
        counts.batch_requests = sum(requests for requests, _ in self.in_flight.values())
        counts.batch_since = min((made for _, made in self.in_flight.values()), default=0)

    async def _created(self, entry: Entry | None, chunk: dict) -> tuple[Entry, object]:
        """The batch of `entry` (a journaled one whose batch was perhaps never named), or of a new entry
        for `chunk`: journaled before anything is sent, and again at each step."""
        if entry is not None:
            found = await self._find(entry)
            if found is not None:
                return entry, found
        else:
            entry = Entry(endpoint=self.where, custom_ids=list(chunk))
            self.journal.write(entry)
        while True:
            try:
                batch = await self._create(entry, chunk)
                break
            except StatusError as error:
                if error.status != 429:  # (429: the API's queue of batch tokens is full for now)
                    raise
                wait = retry_after(error) or self.llm.batch_poll
                logger.info("%s cannot take another batch yet (%s); trying again in %.0f s", self.where, error, wait)
                await asyncio.sleep(wait)
        entry.batch_id = batch.id
        self.journal.write(entry)
        logger.info("batch %s: %d requests sent to %s", batch.id, len(chunk), self.where)
        return entry, batch

    async def _create(self, entry: Entry, chunk: dict):
        """Upload `chunk` as the input file (once: the journal keeps its id) and create its batch."""
        client = self._api()
        if entry.input_file_id is None:
            lines = b"".join(_line(key, body) for key, (body, _) in chunk.items())
            uploaded = await self._call(client.files.create(file=("requests.jsonl", lines), purpose="batch"))
            entry.input_file_id = uploaded.id
            self.journal.write(entry)
        return await self._call(client.batches.create(input_file_id=entry.input_file_id, endpoint=ROUTE,
                                                      completion_window="24h", metadata={"hf_synth_journal": entry.id}))

    async def _find(self, entry: Entry):
        """The batch created for `entry` by a run stopped before it could journal the batch's id."""
        async for batch in self._api().batches.list(limit=100):
            if (batch.metadata or {}).get("hf_synth_journal") == entry.id:
                entry.batch_id = batch.id
                self.journal.write(entry)
                return batch
        return None

    async def _ended(self, batch):
        """`batch` once it has ended, asked every `batch_poll` seconds, less often while it is long in
        progress (up to ten times the interval)."""
        interval, started, missed = self.llm.batch_poll, time.monotonic(), 0
        while not self._has_ended(batch):
            await asyncio.sleep(interval)
            interval = min(interval * 1.25, self.llm.batch_poll * 10)
            try:
                batch = await self._retrieve(batch.id)
                missed = 0
            except TransportFailure as error:  # a look that failed costs no request a retry: look again
                missed += 1
                if missed >= MISSED_LOOKS or classify(error).blame != ENDPOINT:
                    raise
                logger.info("could not look at batch %s (%s); looking again", batch.id, error)
        logger.info("batch %s %s after %.0f s", batch.id, self._status(batch), time.monotonic() - started)
        refused = self._refused(batch)
        if refused is not None:
            raise EndpointError(f"The Batch API of {self.where} refused batch {batch.id}: {refused or 'no reason given'}.")
        return batch

    # -- what differs between dialects (Anthropic's: batch_anthropic.py)
    async def _retrieve(self, batch_id: str):
        return await self._call(self._api().batches.retrieve(batch_id))

    def _has_ended(self, batch) -> bool:
        return batch.status in ENDED

    def _status(self, batch) -> str:
        return batch.status

    def _made_at(self, batch) -> int:
        return int(batch.created_at or time.time())

    def _refused(self, batch) -> str | None:
        """Why the API refused `batch` (failed validation), or None."""
        if batch.status != "failed":
            return None
        return "; ".join(f"{error.code}: {error.message}" + (f" (line {error.line})" if error.line else "")
                         for error in (batch.errors.data if batch.errors else []) or [])

    async def _results(self, batch) -> dict[str, Completion | TransportFailure]:
        results: dict[str, Completion | TransportFailure] = {}
        for file_id in (batch.error_file_id, batch.output_file_id):  # (a completion wins over an error)
            if not file_id:
                continue
            content = await self._call(self._api().files.content(file_id))
            for raw in content.content.splitlines():
                if raw.strip():
                    line = codec.loads(raw)
                    results[line["custom_id"]] = _outcome(line)
        return results

    def _api(self):
        if self._client is None:
            import openai

            # (max_retries=0: what a failure means and whether to try again is decided in failures.py)
            self._client = openai.AsyncOpenAI(api_key=self.llm.api_key.reveal() or "none", base_url=self.base_url,
                                              timeout=self.llm.timeout, max_retries=0)
        return self._client

    async def _call(self, request):
        """Await a call of the dialect's client, its failures told in `failures.py`'s terms (the
        `openai` and `anthropic` clients raise errors of the same names)."""
        sdk = importlib.import_module(self.CLIENT)
        try:
            return await request
        except sdk.APIStatusError as error:
            raise StatusError(error.status_code, error_message(error.response.content), error.response.headers) from None
        except sdk.APITimeoutError:
            raise RequestTimedOut() from None
        except sdk.APIConnectionError as error:
            raise ConnectionFailed(type(error.__cause__ or error).__name__) from error

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


def _line(key: str, body: dict) -> bytes:
    return codec.dumps({"custom_id": key, "method": "POST", "url": ROUTE, "body": body}) + b"\n"


def _chunks(waiting: dict):
    """`waiting` in parts that fit the API's limits of one batch."""
    chunk, size = {}, 0
    for key, value in waiting.items():
        length = len(_line(key, value[0]))
        if chunk and (len(chunk) >= MAX_REQUESTS or size + length > MAX_BYTES):
            yield chunk
            chunk, size = {}, 0
        chunk[key] = value
        size += length
    if chunk:
        yield chunk


def _outcome(line: dict) -> Completion | TransportFailure:
    """One result line: the completion, or the failure its status means."""
    response = line.get("response") or {}
    status, body = response.get("status_code"), response.get("body")
    if status == 200:
        try:
            return parse_completion(body)
        except TransportFailure as failure:
            return failure
    if status is not None:
        return StatusError(status, error_message(codec.dumps(body)))
    error = line.get("error") or {}
    return NotReturned(f"{error.get('code') or 'no result'}: {error.get('message') or ''}".strip(": "))


def _fail(chunk: dict, error: BaseException) -> None:
    for _, futures in chunk.values():
        for future in futures:
            if not future.done():
                future.set_exception(error)
