"""Hard caps on what a run spends: US$ (`max_cost`) and requests (`max_requests`).

Before a request is sent, the most it can cost is reserved: its prompt at one token per byte (no token
is shorter than a byte) and its whole `max_tokens` of reply. A request whose reservation — with what
is spent and what is reserved for the requests in flight — could pass a cap is not sent: its row is
marked `not run: the cost cap of $X was reached` (the row's replies so far are cached, so a run with a
higher cap pays only for the rest). When the reply comes, its reservation becomes what it cost. So a
cap is never passed, whatever the replies are. Replies from the request cache cost nothing and are
never refused.
"""
from __future__ import annotations

from ..errors import CallFailed
from .prices import cost

CAP = "cap"  # the blame of a request a cap refused: neither the row's nor the endpoint's


class Spending:
    def __init__(self, max_cost: float | None = None, max_requests: int | None = None):
        self.max_cost = max_cost
        self.max_requests = max_requests
        self.spent = 0.0      # US$ of the replies received
        self.reserved = 0.0   # US$ held for the requests in flight
        self.requests = 0     # requests sent or in flight
        self.refused = 0      # requests a cap kept from being sent

    def reserve(self, prices: tuple[float, float] | None, prompt_bytes: int, max_tokens: int) -> float:
        """Hold the most a request can cost; `CallFailed` (blame "cap") when a cap could be passed."""
        if self.max_requests is not None and self.requests >= self.max_requests:
            self.refused += 1
            raise CallFailed(f"not run: the request cap of {self.max_requests} was reached", blame=CAP)
        most = cost(prices, prompt_bytes, max_tokens) if prices else 0.0
        if self.max_cost is not None and self.spent + self.reserved + most > self.max_cost:
            self.refused += 1
            raise CallFailed(f"not run: the cost cap of ${self.max_cost:g} was reached", blame=CAP)
        self.reserved += most
        self.requests += 1
        return most

    def settle(self, reserved: float, spent: float) -> None:
        """A request ended: its reservation is replaced by what it cost (0 when it got no reply)."""
        self.reserved -= reserved
        self.spent += spent
