"""A fake OpenAI-compatible server that speaks real HTTP on 127.0.0.1, for tests and benchmarks.

Replies come from a function of the request's messages; latency and faults are injected per request,
scripted (`faults`) or at random (`inject`); `capacity` answers 429 to requests beyond that many at
once, like a rate-limited endpoint. Every request received is recorded.

Faults: an int status or ("status", code, headers); ("sleep", seconds) before answering; "close" (the
connection drops in the middle of the body); "hang_up" (the connection is closed once the request is
read, before any reply); "not_json" (a 200 whose body is an HTML page);
"no_choices" (JSON without `choices`); "cut_json" (a 200 whose JSON body stops halfway);
"dict_content" (`content` an object, not text); "not_utf8" (a 200 whose JSON holds bytes that are not
UTF-8); ("redirect", code) (a redirect to another path); "parts" (`content` a list of text parts); "empty"
(empty content); ("finish", "length") (half the reply, cut) and ("finish", "content_filter") (no
content); ("trickle", "body" | "headers", seconds) (the response written one byte every `seconds`).

Constrained decoding is checked, not performed: a reply to a request that carries a regular expression
(vLLM's `structured_outputs.regex`, SGLang's `regex`) is recorded in `violations` when it does not
match it; a request with a JSON-schema `response_format` is answered with `json_reply(messages,
schema)` as JSON, recorded in `violations` when that object does not fit the schema's keys and enums.
(A GBNF `grammar` is only recorded: the embedded llama.cpp server is what checks those.)

The Batch API too (`/v1/files`, `/v1/batches`): an uploaded JSONL file of requests becomes a batch that
completes when it is next looked at (once `batch_latency` seconds have passed, and `hold_batches` is
cleared), answered line by line as
`/v1/chat/completions` would answer; `batch_fault_for(body, batch_index)` makes a line "expire" (the
batch then ends `expired`, keeping what completed) or fail with an HTTP status (in the error file);
`batch_create_faults` answers the next creations with an HTTP status (e.g. 429);
`batch_validation_error` = (code, message) fails every batch's validation. Lines answered (the ones
paid for) are recorded in `batch_requests`, never in `requests`.
"""
from __future__ import annotations

import asyncio
import json
import random
import re
import threading
import time
from collections import Counter
from typing import Callable

from aiohttp import web
from loopback import LoopbackServer


def words(text: str) -> int:
    return len(text.split())


