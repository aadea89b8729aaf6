"""Posting frames through the `@connections` callback API: to one connection, or to a whole audience.

A post ends delivered, gone (410: the caller deletes that row) or failed; what can still succeed is retried, what
cannot (403, 413) fails at once, and one failure never stops the rest (docs/handlers.md, "The broadcast").
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from handlers.callback_client import CallbackClient, TransportError

DELIVERED = "delivered"
GONE = "gone"
WORKERS = 128
"""Posts in flight at once in one invocation: enough to cover API Gateway's latency at the CPU's pace."""
DEADLINE = "DeadlineExceeded"
"""The cause counted for a connection still being retried when the broadcast ran out of time."""


@dataclass(frozen=True)
class Retry:
    """How often and how long one connection's post is retried; `sleep` and `random` are injectable for tests."""

    attempts: int = 6
    """Posts per connection when they fail with 5xx or a network error."""
    throttled_attempts: int = 30
    """Posts per connection when they are answered 429 (the pacer slows everyone; this bounds one stuck buffer)."""
    base_seconds: float = 0.05
    cap_seconds: float = 1.0
    sleep: Callable[[float], None] | None = field(default=None, repr=False)
    """Where backoff waits go; None waits on the event loop. Tests pass a recorder."""
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.throttled_attempts < 1:
            raise ValueError(f"Retry attempts must be at least 1, got {self.attempts} and {self.throttled_attempts}")

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform up to the capped exponential bound, so retries from many posts spread out."""
        return float(self.random() * min(self.cap_seconds, self.base_seconds * 2**retry_number))

    async def pause(self, retry_number: int) -> None:
        """Wait before retry number `retry_number` (0 for the first)."""
        seconds = self.backoff(retry_number)
        if self.sleep is None:
            await asyncio.sleep(seconds)
        else:
            self.sleep(seconds)


RECOVERY_HOLD_SECONDS = 0.1
"""After a 429 the pacer's rate stays down this long, and halves at most once per this long (one burst, one cut)."""


class Pacer:
    """One fan-out's shared pace: a token bucket whose rate halves on 429 and climbs back while posts succeed.

    Shared, so that under throttling all posts slow down together instead of each retrying on its own clock.
    """

    def __init__(
        self,
        max_per_second: float,
        *,
        floor_per_second: float = 10.0,
        burst_seconds: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_per_second > 0:
            raise ValueError(f"Pacer.max_per_second must be positive, got {max_per_second}")
        self.ceiling = float(max_per_second)
        self.floor = min(floor_per_second, self.ceiling)
        self.rate = self.ceiling
        self.capacity = max(1.0, self.ceiling * burst_seconds)
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.last_throttle = self.last_cut = float("-inf")
        self.throttles = 0
        self.lowest_rate = self.rate

    def reserve(self) -> float:
        """Take a token: the seconds the caller must wait before posting (0 when one is free now)."""
        now = self.clock()
        elapsed = now - self.updated
        self.updated = now
        if self.rate < self.ceiling and now - self.last_throttle >= RECOVERY_HOLD_SECONDS:
            self.rate = min(self.ceiling, self.rate * (1 + elapsed))
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate) - 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def throttled(self) -> None:
        """A post was answered 429: halve the rate (once per hold window) and hold it there."""
        now = self.clock()
        self.throttles += 1
        self.last_throttle = now
        if now - self.last_cut >= RECOVERY_HOLD_SECONDS:
            self.last_cut = now
            self.rate = max(self.floor, self.rate / 2)
            self.tokens = min(self.tokens, 0.0)
            self.lowest_rate = min(self.lowest_rate, self.rate)


@dataclass
class BroadcastResult:
    """What one broadcast did: frames delivered, stale rows removed, failures and retries by cause."""

    delivered: int = 0
    stale_removed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    """Posts repeated, by the cause of the attempt that failed (the connection may still have been reached)."""
    shards_handed_over: int = 0
    """Parts of the audience handed to other invocations (`handlers.fan_out`), not counted here."""

    @property
    def failed(self) -> int:
        """Connections that got neither the frame nor a removal."""
        return sum(self.errors.values())


