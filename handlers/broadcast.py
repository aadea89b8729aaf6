"""Posting frames through the `@connections` callback API: to one connection, or to all through a bounded pool.

A post is delivered (2xx), gone (410: the caller deletes exactly that row) or failed. 429 (throttled, or the client's
buffer is full) and 5xx are retried with exponential backoff and full jitter; other errors (403, 413, network) fail
at once, since repeating them gives the same answer. One failure never stops the rest of a broadcast.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

DELIVERED = "delivered"
GONE = "gone"
_THROTTLED = frozenset({"LimitExceededException", "ThrottlingException", "TooManyRequestsException"})


@dataclass(frozen=True)
class Retry:
    """Retries of a throttled or 5xx post; `sleep` and `random` are injectable so tests need not wait."""

    attempts: int = 4
    base_seconds: float = 0.05
    cap_seconds: float = 1.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"Retry.attempts must be at least 1, got {self.attempts}")

    def pause(self, retry_number: int) -> None:
        """Full jitter: uniform up to the capped exponential bound, so retries from many threads spread out."""
        self.sleep(self.random() * min(self.cap_seconds, self.base_seconds * 2**retry_number))


def post(callback_api: ApiGatewayManagementApiClient, connection_id: str, data: bytes, retry: Retry) -> str:
    """Post `data` to one connection: `DELIVERED`, `GONE`, or the error code it failed with."""
    outcome = "NotAttempted"
    for attempt in range(retry.attempts):
        if attempt:
            retry.pause(attempt - 1)
        try:
            callback_api.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as error:
            outcome = error.response.get("Error", {}).get("Code") or "ClientError"
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status == 410 or outcome == "GoneException":
                return GONE
            if not (status == 429 or status >= 500 or outcome in _THROTTLED):
                return outcome
        except BotoCoreError as error:
            return type(error).__name__
        else:
            return DELIVERED
    return outcome


@dataclass
class BroadcastResult:
    """What one broadcast did: frames delivered, stale rows removed, failures by error code."""

    delivered: int = 0
    stale_removed: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def failed(self) -> int:
        """Connections that got neither the frame nor a removal."""
        return sum(self.errors.values())


def broadcast(
    pages: Iterable[Iterable[str]],
    data: bytes,
    callback_api: ApiGatewayManagementApiClient,
    remove_connection: Callable[[str], None],
    *,
    retry: Retry,
    workers: int,
    skip: frozenset[str] = frozenset(),
) -> BroadcastResult:
    """Post `data` to every connection id in `pages` but those in `skip`, `workers` at a time; `remove_connection`
    runs on 410.

    Pages stream in while earlier posts are in flight; a semaphore keeps at most `2 * workers` posts queued, so the
    Scan never runs far ahead and memory stays flat. A Scan error propagates once started posts have finished.
    """
    result = BroadcastResult()
    lock = threading.Lock()
    slots = threading.BoundedSemaphore(2 * workers)

    def deliver(connection_id: str) -> str:
        outcome = post(callback_api, connection_id, data, retry)
        if outcome == GONE:
            try:
                remove_connection(connection_id)
            except ClientError as error:
                return "RemoveFailed:" + error.response.get("Error", {}).get("Code", "ClientError")
            except BotoCoreError as error:
                return "RemoveFailed:" + type(error).__name__
        return outcome

    def tally(future: Future[str]) -> None:
        error = future.exception()
        # An exception here is a bug, not an answer from AWS: counted like any failure, by its type.
        outcome = future.result() if error is None else type(error).__name__
        with lock:
            if outcome == DELIVERED:
                result.delivered += 1
            elif outcome == GONE:
                result.stale_removed += 1
            else:
                result.errors[outcome] += 1
        slots.release()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="broadcast") as pool:
        for page in pages:
            for connection_id in page:
                if connection_id in skip:
                    continue
                slots.acquire()
                pool.submit(deliver, connection_id).add_done_callback(tally)
    return result
