"""`handlers.rate_limit`: the per-connection token bucket, alone, under concurrent invocations, and in `sendmessage`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from app.definition import CONNECTIONS_TABLE
from handlers import rate_limit, send_message
from handlers.connections import ConnectionsTable
from handlers.rate_limit import RateLimit, RateLimiter
from handlers.rooms import Rooms
from tests.handlers.callback_server import CallbackServer
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines, rows, with_connection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.usefixtures("frames_match_schemas")

SENDER = "L0SM9cOFvHcCIhw="
NOW_MS = 1_795_653_341_205.0


def counted_calls(dynamodb: DynamoDBClient, operation: str) -> list[str]:
    """Every `operation` call the client sends from now on."""
    calls: list[str] = []
    dynamodb.meta.events.register(f"before-call.dynamodb.{operation}", lambda **_: calls.append(operation))
    return calls


def counted_writes(dynamodb: DynamoDBClient) -> list[str]:
    """Every UpdateItem the client sends from now on."""
    return counted_calls(dynamodb, "UpdateItem")


@pytest.fixture
def limiter(dynamodb: DynamoDBClient, table: ConnectionsTable) -> RateLimiter:
    table.add(SENDER, int(NOW_MS), None)
    return RateLimiter(dynamodb, "connections-test", RateLimit(per_second=5, burst=10))


def test_the_key_is_the_tables() -> None:
    assert CONNECTIONS_TABLE.hash_key == rate_limit.HASH_KEY, "the limiter must key rows as the table does"


def test_a_burst_goes_then_the_rate_applies(limiter: RateLimiter, dynamodb: DynamoDBClient) -> None:
    writes = counted_writes(dynamodb)
    waits = [limiter.take(SENDER, NOW_MS) for _ in range(11)]
    assert waits[:10] == [0.0] * 10, f"a burst of 10 goes at once: {waits}"
    assert waits[10] == pytest.approx(0.2), f"the 11th waits one interval (1/5 s): {waits}"
    assert len(writes) == 11, f"one write per message, refused ones included: {len(writes)}"
    assert limiter.take(SENDER, NOW_MS + 200) == 0.0, "after one interval one more message goes"
    assert limiter.take(SENDER, NOW_MS + 200) > 0, "and only one"


def test_a_pause_refills_the_bucket_but_no_further(limiter: RateLimiter) -> None:
    for _ in range(10):
        limiter.take(SENDER, NOW_MS)
    later = NOW_MS + 3_600_000  # an hour idle is worth a burst, not 18,000 messages
    waits = [limiter.take(SENDER, later) for _ in range(11)]
    assert waits.count(0.0) == 10, f"after a pause exactly a burst goes: {waits}"


def test_connections_do_not_share_a_bucket(limiter: RateLimiter, table: ConnectionsTable) -> None:
    table.add("other=", int(NOW_MS), None)
    for _ in range(11):
        limiter.take(SENDER, NOW_MS)
    assert limiter.take("other=", NOW_MS) == 0.0, "one connection's flood must not limit another"


def test_a_connection_without_a_row_is_not_limited_and_gets_no_row(
    limiter: RateLimiter, dynamodb: DynamoDBClient
) -> None:
    writes = counted_writes(dynamodb)
    assert limiter.take("unknown=", NOW_MS) == 0.0
    assert "unknown=" not in rows(dynamodb) and writes == [], "no write, and no row made for a missing connection"


def waits_of_concurrent_invocations(take: Callable[[], float], invocations: int = 24) -> list[float]:
    """What each of `invocations` threads released at once got from `take`."""
    start = threading.Barrier(invocations)
    waits: list[float] = []
    lock = threading.Lock()

    def invocation() -> None:
        start.wait()
        wait = take()
        with lock:
            waits.append(wait)

    threads = [threading.Thread(target=invocation) for _ in range(invocations)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return waits


def test_the_limit_holds_under_concurrent_invocations(limiter: RateLimiter, dynamodb: DynamoDBClient) -> None:
    waits = waits_of_concurrent_invocations(lambda: limiter.take(SENDER, NOW_MS))
    assert waits.count(0.0) == 10, f"24 invocations at once for one connection: exactly the burst of 10 go: {waits}"


def test_a_bucket_read_with_the_connection_row_limits_as_the_limiters_own_read(
    limiter: RateLimiter, rooms: Rooms, dynamodb: DynamoDBClient
) -> None:
    reads = counted_calls(dynamodb, "GetItem")

    def message(now_ms: float) -> float:
        sender = rooms.connection(SENDER)  # what `sendmessage` reads anyway
        assert sender is not None
        return limiter.take_after_read(SENDER, sender.rate_tat, now_ms)

    waits = [message(NOW_MS) for _ in range(11)]
    assert waits[:10] == [0.0] * 10 and waits[10] == pytest.approx(0.2), f"a burst of 10, then the rate: {waits}"
    assert len(reads) == 11, f"one read per message, the row's own: {len(reads)}"
    later = NOW_MS + 3_600_000
    assert [message(later) for _ in range(11)].count(0.0) == 10, "a pause refills exactly a burst"


@pytest.mark.parametrize("read_after", [0, 1], ids=["before any message", "after one message"])
def test_a_stale_read_cannot_overspend_the_bucket(limiter: RateLimiter, rooms: Rooms, read_after: int) -> None:
    for _ in range(read_after):
        limiter.take(SENDER, NOW_MS)
    stale = rooms.connection(SENDER)
    assert stale is not None
    later = NOW_MS + 1_000  # the stale value is already in the past, so the limiter tries a restart from it
    for _ in range(10):
        limiter.take(SENDER, later)
    assert limiter.take_after_read(SENDER, stale.rate_tat, later) > 0, "other messages emptied the bucket meanwhile"


def test_a_row_gone_after_the_read_is_not_limited_and_not_made_again(
    limiter: RateLimiter, rooms: Rooms, table: ConnectionsTable, dynamodb: DynamoDBClient
) -> None:
    read = rooms.connection(SENDER)
    assert read is not None
    table.remove(SENDER)
    assert limiter.take_after_read(SENDER, read.rate_tat, NOW_MS) == 0.0
    assert SENDER not in rows(dynamodb), "the conditional writes must not make a row for a gone connection"


@pytest.fixture
def member(limiter: RateLimiter, rooms: Rooms) -> RateLimiter:
    """The limiter, with the sender a member of `lobby`."""
    sender = rooms.connection(SENDER)
    assert sender is not None
    rooms.join(sender, "lobby", NOW_MS / 1000)
    return limiter


def test_the_rooms_attribute_is_the_rows(member: RateLimiter, dynamodb: DynamoDBClient) -> None:
    assert rows(dynamodb)[SENDER][rate_limit.ROOMS_ATTRIBUTE] == ["lobby"], "the limiter must read rooms there"


def test_a_member_take_limits_as_take_and_answers_with_the_row(member: RateLimiter, dynamodb: DynamoDBClient) -> None:
    reads = counted_calls(dynamodb, "GetItem")
    takes = [member.take_as_member(SENDER, "lobby", NOW_MS) for _ in range(11)]
    assert [take.wait for take in takes[:10]] == [0.0] * 10, f"a burst of 10 goes at once: {takes}"
    assert takes[10].wait == pytest.approx(0.2) and takes[10].member, f"the 11th waits one interval: {takes[10]}"
    assert all(take.row is not None and take.row["ConnectionId"] == {"S": SENDER} for take in takes), (
        "the row comes back"
    )
    assert reads == [], "no read: the write checks the membership itself"
    later = NOW_MS + 3_600_000
    assert [member.take_as_member(SENDER, "lobby", later).wait for _ in range(11)].count(0.0) == 10, "a pause: a burst"


def test_a_member_take_refuses_other_rooms_and_gone_rows_without_a_token(
    member: RateLimiter, table: ConnectionsTable, dynamodb: DynamoDBClient
) -> None:
    elsewhere = member.take_as_member(SENDER, "elsewhere", NOW_MS)
    assert not elsewhere.member and elsewhere.row is not None and elsewhere.wait == 0.0, f"not a member: {elsewhere}"
    assert rate_limit.ATTRIBUTE not in rows(dynamodb)[SENDER], "a refused take leaves the bucket untouched"
    table.remove(SENDER)
    gone = member.take_as_member(SENDER, "lobby", NOW_MS)
    assert gone.row is None and not gone.member, f"no row: {gone}"
    assert SENDER not in rows(dynamodb), "the conditional write makes no row for a gone connection"


def test_a_member_take_holds_under_concurrent_invocations(member: RateLimiter) -> None:
    waits = waits_of_concurrent_invocations(lambda: member.take_as_member(SENDER, "lobby", NOW_MS).wait)
    assert waits.count(0.0) == 10, f"24 invocations at once for one connection: exactly the burst of 10 go: {waits}"


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimit(per_second=0, burst=10)
    with pytest.raises(ValueError, match="burst"):
        RateLimit(per_second=5, burst=0)


def test_a_flood_gets_an_error_frame_saying_when_to_retry_and_nobody_else_is_touched(
    *,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MESSAGE_RATE_PER_SECOND", "0.5")
    monkeypatch.setenv("MESSAGE_BURST", "2")
    now_ms = time.time() * 1000
    rooms = Rooms(table.dynamodb, table.name, "rooms-test")
    for connection_id in (SENDER, "listener=", "neighbour="):
        rooms.join(table.add(connection_id, int(now_ms), None), "lobby", now_ms / 1000)
    event = load_event("sendmessage")

    statuses = [send_message.handler(event, lambda_context)["statusCode"] for _ in range(3)]
    neighbour = send_message.handler(with_connection(event, "neighbour="), lambda_context)

    assert statuses == [200, 200, 200] and neighbour == {"statusCode": 200}, "a refusal is an answer, not a failure"
    listener: list[dict[str, Any]] = callback_server.frames("listener=")
    assert [frame["type"] for frame in listener] == ["message"] * 3, (
        f"the listener gets the 2 allowed messages and the neighbour's, nothing of the refusal: {listener}"
    )
    (error,) = [frame for frame in callback_server.frames(SENDER) if frame["type"] == "error"]
    assert "retry in" in str(error["error"]), f"the sender is told when to retry: {error}"
    assert isinstance(error["retryAfterMs"], int) and 0 < error["retryAfterMs"] <= 2000, f"when to retry: {error}"
    lines = log_lines(capsys.readouterr().out)
    assert lines[2]["rejected"] == "rate-limited" and lines[2]["delivered"] == 0, f"logged as refused: {lines[2]}"
