"""`handlers.broadcast` on its own: retries by cause, zero loss under faults at the callback API, shared pacing."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from handlers import broadcast
from handlers.callback_client import CallbackClient, Timeouts
from tests.handlers.callback_server import (
    GONE,
    OK,
    RESET,
    RESET_MID_RESPONSE,
    SERVER_ERROR,
    SILENT,
    THROTTLED,
    UNAVAILABLE,
    Answer,
    CallbackServer,
)

QUICK = Timeouts(connect=0.3, read=0.5)
"""Timeouts short enough that a silent server or a full backlog costs a test well under a second."""
ROOMY = Timeouts(connect=5, read=5)
"""For counting posts where no timeout is meant to fire: a loaded machine must not add a retry."""


def no_sleep(seconds: float) -> None:
    """A `Retry.sleep` that does not wait."""


def client_for(server: CallbackServer, timeouts: Timeouts = QUICK) -> CallbackClient:
    return CallbackClient(server.url, "us-east-1", Credentials("AKIDTEST", "secret", "token"), timeouts)


@pytest.fixture
def client(callback_server: CallbackServer) -> Iterator[CallbackClient]:
    callback = client_for(callback_server, ROOMY)
    yield callback
    callback.close()


@pytest.fixture
def quick_client(callback_server: CallbackServer) -> Iterator[CallbackClient]:
    """For tests whose faults include a silent server: its read timeout must fire fast."""
    callback = client_for(callback_server, QUICK)
    yield callback
    callback.close()


def audience(size: int, prefix: str = "conn") -> list[str]:
    return [f"{prefix}-{number:04d}=" for number in range(size)]


def pages_of(ids: list[str], size: int = 50) -> list[list[str]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def assert_none_lost(server: CallbackServer, ids: list[str], result: broadcast.BroadcastResult) -> None:
    missing = [cid for cid in ids if server.deliveries[cid] < 1]
    assert not missing, f"{len(missing)} connections never got a whole 200 (first: {missing[:3]}); {result}"
    assert (result.delivered, result.failed) == (len(ids), 0), f"every connection counted as delivered: {result}"


@pytest.mark.parametrize(
    ("answers", "outcome", "posts"),
    [
        ((OK,), broadcast.DELIVERED, 1),
        ((GONE,), broadcast.GONE, 1),
        ((THROTTLED, OK), broadcast.DELIVERED, 2),
        ((SERVER_ERROR, UNAVAILABLE, OK), broadcast.DELIVERED, 3),
        ((RESET, OK), broadcast.DELIVERED, 2),
        ((RESET_MID_RESPONSE, OK), broadcast.DELIVERED, 2),
        ((SILENT, OK), broadcast.DELIVERED, 2),
        ((Answer(502, "BadGatewayException"),), "BadGatewayException", 6),
        ((RESET,), "ConnectionClosed", 6),
        ((THROTTLED,), "LimitExceededException", 30),
        ((Answer(413, "PayloadTooLargeException"),), "PayloadTooLargeException", 1),
        ((Answer(403, "ForbiddenException"),), "ForbiddenException", 1),
    ],
    ids=[
        "200",
        "410",
        "429-then-200",
        "500-503-200",
        "reset-then-200",
        "reset-mid-response-then-200",
        "read-timeout-then-200",
        "502-always",
        "reset-always",
        "429-always",
        "413",
        "403",
    ],
)
def test_post_outcomes_and_attempts(
    callback_server: CallbackServer, answers: tuple[Answer, ...], outcome: str, posts: int
) -> None:
    callback_server.script("target=", *answers)
    client = client_for(callback_server, QUICK if SILENT in answers else ROOMY)
    try:
        result = broadcast.post(client, "target=", b"{}", broadcast.Retry(sleep=no_sleep))
    finally:
        client.close()
    assert result == outcome, f"answers {answers} must end as {outcome}, got {result}"
    assert len(callback_server.received("target=")) == posts, f"answers {answers} must take {posts} posts"


def test_backoff_is_capped_and_full_jitter() -> None:
    waits: list[float] = []
    retry = broadcast.Retry(base_seconds=0.1, cap_seconds=0.3, sleep=waits.append, random=lambda: 0.5)
    for number in range(4):
        waits.append(retry.backoff(number))
    assert waits == [0.05, 0.1, 0.15, 0.15], f"half (the jitter) of min(cap, base * 2**n): {waits}"


def test_retry_needs_one_attempt_at_least() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        broadcast.Retry(attempts=0)


def test_refused_connections_are_retried_until_the_endpoint_listens(aws_credentials: None) -> None:
    ids = audience(40)
    with CallbackServer(listening=False) as server:
        client = client_for(server)

        def listen_on_first_backoff(seconds: float) -> None:
            server.listen()

        retry = broadcast.Retry(sleep=listen_on_first_backoff)
        result = broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=retry, workers=8)
        client.close()
    assert_none_lost(server, ids, result)
    assert result.retries["ConnectionRefused"] >= 1, f"the refusals must have been retried: {result.retries}"


def test_connect_timeouts_are_retried_when_the_backlog_is_full(aws_credentials: None) -> None:
    ids = audience(60)
    with CallbackServer(backlog=0) as server:
        server.pause_accepting()
        client = client_for(server)

        def accept_on_first_backoff(seconds: float) -> None:
            server.resume_accepting()

        retry = broadcast.Retry(sleep=accept_on_first_backoff)
        result = broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=retry, workers=8)
        client.close()
    assert_none_lost(server, ids, result)
    assert result.retries["ConnectTimeout"] >= 1, f"connect timeouts must have been retried: {result.retries}"


def test_every_fault_at_once_loses_nothing(quick_client: CallbackClient, callback_server: CallbackServer) -> None:
    ids = audience(200)
    faults = [RESET, RESET_MID_RESPONSE, SILENT, SERVER_ERROR, UNAVAILABLE, THROTTLED]
    for number, connection_id in enumerate(ids):
        if number % 3 == 0:
            callback_server.script(connection_id, faults[(number // 3) % len(faults)], THROTTLED, OK)

    result = broadcast.broadcast(
        pages_of(ids), b"{}", quick_client, lambda _: None, retry=broadcast.Retry(sleep=no_sleep), workers=16
    )

    assert_none_lost(callback_server, ids, result)
    retried = set(result.retries)
    expected = {
        "ConnectionClosed",
        "ConnectionReset",
        "ReadTimeout",
        "InternalServerErrorException",
        "ServiceUnavailableException",
        "LimitExceededException",
    }
    assert expected <= retried, f"every fault must be seen and retried, missing {expected - retried}"


def test_a_429_storm_slows_the_whole_fan_out_and_loses_nothing(
    client: CallbackClient, callback_server: CallbackServer
) -> None:
    ids = audience(200)
    # Well under what even a loaded machine posts: 32 workers' first posts alone overrun the burst.
    callback_server.quota(per_second=150, burst=5)
    pacer = broadcast.Pacer(4000)

    result = broadcast.broadcast(
        pages_of(ids), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=32, pacer=pacer
    )

    assert_none_lost(callback_server, ids, result)
    assert pacer.throttles > 0 and pacer.lowest_rate <= 1000, f"the pacer must have backed off: {vars(pacer)}"
    throttled = callback_server.answered[429]
    assert throttled < len(ids), f"shared pacing keeps 429s fewer than the posts; got {throttled} for {len(ids)}"


def test_pacer_halves_once_per_burst_and_recovers() -> None:
    now = [0.0]
    pacer = broadcast.Pacer(1000, clock=lambda: now[0])
    for _ in range(10):  # a burst of 429s from posts that were in flight together
        pacer.throttled()
    assert pacer.rate == 500, f"one burst of 429s must halve the rate once, not ten times: {pacer.rate}"
    now[0] += broadcast.RECOVERY_HOLD_SECONDS
    pacer.throttled()
    assert pacer.rate == 250, f"a 429 after the hold window halves again: {pacer.rate}"
    for _ in range(40):
        now[0] += 0.1
        pacer.reserve()
    assert pacer.rate == 1000, f"without 429s the rate climbs back to the cap, never past it: {pacer.rate}"


def test_pacer_spaces_posts_at_its_rate() -> None:
    now = [0.0]
    pacer = broadcast.Pacer(100, burst_seconds=0.05, clock=lambda: now[0])
    waits = [pacer.reserve() for _ in range(20)]
    assert waits[:5] == [0.0] * 5, f"the burst (5 tokens at 100/s for 50 ms) goes at once: {waits}"
    assert waits[-1] == pytest.approx(0.15), f"the 20th post waits for 15 tokens at 100/s: {waits}"


def test_gone_connections_are_removed_and_removal_failures_counted(
    client: CallbackClient, callback_server: CallbackServer
) -> None:
    callback_server.script("gone-1=", GONE)
    callback_server.script("gone-2=", GONE)
    callback_server.script("gone-3=", GONE)
    removed: list[str] = []

    def remove(connection_id: str) -> None:
        if connection_id == "gone-1=":
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "DeleteItem")
        if connection_id == "gone-2=":
            raise KeyError(connection_id)  # a bug in the collaborator
        removed.append(connection_id)

    result = broadcast.broadcast(
        [["ok-1=", "gone-1="], ["gone-2=", "ok-2=", "gone-3="]],
        b"{}",
        client,
        remove,
        retry=broadcast.Retry(),
        workers=2,
    )

    assert removed == ["gone-3="], f"exactly the 410 connection is removed: {removed}"
    assert (result.delivered, result.stale_removed, result.failed) == (2, 1, 2), f"tally: {result}"
    assert result.errors == {"RemoveFailed:ProvisionedThroughputExceededException": 1, "KeyError": 1}, result.errors


def test_retries_stop_at_the_time_budget(client: CallbackClient, callback_server: CallbackServer) -> None:
    callback_server.script("stuck=", SERVER_ERROR)
    result = broadcast.broadcast(
        [["stuck=", "fine="]],
        b"{}",
        client,
        lambda _: None,
        retry=broadcast.Retry(sleep=no_sleep),
        workers=2,
        time_budget_seconds=0,
    )
    assert result.errors == {broadcast.DEADLINE: 1}, f"no retry once the budget is spent: {result}"
    assert len(callback_server.received("stuck=")) == 1 and result.delivered == 1, f"{result}"


def test_scan_error_propagates_after_started_posts(client: CallbackClient, callback_server: CallbackServer) -> None:
    def pages() -> Iterator[list[str]]:
        yield ["first="]
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "Scan")

    with pytest.raises(ClientError):
        broadcast.broadcast(pages(), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=2)
    assert callback_server.deliveries["first="] == 1, "posts from pages already read must still be sent"


def test_posts_reuse_keep_alive_connections(client: CallbackClient, callback_server: CallbackServer) -> None:
    ids = audience(100)
    broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=4)
    broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=4)
    assert callback_server.connections_opened <= 4, (
        f"4 workers need 4 connections, kept across broadcasts; {callback_server.connections_opened} were opened"
    )


def test_skipped_connections_get_nothing_and_are_not_counted(
    client: CallbackClient, callback_server: CallbackServer
) -> None:
    result = broadcast.broadcast(
        [["sender=", "ok-1="], ["ok-2="]],
        b"{}",
        client,
        lambda _: None,
        retry=broadcast.Retry(),
        workers=2,
        skip=frozenset({"sender="}),
    )
    assert callback_server.received("sender=") == [], "a skipped connection must not be posted to"
    assert [len(callback_server.received(cid)) for cid in ("ok-1=", "ok-2=")] == [1, 1], "the others get the frame"
    assert (result.delivered, result.stale_removed, result.failed) == (2, 0, 0), f"tally: {result}"


def test_a_caller_already_running_an_event_loop_still_delivers(
    client: CallbackClient, callback_server: CallbackServer
) -> None:
    # An async host (or a test harness such as Playwright's sync API) leaves a loop running in the caller's thread.
    async def post_from_inside_a_loop() -> str:
        return broadcast.post(client, "target=", b"{}", broadcast.Retry(sleep=no_sleep))

    outcomes: list[str] = []
    # A thread of its own, so the test does not depend on what loop this test process's main thread holds.
    host = threading.Thread(target=lambda: outcomes.append(asyncio.run(post_from_inside_a_loop())))
    host.start()
    host.join(timeout=30)
    assert outcomes == [broadcast.DELIVERED], f"a post made from inside a running loop must be delivered: {outcomes}"
    assert len(callback_server.received("target=")) == 1, "posted once, from the client's own loop"


def test_connections_the_server_closed_while_idle_are_replaced_without_a_retry(
    client: CallbackClient, callback_server: CallbackServer
) -> None:
    ids = audience(20)
    broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=4)
    callback_server.close_idle_connections()
    result = broadcast.broadcast(pages_of(ids), b"{}", client, lambda _: None, retry=broadcast.Retry(), workers=4)
    assert (result.delivered, dict(result.retries)) == (20, {}), f"closed pooled connections cost no retry: {result}"