class _Delivery:
    """Posts one frame to connections through a shared client, pacer and retry policy, tallying the outcomes."""

    def __init__(
        self,
        client: CallbackClient,
        data: bytes,
        remove_connection: Callable[[str], None],
        *,
        retry: Retry,
        pacer: Pacer | None,
        deadline: float,
    ) -> None:
        self.client = client
        self.signer = client.signer()
        self.data = data
        self.remove_connection = remove_connection
        self.retry = retry
        self.pacer = pacer
        self.deadline = deadline
        self.result = BroadcastResult()

    async def post(self, connection_id: str) -> str:
        """Post to one connection until it is delivered, gone or failed for good; returns the outcome."""
        failures = throttles = 0
        while True:
            if self.pacer is not None and (wait := self.pacer.reserve()) > 0:
                await asyncio.sleep(wait)
            try:
                answer = await self.client.post(self.signer, connection_id, self.data)
            except TransportError as error:
                cause, status = error.cause, 0
            else:
                status = answer.status
                if status < 300:
                    return DELIVERED
                if status == 410:
                    return await self._remove(connection_id)
                cause = answer.error_type or f"HTTP{status}"
                if 400 <= status < 500 and status != 429:
                    return cause
            if status == 429:
                if self.pacer is not None:
                    self.pacer.throttled()
                throttles += 1
                retry_number, budget_left = throttles, throttles < self.retry.throttled_attempts
            else:
                failures += 1
                retry_number, budget_left = failures, failures < self.retry.attempts
            if not budget_left:
                return cause
            if time.monotonic() >= self.deadline:
                return DEADLINE
            self.result.retries[cause] += 1
            await self.retry.pause(retry_number - 1)

    async def _remove(self, connection_id: str) -> str:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.remove_connection, connection_id)
        except ClientError as error:
            return "RemoveFailed:" + error.response.get("Error", {}).get("Code", "ClientError")
        except BotoCoreError as error:
            return "RemoveFailed:" + type(error).__name__
        return GONE

    async def tally(self, connection_id: str) -> None:
        """Post to one connection and count the outcome; an exception here is a bug, counted by its type."""
        try:
            outcome = await self.post(connection_id)
        except Exception as error:  # one connection's bug must not stop the broadcast
            outcome = type(error).__name__
        if outcome == DELIVERED:
            self.result.delivered += 1
        elif outcome == GONE:
            self.result.stale_removed += 1
        else:
            self.result.errors[outcome] += 1


def post(client: CallbackClient, connection_id: str, data: bytes, retry: Retry) -> str:
    """Post `data` to one connection (no removal on 410): `DELIVERED`, `GONE`, or the cause it failed with."""
    delivery = _Delivery(client, data, lambda _: None, retry=retry, pacer=None, deadline=time.monotonic() + 60.0)
    return client.run(delivery.post(connection_id))


def broadcast(
    pages: Iterable[Iterable[str]],
    data: bytes,
    client: CallbackClient,
    remove_connection: Callable[[str], None],
    *,
    retry: Retry,
    workers: int,
    pacer: Pacer | None = None,
    time_budget_seconds: float = 25.0,
    skip: frozenset[str] = frozenset(),
) -> BroadcastResult:
    """Post `data` to every connection id in `pages` but those in `skip`; `remove_connection` runs on 410.

    Pages stream through a bounded queue, so the Scan never runs far ahead and memory stays flat.
    """
    delivery = _Delivery(
        client, data, remove_connection, retry=retry, pacer=pacer, deadline=time.monotonic() + time_budget_seconds
    )
    client.run(_fan_out(iter(pages), delivery, workers, skip))
    return delivery.result


async def _fan_out(pages: Iterator[Iterable[str]], delivery: _Delivery, workers: int, skip: frozenset[str]) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=2 * workers)
    tasks: list[asyncio.Task[None]] = []

    async def work() -> None:
        while (connection_id := await queue.get()) is not None:
            await delivery.tally(connection_id)

    try:
        while (page := await loop.run_in_executor(None, next, pages, None)) is not None:
            for connection_id in page:
                if connection_id in skip:
                    continue
                if len(tasks) < workers:  # a small audience starts only as many workers as it has connections
                    tasks.append(loop.create_task(work()))
                await queue.put(connection_id)
    finally:
        for _ in tasks:
            await queue.put(None)
        await asyncio.gather(*tasks)
