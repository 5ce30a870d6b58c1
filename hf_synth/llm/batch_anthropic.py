"""Anthropic's Message Batches: the same hop-by-hop batching, journal and re-attachment as the OpenAI
Batch API transport (`batch_openai.py`), in Anthropic's dialect, through the `anthropic` client (the
`[anthropic]` extra).

What differs: the requests go in the batch's creation itself (no file), each as `params` in Anthropic's
shape — the system prompt apart, `max_tokens` required, no `seed`; results come per request as
`succeeded` (a message of content blocks), `errored`, `canceled` or `expired`; a batch has no metadata,
so a run killed between creating a batch and journaling its id cannot find it again (that window is
one request long).
"""
from __future__ import annotations

import importlib.util
import time

from ..errors import EndpointError

from .batch_openai import OpenAIBatchTransport
from .failures import NotReturned, StatusError, TransportFailure
from .journal import Entry
from .transport import Completion

API_VERSION = "2023-06-01"
# an errored request's error type -> the HTTP status it would have had online (classified in failures.py)
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                "overloaded_error": 529}


def params(body: dict) -> dict:
    """An OpenAI chat-completion body in Anthropic's shape (Messages API)."""
    messages = [dict(role=m["role"], content=m["content"]) for m in body["messages"] if m["role"] != "system"]
    system = "\n\n".join(m["content"] for m in body["messages"] if m["role"] == "system")
    shaped = {"model": body["model"], "max_tokens": body["max_tokens"], "messages": messages,
              **{name: body[name] for name in ("temperature", "top_p") if name in body}}
    if system:
        shaped["system"] = system
    return shaped


class AnthropicBatchTransport(OpenAIBatchTransport):
    """Sends one LLM's requests to `base_url`'s Message Batches API (https://api.anthropic.com)."""

    CLIENT = "anthropic"

    def __init__(self, llm, base_url: str):
        if importlib.util.find_spec("anthropic") is None:
            raise EndpointError("LLM(batch='anthropic') sends through the anthropic client: "
                                'pip install "hf_synth[anthropic]".')
        super().__init__(llm, base_url)

    def _api(self):
        if self._client is None:
            import anthropic

            # (max_retries=0: what a failure means and whether to try again is decided in failures.py)
            self._client = anthropic.AsyncAnthropic(api_key=self.llm.api_key.reveal() or "none",
                                                    base_url=self.base_url.rstrip("/").removesuffix("/v1"),
                                                    timeout=self.llm.timeout, max_retries=0)
        return self._client

    async def _create(self, entry: Entry, chunk: dict):
        requests = [{"custom_id": key, "params": params(body)} for key, (body, _) in chunk.items()]
        return await self._call(self._api().messages.batches.create(requests=requests))

    async def _find(self, entry: Entry):
        return None  # (no metadata to find it by)

    async def _retrieve(self, batch_id: str):
        return await self._call(self._api().messages.batches.retrieve(batch_id))

    def _has_ended(self, batch) -> bool:
        return batch.processing_status == "ended"

    def _status(self, batch) -> str:
        return batch.processing_status

    def _refused(self, batch) -> str | None:
        return None  # (a request the API refuses is `errored` on its own)

    def _made_at(self, batch) -> int:
        return int(batch.created_at.timestamp()) if batch.created_at else int(time.time())

    async def _results(self, batch) -> dict[str, Completion | TransportFailure]:
        results: dict[str, Completion | TransportFailure] = {}
        decoded = await self._call(self._api().messages.batches.results(batch.id))
        async for line in decoded:
            results[line.custom_id] = _outcome(line.result)
        return results


def _outcome(result) -> Completion | TransportFailure:
    if result.type == "succeeded":
        message = result.message
        text = "".join(block.text for block in message.content if getattr(block, "type", "") == "text")
        return Completion(text=text, finish_reason="length" if message.stop_reason == "max_tokens" else "stop",
                          prompt_tokens=message.usage.input_tokens, completion_tokens=message.usage.output_tokens)
    if result.type == "errored":
        error = getattr(result.error, "error", result.error)
        kind = getattr(error, "type", "api_error")
        return StatusError(ERROR_STATUS.get(kind, 500), f"{kind}: {getattr(error, 'message', '')}")
    return NotReturned(result.type)  # canceled, expired: sent again
