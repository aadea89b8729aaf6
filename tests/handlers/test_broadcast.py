"""`handlers.broadcast` on its own: retry classification and the tally when removals or posts break."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from botocore.exceptions import ClientError

from handlers import broadcast, clients
from tests.handlers.callback_server import GONE, OK, SERVER_ERROR, THROTTLED, Answer, CallbackServer

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient


@pytest.fixture
def callback_api(aws_credentials: None, callback_server: CallbackServer) -> ApiGatewayManagementApiClient:
    clients.callback_api.cache_clear()
    return clients.callback_api(callback_server.url)


def no_sleep(seconds: float) -> None:
    """A `Retry.sleep` that does not wait."""


@pytest.mark.parametrize(
    ("answers", "outcome", "posts"),
    [
        ((OK,), broadcast.DELIVERED, 1),
        ((GONE,), broadcast.GONE, 1),
        ((THROTTLED, OK), broadcast.DELIVERED, 2),
        ((SERVER_ERROR, SERVER_ERROR, OK), broadcast.DELIVERED, 3),
        ((Answer(502, "BadGatewayException"),), "BadGatewayException", 4),
        ((THROTTLED,), "LimitExceededException", 4),
        ((Answer(413, "PayloadTooLargeException"),), "PayloadTooLargeException", 1),
    ],
    ids=["200", "410", "429-then-200", "500-500-200", "502-always", "429-always", "413"],
)
def test_post_outcomes_and_attempts(
    callback_api: ApiGatewayManagementApiClient,
    callback_server: CallbackServer,
    answers: tuple[Answer, ...],
    outcome: str,
    posts: int,
) -> None:
    callback_server.script("target=", *answers)
    result = broadcast.post(callback_api, "target=", b"{}", broadcast.Retry(sleep=no_sleep))
    assert result == outcome, f"answers {answers} must end as {outcome}, got {result}"
    assert len(callback_server.received("target=")) == posts, f"answers {answers} must take {posts} posts"


def test_backoff_is_capped_and_full_jitter() -> None:
    waits: list[float] = []
    retry = broadcast.Retry(base_seconds=0.1, cap_seconds=0.3, sleep=waits.append, random=lambda: 0.5)
    for number in range(4):
        retry.pause(number)
    assert waits == [0.05, 0.1, 0.15, 0.15], f"half (the jitter) of min(cap, base * 2**n): {waits}"


def test_retry_needs_one_attempt_at_least() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        broadcast.Retry(attempts=0)


def test_failed_removal_and_bugs_are_counted_not_raised(
    callback_api: ApiGatewayManagementApiClient, callback_server: CallbackServer
) -> None:
    callback_server.script("gone-1=", GONE)
    callback_server.script("gone-2=", GONE)

    def remove(connection_id: str) -> None:
        if connection_id == "gone-1=":
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "DeleteItem")
        raise KeyError(connection_id)  # a bug in the collaborator

    result = broadcast.broadcast(
        [["ok-1=", "gone-1="], ["gone-2=", "ok-2="]], b"{}", callback_api, remove, retry=broadcast.Retry(), workers=2
    )

    assert (result.delivered, result.stale_removed, result.failed) == (2, 0, 2), f"tally: {result}"
    assert result.errors == {"RemoveFailed:ProvisionedThroughputExceededException": 1, "KeyError": 1}, result.errors


def test_scan_error_propagates_after_started_posts(
    callback_api: ApiGatewayManagementApiClient, callback_server: CallbackServer
) -> None:
    def pages() -> Iterator[list[str]]:
        yield ["first="]
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "Scan")

    with pytest.raises(ClientError):
        broadcast.broadcast(pages(), b"{}", callback_api, lambda _: None, retry=broadcast.Retry(), workers=2)
    assert len(callback_server.received("first=")) == 1, "posts from pages already read must still be sent"


def test_skipped_connections_get_nothing_and_are_not_counted(
    callback_api: ApiGatewayManagementApiClient, callback_server: CallbackServer
) -> None:
    result = broadcast.broadcast(
        [["sender=", "ok-1="], ["ok-2="]],
        b"{}",
        callback_api,
        lambda _: None,
        retry=broadcast.Retry(),
        workers=2,
        skip=frozenset({"sender="}),
    )
    assert callback_server.received("sender=") == [], "a skipped connection must not be posted to"
    assert [len(callback_server.received(cid)) for cid in ("ok-1=", "ok-2=")] == [1, 1], "the others get the frame"
    assert (result.delivered, result.stale_removed, result.failed) == (2, 0, 0), f"tally: {result}"
