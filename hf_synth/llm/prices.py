"""What requests cost, in US$: per million input and output tokens, from a small dated table of hosted
models or as given (`LLM(prices=(IN, OUT))`, `--prices IN,OUT`); through a batch API, at half.

Self-hosted endpoints have no price: runs on them show tokens only, and a cost cap is refused.
"""
from __future__ import annotations

# List prices of a few hosted models, online (US$ per million input, output tokens), as published by
# OpenAI on its pricing page; checked on this date. Pass prices= for any other model, or to correct them.
TABLE_DATE = "2026-12-01"
TABLE = {"gpt-4o-mini": (0.15, 0.60), "gpt-4o": (2.50, 10.00), "gpt-4.1-mini": (0.40, 1.60),
         "gpt-4.1": (2.00, 8.00), "gpt-4.1-nano": (0.10, 0.40)}
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API and Anthropic's Message Batches: half the online price


def prices_of(model: str | None, given: tuple[float, float] | None = None,
              batch: bool = False) -> tuple[float, float] | None:
    """US$ per million input and output tokens for `model` (`given`, else the table's); None when unknown."""
    prices = tuple(given) if given else TABLE.get(model or "")
    if prices is None:
        return None
    return (prices[0] * BATCH_DISCOUNT, prices[1] * BATCH_DISCOUNT) if batch else prices


def cost(prices: tuple[float, float], prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * prices[0] + completion_tokens * prices[1]) / 1e6
