"""The adaptive concurrency limit: slots are handed out first come, first served, never more than the
limit at once, and a waiter cancelled before or after it was handed a slot does not lose one."""
import asyncio

from hf_synth.llm.pacing import AdaptiveLimit, Breaker


def test_slots_go_in_arrival_order_and_never_beyond_the_limit():
    async def scenario():
        limit = AdaptiveLimit(3)
        order, peak = [], 0

        async def request(n):
            nonlocal peak
            await limit.acquire()
            try:
                order.append(n)
                peak = max(peak, limit.in_flight)
                await asyncio.sleep(0.001 * (n % 4))
            finally:
                limit.release()

        await asyncio.gather(*(request(n) for n in range(40)))
        return limit, order, peak

    limit, order, peak = asyncio.run(scenario())
    assert order == list(range(40))
    assert peak == 3 and limit.in_flight == 0


def test_a_cut_limit_admits_fewer_and_cancelled_waiters_give_their_slot_back():
    async def scenario():
        limit = AdaptiveLimit(4)
        release = asyncio.Event()
        held = []

        async def hold():
            await limit.acquire()
            try:
                held.append(limit.in_flight)
                await release.wait()
            finally:
                limit.release()

        holders = [asyncio.create_task(hold()) for _ in range(4)]
        await asyncio.sleep(0)
        limit.rate_limited(sent_at=0.0)   # one answer in, a 429: too few to judge by
        assert limit.limit == 4
        limit.rate_limited(sent_at=0.0)   # two of two: halved to 2; four still in flight, none admitted
        waiters = [asyncio.create_task(hold()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert limit.limit == 2 and limit.in_flight == 4 and len(held) == 4
        waiters[0].cancel()               # cancelled while waiting
        release.set()
        await asyncio.gather(*holders, *waiters[1:])
        return limit, held

    limit, held = asyncio.run(scenario())
    assert limit.in_flight == 0
    assert len(held) == 6 and max(held[4:]) <= 2


def test_the_limit_halves_down_to_one_request_and_no_further():
    import time

    limit = AdaptiveLimit(4)
    for _ in range(8):  # one cut per round trip: each request sent after the last cut
        limit.rate_limited(time.monotonic() + 1)
    assert limit.limit == 1.0 and limit.cuts >= 3


def test_isolated_429s_are_retried_and_sustained_ones_halve_the_limit():
    import time

    limit = AdaptiveLimit(64)
    for n in range(2000):  # one answer in twenty is a 429, as hosted APIs sprinkle them
        limit.rate_limited(time.monotonic() + 1) if n % 20 == 0 else limit.succeeded()
    assert limit.cuts == 0 and limit.limit == 64
    for n in range(64):  # then one in three: the endpoint is past its limit
        limit.rate_limited(time.monotonic() + 1) if n % 3 == 0 else limit.succeeded()
    assert limit.cuts >= 1 and limit.limit <= 32


def test_the_retry_budget_spends_whole_tokens_only():
    from hf_synth.llm.pacing import RetryBudget

    budget = RetryBudget(ratio=0.5, reserve=1.0)
    assert budget.withdraw() and not budget.withdraw()  # exactly one token: one retry
    budget.requested()
    assert not budget.withdraw()  # half a token is not a retry
    budget.requested()
    assert budget.withdraw()


def test_the_next_look_at_an_endpoint_found_serving_comes_at_twice_the_suspects_and_never_sooner_than_the_first():
    import time

    def suspects_until_a_look(breaker):
        later = time.monotonic() + 60  # sent after every completion so far: suspects
        return next(n for n in range(1, 100) if breaker.attempt_failed(later))

    breaker = Breaker(first_look=3)
    assert suspects_until_a_look(breaker) == 3
    breaker.serving()  # nothing else completed while it was looked at: its canary did
    assert suspects_until_a_look(breaker) == 3  # six in a row
    breaker.completed()  # a request completes while the endpoint is looked at: the count starts again
    breaker.serving()
    assert suspects_until_a_look(breaker) == 3