class FakeOpenAI(LoopbackServer):
    path = "/v1"

    def __init__(self, reply: Callable[[list[dict]], str] = lambda messages: "ok", latency: float = 0.0,
                 api_key: str | None = None, model: str = "fake-model", record: bool = True):
        self.reply = reply
        self.record = record  # keep every request (benchmarks of millions of requests don't)
        self.latency = latency
        self.api_key = api_key
        self.model = model
        self.listed: list[str] | None = None  # what GET /v1/models lists, when not just `model`
        self.requests: list[dict] = []   # request bodies, in arrival order
        self.arrivals: list[float] = []  # their time.monotonic() on arrival
        self.headers: list[dict] = []
        self.faults: list = []           # consumed one per request, before random ones
        self.fault_for: Callable[[dict], object] | None = None  # a fault chosen by the request body, first of all
        self.error_message: str | None = None  # the message of injected HTTP errors
        self.injected: Counter = Counter()  # faults served, by kind
        self.capacity: int | None = None
        self.json_reply: Callable[[list[dict], dict], dict] | None = None
        self.reply_headers: Callable[[int], dict] | None = None  # extra headers of the n-th reply (from 0)
        self.violations: list[tuple[str, str]] = []  # (dialect, reply) that broke the request's constraint
        self.in_flight = self.peak_in_flight = 0
        self.reasoning_tokens = 0  # reported in usage.completion_tokens_details when > 0
        self._random = None
        self._lock = threading.Lock()
        super().__init__()

        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}     # by id, in creation order
        self.batch_requests: list[dict] = []   # the bodies of batch lines answered
        self.hold_batches = False              # batches stay in progress while set
        self.batch_latency = 0.0               # seconds a batch stays in progress at least
        self.batch_fault_for: Callable[[dict, int], object] | None = None
        self.batch_create_faults: list[int] = []
        self.batch_validation_error: tuple[str, str] | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{id}/content", self._file_content)
        app.router.add_post("/v1/batches", self._create_batch)
        app.router.add_get("/v1/batches", self._list_batches)
        app.router.add_get("/v1/batches/{id}", self._batch)
        app.router.add_post("/v1/batches/{id}/cancel", self._cancel_batch)
        app.router.add_post("/v1/messages/batches", self._create_message_batch)
        app.router.add_get("/v1/messages/batches/{id}", self._message_batch)
        app.router.add_get("/v1/messages/batches/{id}/results", self._message_batch_results)

    def inject(self, rate: float, kinds: list, seed: int = 0) -> None:
        """From now on, each request gets one of `kinds` (uniformly) with probability `rate`."""
        self._random = (random.Random(seed), rate, list(kinds))

    def _next_fault(self, body: dict):
        with self._lock:
            if self.fault_for is not None and (fault := self.fault_for(body)) is not None:
                return fault
            if self.faults:
                return self.faults.pop(0)
            if self._random is not None:
                rng, rate, kinds = self._random
                if rng.random() < rate:
                    return kinds[rng.randrange(len(kinds))]
            if self.capacity is not None and self.in_flight > self.capacity:
                return ("status", 429, {})
        return None

    def _constrained(self, body: dict, text: str) -> str:
        schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
        if schema is not None:
            values = self.json_reply(body["messages"], schema)
            fits = set(values) == set(schema["required"]) == set(schema["properties"]) and all(
                values[name] in spec["enum"] for name, spec in schema["properties"].items() if "enum" in spec)
            text = json.dumps(values)
            if not fits:
                self.violations.append(("openai", text))
            return text
        regex = body.get("regex") or (body.get("structured_outputs") or {}).get("regex")
        if regex is not None and not re.fullmatch(regex, text):
            self.violations.append(("regex", text))
        return text

    # -- handlers
    async def _models(self, request):
        names = self.listed if self.listed is not None else [] if self.model is None else [self.model]
        served = [{"id": name, "object": "model"} for name in names]
        return web.json_response({"object": "list", "data": served})

    async def _chat(self, request: web.Request):
        body = await request.json()
        with self._lock:
            if self.record:
                self.arrivals.append(time.monotonic())
                self.requests.append(body)
                self.headers.append(dict(request.headers))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._answer(request, body, self._next_fault(body))
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request, body: dict, fault):
        if fault is not None:
            self.injected[fault_kind(fault)] += 1
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                                "code": "invalid_api_key"}}, status=401)
        if isinstance(fault, int):
            fault = ("status", fault, {})
        if fault and fault[0] == "status":
            return web.json_response({"error": {"message": self.error_message or f"injected {fault[1]}", "type": "server_error"}},
                                     status=fault[1], headers=dict(fault[2]))
        if fault and fault[0] == "sleep":
            await asyncio.sleep(fault[1])
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault == "not_json":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if fault == "not_utf8":
            return web.Response(body=b'{"choices": [{"message": {"content": "caf\xe9"}, "finish_reason": "stop"}]}',
                                content_type="application/json")
        if fault and fault[0] == "redirect":
            return web.Response(status=fault[1], headers={"Location": "/elsewhere/v1/chat/completions"})
        text, finish_reason = self._constrained(body, self.reply(body["messages"])), "stop"
        if fault == "empty":
            text = ""
        elif fault and fault[0] == "finish":
            finish_reason = fault[1]
            text = text[:len(text) // 2] if finish_reason == "length" else ""
        prompt_tokens = sum(words(m["content"]) for m in body["messages"])
        completion = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", self.model),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": words(text),
                      "total_tokens": prompt_tokens + words(text)},
        }
        if self.reasoning_tokens:
            completion["usage"]["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        if fault == "no_choices":
            del completion["choices"]
        if fault == "dict_content":
            completion["choices"][0]["message"]["content"] = {"text": text}
        if fault == "parts":
            completion["choices"][0]["message"]["content"] = [{"type": "text", "text": text[:3]},
                                                               {"type": "text", "text": text[3:]}]
        if fault == "cut_json":
            payload = json.dumps(completion)
            return web.Response(text=payload[:len(payload) // 2], content_type="application/json")
        if fault and fault[0] == "trickle":
            return await trickle(request, json.dumps(completion).encode(), headers_too=fault[1] == "headers",
                                 gap=fault[2])
        if fault == "hang_up":
            request.transport.close()
            raise asyncio.CancelledError  # nothing may be written on the closed connection
        if fault == "close":  # send half the body, then drop the connection
            payload = json.dumps(completion).encode()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.content_length = len(payload)
            await response.prepare(request)
            await response.write(payload[:len(payload) // 2])
            request.transport.close()
            return response
        headers = self.reply_headers(len(self.requests) - 1) if self.reply_headers is not None else None
        return web.json_response(completion, headers=headers)


    # -- the Batch API
    def _store_file(self, content: bytes, purpose: str, filename: str) -> dict:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose}

    def _unauthorized(self, request):
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}},
                                     status=401)
        return None

    async def _upload(self, request: web.Request):
        if (refused := self._unauthorized(request)) is not None:
            return refused
        form = await request.post()
        upload = form["file"]
        return web.json_response(self._store_file(upload.file.read(), form["purpose"], upload.filename))

    async def _file_content(self, request: web.Request):
        content = self.files.get(request.match_info["id"])
        if content is None:
            return web.json_response({"error": {"message": "No such file"}}, status=404)
        return web.Response(body=content, content_type="application/octet-stream")

    async def _create_batch(self, request: web.Request):
        if (refused := self._unauthorized(request)) is not None:
            return refused
        params = await request.json()
        if self.batch_create_faults:
            status = self.batch_create_faults.pop(0)
            return web.json_response({"error": {"message": "Enqueued token limit reached", "code": "rate_limit"}},
                                     status=status)
        batch_id = f"batch_{len(self.batches) + 1}"
        lines = [json.loads(line) for line in self.files[params["input_file_id"]].decode().splitlines() if line.strip()]
        batch = {"id": batch_id, "object": "batch", "endpoint": params["endpoint"], "errors": None,
                 "input_file_id": params["input_file_id"], "completion_window": params["completion_window"],
                 "status": "in_progress", "output_file_id": None, "error_file_id": None,
                 "created_at": int(time.time()), "metadata": params.get("metadata"),
                 "request_counts": {"total": len(lines), "completed": 0, "failed": 0}}
        ids = [line.get("custom_id") for line in lines]
        wrong = next((i for i, line in enumerate(lines) if line.get("url") != params["endpoint"]
                      or line.get("method") != "POST"), None)
        if self.batch_validation_error is not None:
            code, message = self.batch_validation_error
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": code, "message": message, "line": None}]}
        elif len(set(ids)) != len(ids) or wrong is not None:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [
                {"code": "duplicate_custom_id" if wrong is None else "invalid_url", "line": wrong,
                 "message": "custom_id must be unique" if wrong is None else "the url must be the batch's endpoint"}]}
        self.batches[batch_id] = batch
        self._made = {**getattr(self, "_made", {}), batch_id: time.monotonic()}
        self._lines = getattr(self, "_lines", {})
        self._lines[batch_id] = lines
        return web.json_response(batch)

    async def _finish(self, request: web.Request, batch: dict, ended: str | None = None) -> None:
        """Answer every line of `batch` (at once: it is only looked at now)."""
        index = list(self.batches).index(batch["id"])
        output, errors, expired = [], [], 0
        for line in self._lines[batch["id"]]:
            fault = self.batch_fault_for(line["body"], index) if self.batch_fault_for else None
            if fault == "expire" or ended == "cancelled":
                expired += 1
                continue
            if isinstance(fault, int):
                error = {"message": f"injected {fault}", "type": "server_error"}
                errors.append({"id": f"batch_req_{len(errors)}", "custom_id": line["custom_id"],
                               "response": {"status_code": fault, "body": {"error": error}}, "error": None})
                continue
            answer = await self._answer(request, line["body"], None)
            entry = {"id": f"batch_req_{len(output)}", "custom_id": line["custom_id"], "error": None,
                     "response": {"status_code": answer.status, "request_id": "req", "body": json.loads(answer.body)}}
            (output if answer.status == 200 else errors).append(entry)
            if answer.status == 200:
                self.batch_requests.append(line["body"])
        random.Random(index).shuffle(output)  # results come in any order
        for kind, entries in (("output_file_id", output), ("error_file_id", errors)):
            if entries:
                content = "".join(json.dumps(entry) + "\n" for entry in entries).encode()
                batch[kind] = self._store_file(content, "batch_output", f"{batch['id']}_{kind}.jsonl")["id"]
        batch["request_counts"] = {"total": len(self._lines[batch["id"]]), "completed": len(output),
                                   "failed": len(errors)}
        batch["status"] = ended or ("expired" if expired else "completed")

    async def _batch(self, request: web.Request):
        batch = self.batches.get(request.match_info["id"])
        if batch is None:
            return web.json_response({"error": {"message": "No such batch"}}, status=404)
        if batch["status"] == "in_progress" and not self.hold_batches and \
                time.monotonic() - self._made[batch["id"]] >= self.batch_latency:
            await self._finish(request, batch)
        return web.json_response(batch)

    async def _list_batches(self, request: web.Request):
        return web.json_response({"object": "list", "data": list(reversed(self.batches.values())), "has_more": False})

    async def _cancel_batch(self, request: web.Request):
        batch = self.batches[request.match_info["id"]]
        if batch["status"] == "in_progress":
            await self._finish(request, batch, ended="cancelled")
        return web.json_response(batch)


    # -- Anthropic's Message Batches (same faults: batch_fault_for, batch_create_faults, hold_batches)
    def _message_batch_object(self, batch: dict) -> dict:
        return {"id": batch["id"], "type": "message_batch", "processing_status": batch["processing_status"],
                "request_counts": batch["request_counts"], "created_at": batch["created_at"],
                "expires_at": batch["created_at"], "ended_at": None, "archived_at": None, "cancel_initiated_at": None,
                "results_url": batch["results_url"]}

    async def _create_message_batch(self, request: web.Request):
        if request.headers.get("x-api-key") != (self.api_key or request.headers.get("x-api-key")):
            return web.json_response({"type": "error", "error": {"type": "authentication_error",
                                                                 "message": "invalid x-api-key"}}, status=401)
        if self.batch_create_faults:
            return web.json_response({"type": "error", "error": {"type": "rate_limit_error", "message": "busy"}},
                                     status=self.batch_create_faults.pop(0))
        params = await request.json()
        batch_id = f"msgbatch_{len(self.batches) + 1}"
        counts = {"processing": len(params["requests"]), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        self.batches[batch_id] = {"id": batch_id, "processing_status": "in_progress", "request_counts": counts,
                                  "created_at": "2026-12-03T00:00:00Z", "results_url": None,
                                  "requests": params["requests"], "results": None}
        self._made = {**getattr(self, "_made", {}), batch_id: time.monotonic()}
        return web.json_response(self._message_batch_object(self.batches[batch_id]))

    async def _message_batch(self, request: web.Request):
        batch = self.batches[request.match_info["id"]]
        if batch["processing_status"] == "in_progress" and not self.hold_batches and \
                time.monotonic() - self._made[batch["id"]] >= self.batch_latency:
            index, results = list(self.batches).index(batch["id"]), []
            for line in batch["requests"]:
                shaped = line["params"]
                messages = ([{"role": "system", "content": shaped["system"]}] if "system" in shaped else []) + \
                    shaped["messages"]
                body = {"model": shaped["model"], "messages": messages, "max_tokens": shaped["max_tokens"]}
                fault = self.batch_fault_for(body, index) if self.batch_fault_for else None
                if fault == "expire":
                    result = {"type": "expired"}
                elif isinstance(fault, int):
                    kind = {400: "invalid_request_error", 529: "overloaded_error"}.get(fault, "api_error")
                    result = {"type": "errored", "error": {"type": "error", "error": {"type": kind, "message": "injected"}}}
                else:
                    self.batch_requests.append(body)
                    text = self.reply(messages)
                    result = {"type": "succeeded", "message": {
                        "id": "msg", "type": "message", "role": "assistant", "model": shaped["model"],
                        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                        "usage": {"input_tokens": sum(words(m["content"]) for m in messages),
                                  "output_tokens": words(text)}}}
                results.append({"custom_id": line["custom_id"], "result": result})
            batch["results"] = results
            batch["processing_status"] = "ended"
            for kind in ("succeeded", "errored", "canceled", "expired"):
                batch["request_counts"][kind] = sum(r["result"]["type"] == kind for r in results)
            batch["request_counts"]["processing"] = 0
            batch["results_url"] = str(request.url.with_path(f"/v1/messages/batches/{batch['id']}/results"))
        return web.json_response(self._message_batch_object(batch))

    async def _message_batch_results(self, request: web.Request):
        batch = self.batches[request.match_info["id"]]
        return web.Response(body="".join(json.dumps(r) + "\n" for r in batch["results"]).encode(),
                            content_type="application/x-jsonl")


async def trickle(request: web.Request, payload: bytes, headers_too: bool, gap: float):
    """Write a whole HTTP response by hand, one byte every `gap` seconds: the body only, or the status
    line and headers too (a slow proxy). Stops when the client goes away."""
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n").encode()
    transport = request.transport
    if not headers_too:
        transport.write(head)
    for byte in (head if headers_too else b"") + payload:
        if transport is None or transport.is_closing():
            break
        transport.write(bytes([byte]))
        await asyncio.sleep(gap)
    if transport is not None:
        transport.close()
    raise asyncio.CancelledError  # the response was written by hand: aiohttp must not write another


def fault_kind(fault) -> str:
    """A fault's name for tables: "HTTP 503", "HTTP 429 with Retry-After", "sleep 2s", "close", ..."""
    if isinstance(fault, int):
        return f"HTTP {fault}"
    if isinstance(fault, str):
        return fault
    if fault[0] == "status":
        return f"HTTP {fault[1]}" + (" with Retry-After" if "Retry-After" in dict(fault[2]) else "")
    if fault[0] == "sleep":
        return f"sleep {fault[1]:g}s"
    if fault[0] == "trickle":
        return f"{fault[1]} trickled"
    if fault[0] == "redirect":
        return f"redirect {fault[1]}"
    return f"finish_reason {fault[1]}"


def agent_of(messages: list[dict]) -> str:
    """Which agent sent these messages, from its role-play system prompt."""
    first = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    for agent, marker in (("planner", "You plan the logic flow"), ("questioner", "the user's side of a dialogue"), ("answerer", "assistant in a dialogue"),
                          ("generator", "You turn documents into"), ("evaluator", "evaluator of dialogues"),
                          ("candidate", "candidate in an interview"), ("reviewer", "member of an interview panel"),
                          ("chairman", "You chair an interview panel"), ("difficulty", "rate how difficult"),
                          ("positive", "optimistic"), ("critical", "critical person"), ("advisor", "advisor"),
                          ("editor", "editor"), ("judge", "checking the quality")):
        if marker in first:
            return agent
    return "unknown"


def coevol_replies(judge: Callable[[list[dict]], str] = lambda m: "<assistant 2>\nThe edit is better.") -> Callable:
    """Deterministic replies per agent; the editor appends a marker to the previous response, so each
    accepted round is visible in the output. `judge` decides verdicts (default: always prefer the
    response shown second, i.e. the edit in the forward order and the original in the reverse)."""
    def reply(messages: list[dict]) -> str:
        agent = agent_of(messages)
        last = messages[-1]["content"]
        if agent == "editor":
            previous = last.split("### Previous Response:\n", 1)[1].split("\n\n", 1)[0] if "### Previous Response:" in last else "draft"
            return f"{previous} [edited]"
        if agent == "judge":
            return judge(messages)
        if agent == "advisor":
            return "1. Add an example.\n2. Explain the reasoning.\n3. Be concise."
        return f"{agent} view: fine" if len(messages) == 2 else f"{agent} second look"
    return reply


def prefer_edit(messages: list[dict]) -> str:
    """A judge that always prefers the edited response (marked "[edited]" one more time)."""
    text = messages[-1]["content"]
    first = text.split("[The Start of Assistant 1's Response]\n", 1)[1].split("\n\n[The End", 1)[0]
    second = text.split("[The Start of Assistant 2's Response]\n", 1)[1].split("\n\n[The End", 1)[0]
    return "<assistant 1>\nmore edits" if first.count("[edited]") > second.count("[edited]") else "<assistant 2>\nmore edits"


def review_replies(verdict: Callable[[list[dict]], str] = lambda messages: "insufficient") -> Callable:
    """Deterministic ReviewInstruct replies: the Candidate answers "answer N" to the N-th question,
    each Reviewer names its perspective and gives `verdict(messages)`, the Chairman asks "question N"."""
    def reply(messages: list[dict]) -> str:
        agent = agent_of(messages)
        if agent == "candidate":
            return f"answer {sum(m['role'] == 'user' for m in messages)}"
        if agent == "reviewer":
            perspective = messages[0]["content"].split("You are ", 1)[1].split(",", 1)[0]
            return f"As {perspective}: it lacks detail.\nVerdict: {verdict(messages)}"
        if agent == "chairman":
            asked = messages[-1]["content"].split("[Conversation so far]\n", 1)[1].count("User: ")
            return f"Question: question {asked + 1}\nDirection: depth\nReasoning: the answer is thin."
        if agent == "difficulty":
            return ("easy", "medium", "hard")[min(messages[-1]["content"].count("User: "), 3) - 1] + "\nbecause"
        return "ok"
    return reply


def r2s_replies() -> Callable:
    """Deterministic R2S replies. The questioner's turn N asks "question N", cycles through the six
    dialogue types and finds the document's N-th sentence (and, in turn 2, a sentence that is not in
    the document); the answerer answers "answer N" with the first passage it was given; the
    baselines' generator writes thoughts and then the turns asked for; the evaluator scores every turn
    Info=4 UD=4 UF=5 FD=4 FL=3 and the dialogue CS=5 CO=4 IA=3 CR=60%."""
    from hf_synth.methods.grounding import sentences
    from hf_synth.methods.r2s import TYPES

    def reply(messages: list[dict]) -> str:
        agent = agent_of(messages)
        last = messages[-1]["content"]
        if agent == "planner":
            turns = int(last.split("a dialogue of ", 1)[1].split(" ", 1)[0])
            return "Purpose: learn about the place.\n" + "\n".join(
                f"Turn {n}: {TYPES[(n - 1) % len(TYPES)]}: part {n}" for n in range(1, turns + 1))
        if agent == "questioner":
            document = last.split("[Document]\n", 1)[1].split("\n\n[Planned logic flow]", 1)[0]
            turn = int(last.split("Plan turn ", 1)[1].split(" ", 1)[0])
            found = sentences(document)[(turn - 1) % len(sentences(document))]
            invented = ' "The moon is made of cheese."' if turn == 2 else ""
            return (f"User: question {turn}\nDialogue Type: {TYPES[(turn - 1) % len(TYPES)]}\n"
                    f"Search: topic {turn}; detail\nFind: \"{found}\"{invented}")
        if agent == "answerer":
            passage = messages[0]["content"].split('- "', 1)[1].split('"', 1)[0] if '- "' in messages[0]["content"] else "none"
            return f"answer {sum(m['role'] == 'user' for m in messages)}: {passage}"
        if agent == "generator" and "Chain of Dialogue" in last:  # a GLLM: the annotated format it was trained on
            document = last.split("[Document]\n", 1)[1].split("\n\nTurn this document", 1)[0]
            turns = int(last.split("a dialogue of ", 1)[1].split(" ", 1)[0])
            return "\n\n".join(f'User: question {n}\nDialogue Type: {TYPES[(n - 1) % len(TYPES)]}\nSearch: topic {n}\n'
                                f'Find: "{sentences(document)[(n - 1) % len(sentences(document))]}"\nAssistant: answer {n}'
                                for n in range(1, turns + 1))
        if agent == "generator":
            turns = int(last.split("a dialogue of ", 1)[1].split(" ", 1)[0])
            return "Thoughts: cover the facts.\n\n" + "\n".join(f"User: question {n}\nAssistant: answer {n}"
                                                              for n in range(1, turns + 1))
        if agent == "evaluator":
            turns = last.split("[Dialogue]\n", 1)[1].count("\nUser: ")
            return "\n".join([f"Turn {n}: Info=4 UD=4 UF=5 FD=4 FL=3" for n in range(1, turns + 1)]
                             + ["Dialogue: CS=5 CO=4 IA=3 CR=60%"])
        return "ok"
    return reply


def main() -> None:
    """Serve in a process of its own, so that a benchmark's client does not share its CPU: prints
    the address, then serves until killed."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every reply")
    parser.add_argument("--replies", choices=("coevol", "echo"), default="coevol",
                        help="coevol: CoEvol agents' replies, every edit accepted; echo: the last message back")
    parser.add_argument("--inject", type=float, default=0.0, metavar="RATE",
                        help="answer this share of the requests, at random, with --status")
    parser.add_argument("--status", type=int, default=503, help="the HTTP status of injected faults")
    args = parser.parse_args()
    reply = coevol_replies(prefer_edit) if args.replies == "coevol" else lambda messages: messages[-1]["content"] if messages else "ok"
    server = FakeOpenAI(reply, latency=args.latency, record=False)
    if args.inject:
        server.inject(args.inject, [args.status])
    server.start()
    print(server.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
