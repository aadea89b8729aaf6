"""`sendmessage`: validation, the broadcast envelope, pagination, stale connections, retries and failures.

DynamoDB is moto; the callback API is `CallbackServer`, real HTTP answering as API Gateway does.
"""

from __future__ import annotations

import base64
import json
import random
import re
import time
from typing import TYPE_CHECKING, Any, cast

import pytest

from app import definition
from handlers import aws_facts, broadcast, clients, display_name, protocol, send_message
from handlers.connections import CONNECTION_TTL_SECONDS, ConnectionsTable
from handlers.history import HistoryTable
from handlers.room_service import RoomService
from handlers.rooms import JoinOutcome, Rooms
from tests.handlers.callback_server import FORBIDDEN, GONE, OK, SERVER_ERROR, THROTTLED, CallbackServer
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines, rows
from tests.handlers.dynamodb_faults import answer_error

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.usefixtures("frames_match_schemas")

SENDER = "L0SM9cOFvHcCIhw="
REQUEST_ID = "CEoGDHXXoAMFpMw="
SENT_AT = "2026-11-26T00:35:41.205Z"  # requestTimeEpoch 1795653341205 of tests/events/sendmessage.json
SENT_AT_MS = 1795653341205


class RecordedSleeps(list[float]):
    """A `Retry.sleep` that records the wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> RecordedSleeps:
    """The handler's retries, with backoff recorded instead of slept (random fixed at 1: the full bound)."""
    recorded = RecordedSleeps()
    monkeypatch.setattr(send_message, "RETRY", broadcast.Retry(sleep=recorded, random=lambda: 1.0))
    return recorded


def connected(
    table: ConnectionsTable, *connection_ids: str, name: str | None = None, ago_seconds: int = 0, room: str = "lobby"
) -> None:
    """Rows as `$connect` writes them, connected `ago_seconds` ago, members of `room`."""
    rooms = Rooms(table.dynamodb, table.name, "rooms-test")
    for connection_id in connection_ids:
        connection = table.add(connection_id, int((time.time() - ago_seconds) * 1000), name)
        assert rooms.join(connection, room, time.time() - ago_seconds) is JoinOutcome.JOINED


def service_for(dynamodb: DynamoDBClient, url: str, workers: int, page_size: int | None = None) -> RoomService:
    """The handler's collaborators, with a chosen pool size and Query page size."""
    rooms = Rooms(dynamodb, "connections-test", "rooms-test", page_size=page_size)
    return RoomService(rooms, clients.callback_api(url), broadcast.Retry(), workers=workers)


def message_event(body: str | None = None, **changes: Any) -> dict[str, Any]:
    """tests/events/sendmessage.json, with another body if given."""
    if body is not None:
        changes["body"] = body
    return load_event("sendmessage", **changes)


def chat(message: object) -> str:
    return json.dumps({"action": "sendmessage", "message": message})


def test_broadcast_reaches_every_connection_with_one_envelope(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    sleeps: RecordedSleeps,
) -> None:
    connected(table, SENDER, name="alice")
    others = [f"conn-{number:02d}=" for number in range(5)]
    connected(table, *others)

    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 200}

    everyone = [SENDER, *others]
    bodies = {connection_id: callback_server.received(connection_id) for connection_id in everyone}
    assert all(len(received) == 1 for received in bodies.values()), f"each connection gets one frame: {bodies}"
    assert len(set(map(bytes, (received[0] for received in bodies.values())))) == 1, "everyone gets the same frame"
    frame = json.loads(bodies[SENDER][0])
    assert frame == {
        "type": "message",
        "id": frame["id"],
        "message": "hello",
        "from": "alice",
        "connectionId": SENDER,
        "sentAt": SENT_AT,
        "room": "lobby",
        "seq": 1,
    }, "the envelope must be exactly the contract's: today's fields plus room and seq"
    assert re.fullmatch(r"[0-9a-f]{32}", frame["id"]), f"id must be a uuid4 in hex: {frame['id']}"
    posts = callback_server.posts
    assert all(post.authorization.startswith("AWS4-HMAC-SHA256 ") for post in posts), "posts must be SigV4-signed"
    assert all("/execute-api/aws4_request" in post.authorization for post in posts), "signed for execute-api"


def test_sender_without_display_name_is_named_by_connection_id(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER)
    send_message.handler(message_event(), lambda_context)
    (frame,) = callback_server.frames(SENDER)
    assert frame["from"] == SENDER, "without a display name, `from` is the sender's connection id"


def test_multibyte_message_at_the_limit_is_broadcast(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER)
    text = "é" * 8192  # 16384 UTF-8 bytes: exactly the default limit
    send_message.handler(message_event(chat(text)), lambda_context)
    (frame,) = callback_server.frames(SENDER)
    assert frame.get("message") == text, "a message of exactly MAX_MESSAGE_BYTES must be accepted intact"


def test_member_pages_are_all_followed(
    dynamodb: DynamoDBClient, table: ConnectionsTable, callback_server: CallbackServer
) -> None:
    audience = [f"page-{number:02d}=" for number in range(25)]
    connected(table, SENDER, *audience)
    queries: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.append("Query"))

    fields = send_message.send_message(
        message_event(),
        service_for(dynamodb, callback_server.url, workers=8, page_size=4),
        HistoryTable(dynamodb, "history-test"),
        16384,
    )

    assert len(queries) >= 7, f"26 members at 4 per page take at least 7 Query pages, saw {len(queries)}"
    missing = [cid for cid in [SENDER, *audience] if len(callback_server.received(cid)) != 1]
    assert not missing, f"every connection on every page gets exactly one frame; these did not: {missing}"
    assert fields["delivered"] == 26, f"the tally must count every delivery: {fields}"


def test_gone_connections_lose_exactly_their_rows(
    *,
    dynamodb: DynamoDBClient,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    sleeps: RecordedSleeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connected(table, SENDER, "live-1=", "live-2=")
    connected(table, "stale-1=", "stale-2=", ago_seconds=120)  # long past any `$connect`: gone for good
    callback_server.script("stale-1=", GONE)
    callback_server.script("stale-2=", GONE)

    send_message.handler(message_event(), lambda_context)

    assert set(rows(dynamodb)) == {SENDER, "live-1=", "live-2="}, "exactly the 410 connections' rows are deleted"
    members = Rooms(dynamodb, "connections-test", "rooms-test").members("lobby", time.time())[0]
    assert {member.connection_id for member in members} == {SENDER, "live-1=", "live-2="}, "and their memberships"
    (line,) = log_lines(capsys.readouterr().out)
    assert (line["delivered"], line["staleRemoved"], line["failed"]) == (3, 2, 0), f"tally: {line}"
    assert len(callback_server.received("stale-1=")) == 1, "a 410 is final: no retry"


def test_throttled_post_is_retried_with_jittered_backoff(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    sleeps: RecordedSleeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connected(table, SENDER, "busy=")
    callback_server.script("busy=", THROTTLED, THROTTLED, OK)

    send_message.handler(message_event(), lambda_context)

    assert len(callback_server.received("busy=")) == 3, "two 429s then 200: three posts"
    retry = broadcast.Retry()
    assert sleeps == [retry.base_seconds, 2 * retry.base_seconds], f"exponential backoff bounds, jittered: {sleeps}"
    (line,) = log_lines(capsys.readouterr().out)
    assert (line["delivered"], line["failed"]) == (2, 0), f"the retried post counts as delivered: {line}"


def test_failing_connections_do_not_stop_the_others(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    sleeps: RecordedSleeps,
    capsys: pytest.CaptureFixture[str],
) -> None:
    healthy = [f"ok-{number}=" for number in range(6)]
    connected(table, SENDER, "broken=", "forbidden=", *healthy)
    callback_server.script("broken=", SERVER_ERROR)
    callback_server.script("forbidden=", FORBIDDEN)

    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 200}

    assert all(len(callback_server.received(cid)) == 1 for cid in [SENDER, *healthy]), "the others all get it"
    assert len(callback_server.received("broken=")) == broadcast.Retry().attempts, "5xx is retried, then given up"
    assert len(callback_server.received("forbidden=")) == 1, "a 403 is not retried"
    (line,) = log_lines(capsys.readouterr().out)
    assert (line["delivered"], line["staleRemoved"], line["failed"]) == (7, 0, 2), f"tally: {line}"
    assert line["errors"] == {"InternalServerErrorException": 1, "ForbiddenException": 1}, f"by code: {line}"


def test_expired_rows_are_skipped(
    dynamodb: DynamoDBClient,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
) -> None:
    connected(table, SENDER, "fresh=")
    connected(table, "expired-1=", "expired-2=", ago_seconds=CONNECTION_TTL_SECONDS + 60)

    send_message.handler(message_event(), lambda_context)

    assert callback_server.received("expired-1=") == [] and callback_server.received("expired-2=") == [], (
        "rows whose ExpiresAt has passed must not be posted to"
    )
    assert len(callback_server.received("fresh=")) == 1, "live rows still get the frame"
    assert {"expired-1=", "expired-2="} <= set(rows(dynamodb)), "expired rows are left to TTL, not deleted"


def test_posts_run_concurrently_within_the_pool_bound(
    dynamodb: DynamoDBClient, table: ConnectionsTable, callback_server: CallbackServer
) -> None:
    connected(table, SENDER, *[f"fan-{number:02d}=" for number in range(20)])
    callback_server.hold_until_concurrent(6)

    fields = send_message.send_message(
        message_event(),
        service_for(dynamodb, callback_server.url, workers=6),
        HistoryTable(dynamodb, "history-test"),
        16384,
    )

    assert callback_server.peak_in_flight == 6, (
        f"6 workers must post 6 at a time, no more and no fewer; peak was {callback_server.peak_in_flight}"
    )
    assert fields["delivered"] == 21, f"all 21 connections must be reached: {fields}"


def test_log_line_has_the_counts_and_never_the_text(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connected(table, SENDER)
    secret_text = "the launch code is 0000"
    send_message.handler(message_event(chat(secret_text)), lambda_context)
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    expected = {"route": "sendmessage", "connectionId": SENDER, "delivered": 1, "staleRemoved": 0, "failed": 0}
    assert {key: line.get(key) for key in expected} == expected, f"the log line must carry the tally: {line}"
    assert isinstance(line["durationMs"], float | int), "the log line must carry the duration"
    assert secret_text not in output, "the message text must never be logged"


TOO_LARGE = "x" * 16385
BAD_INPUTS = {
    "missing-message": ('{"action": "sendmessage"}', False, "missing"),
    "blank-message": (chat(" \n\t "), False, "blank"),
    "empty-message": (chat(""), False, "blank"),
    "number-message": (chat(42), False, "must be a string, got a number"),
    "null-message": (chat(None), False, "must be a string, got null"),
    "array-message": (chat(["hi"]), False, "must be a string, got an array"),
    "too-large": (chat(TOO_LARGE), False, "16385 UTF-8 bytes"),
    "too-large-multibyte": (chat("€" * 5462), False, "16386 UTF-8 bytes"),
    "too-large-once-escaped": (chat('"' * 16384), False, "once encoded"),
    "extra-junk": ('{"action": "sendmessage", "message": "hi", "junk": 1}', False, '"junk"'),
    "bad-room": ('{"action": "sendmessage", "message": "hi", "room": "no spaces"}', False, "A-Z a-z 0-9 . _ -"),
    "not-a-member": ('{"action": "sendmessage", "message": "hi", "room": "ops"}', False, 'not a member of "ops"'),
    "not-json": ("hello", False, "not JSON"),
    "json-array": ('["sendmessage", "hi"]', False, "JSON object, got an array"),
    "huge-number": ('{"action": "sendmessage", "message": ' + "9" * 5000 + "}", False, "not JSON"),
    "lone-surrogate": ('{"action": "sendmessage", "message": "\\ud800"}', False, "not valid UTF-8"),
    "binary-not-utf8": (base64.b64encode(b"\xff\xfe\x00\x81").decode(), True, "binary"),
}


@pytest.mark.parametrize(("body", "base64_encoded", "explanation"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_gets_an_error_frame_to_the_sender_alone(
    *,
    dynamodb: DynamoDBClient,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    body: str,
    base64_encoded: bool,
    explanation: str,
) -> None:
    connected(table, SENDER, "bystander=")
    before = rows(dynamodb)

    response = send_message.handler(message_event(body, isBase64Encoded=base64_encoded), lambda_context)

    assert response == {"statusCode": 200}, "bad input is the client's problem, answered in a frame, not a 5xx"
    assert callback_server.received("bystander=") == [], "nothing may be broadcast"
    (frame,) = callback_server.frames(SENDER)
    assert frame == {
        "type": "error",
        "error": frame["error"],
        "expected": protocol.SEND_MESSAGE.expected(16384),
        "acceptedActions": frame["acceptedActions"],
        "requestId": REQUEST_ID,
    }, "the error frame must have exactly the contract's shape"
    assert sorted(cast("list[str]", frame["acceptedActions"])) == sorted(definition.ACTIONS), (
        "acceptedActions names every action route"
    )
    assert explanation in str(frame["error"]), f"the error must say what was wrong: {frame['error']!r}"
    assert rows(dynamodb) == before, "bad input must not change the table"
    log_text = capsys.readouterr().out
    (line,) = log_lines(log_text)
    assert re.fullmatch(r"[a-z0-9-]+", line["rejected"]), f"the log must give a reason code: {line}"
    assert "junk" not in log_text and "no spaces" not in log_text, "client text must never reach the log"


def test_configured_limit_is_applied(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_MESSAGE_BYTES", "10")
    connected(table, SENDER)
    send_message.handler(message_event(chat("eleven char")), lambda_context)
    (frame,) = callback_server.frames(SENDER)
    assert frame["type"] == "error" and "limit of 10" in str(frame["error"]), f"MAX_MESSAGE_BYTES=10 applies: {frame}"
    assert cast("dict[str, str]", frame["expected"])["message"] == "<non-blank text, at most 10 UTF-8 bytes>"


def test_malformed_limit_gives_500_naming_the_variable(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MAX_MESSAGE_BYTES", "16k")
    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 500}
    (line,) = log_lines(capsys.readouterr().out)
    assert "MAX_MESSAGE_BYTES" in line["detail"], f"the log must name the variable: {line}"
    assert callback_server.posts == [], "a misconfigured function must not post anything"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BROADCAST_MAX_POSTS_PER_SECOND", "lots"),
        ("BROADCAST_MAX_POSTS_PER_SECOND", "0"),
        ("MESSAGE_RATE_PER_SECOND", "-1"),
        ("MESSAGE_RATE_PER_SECOND", "inf"),
        ("MESSAGE_BURST", "2.5"),
    ],
)
def test_malformed_fan_out_settings_give_500_naming_the_variable(
    *,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    connected(table, SENDER)
    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 500}
    (line,) = log_lines(capsys.readouterr().out)
    assert variable in line["detail"], f"the log must name the variable: {line}"
    assert callback_server.posts == [], "a misconfigured function must not post anything"


def test_the_posts_per_second_cap_paces_the_broadcast(
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROADCAST_MAX_POSTS_PER_SECOND", "1234")
    pacers: list[broadcast.Pacer] = []

    class RecordedPacer(broadcast.Pacer):
        def reserve(self) -> float:
            if self not in pacers:
                pacers.append(self)
            return super().reserve()

    monkeypatch.setattr(broadcast, "Pacer", RecordedPacer)
    connected(table, SENDER, "other=")
    send_message.handler(message_event(), lambda_context)
    assert [pacer.ceiling for pacer in pacers] == [1234.0], "every post of the broadcast is paced at the set cap"


def test_dynamodb_failure_gives_500_and_a_log_line(
    dynamodb: DynamoDBClient,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connected(table, SENDER)
    attempts = answer_error(dynamodb, "UpdateItem", 500, "InternalServerError")  # the first call: the token
    secret_text = "nobody should read this"

    response = send_message.handler(message_event(chat(secret_text)), lambda_context)

    assert response == {"statusCode": 500}, "an unrecoverable DynamoDB error must answer 500"
    assert len(attempts) == 3, f"botocore's standard mode must have retried the 5xx, saw {len(attempts)} attempts"
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    assert line["error"] == "InternalServerError" and line["level"] == "ERROR", f"the log must name it: {line}"
    assert "Traceback" not in output and secret_text not in output, "no traceback, no message text in the log"
    assert callback_server.posts == [], "nothing is broadcast when the sender cannot be admitted"


def test_query_failure_gives_500(
    dynamodb: DynamoDBClient,
    table: ConnectionsTable,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
) -> None:
    connected(table, SENDER)
    answer_error(dynamodb, "Query", 400, "AccessDeniedException")
    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 500}


def test_clients_are_made_once_per_container(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER)
    send_message.handler(message_event(), lambda_context)
    first = (clients.dynamodb(), clients.callback_api(callback_server.url))
    send_message.handler(message_event(), lambda_context)
    assert (clients.dynamodb(), clients.callback_api(callback_server.url)) == first, "clients must be reused"
    options = vars(first[0].meta.config)  # the stubs do not declare Config's options as attributes
    assert options["retries"]["mode"] == "standard", "botocore retry mode must be standard"
    assert options["max_pool_connections"] == clients.POOL_CONNECTIONS, "pool connections must match the threads"


def counted_calls(dynamodb: DynamoDBClient) -> list[str]:
    """The name of every DynamoDB call the client sends from now on."""
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


def near_the_frame_limit(sender_name: str) -> str:
    """Quotes (2 bytes each once escaped) filling a frame from `sender_name` to within a byte of the limit."""
    limit = aws_facts.FRAME_LIMIT_BYTES - protocol.HISTORY_RESERVE_BYTES
    empty = protocol.message_frame("", sender_name, SENDER, SENT_AT_MS, seq=send_message.LARGEST_SEQ)
    return '"' * ((limit - len(empty)) // 2)


def test_an_accepted_message_takes_its_token_with_the_membership_check_and_stores_before_it_reads_the_room(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER, "listener=")
    calls = counted_calls(table.dynamodb)

    assert send_message.handler(message_event(), lambda_context) == {"statusCode": 200}

    assert calls == ["UpdateItem", "UpdateItem", "PutItem", "Query"], (
        "the token, written only for a member and answering with its row; the room's number; the history row; then "
        f"the members: a member who joins after that Query finds the message in history. Calls: {calls}"
    )
    assert len(callback_server.received("listener=")) == 1, "and the message reached the room"
    assert "RateTat" in rows(table.dynamodb)[SENDER], "the token was taken from the sender's bucket"


def test_a_message_a_long_name_could_push_past_the_frame_limit_reads_the_row_first(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER, name="alice")
    calls = counted_calls(table.dynamodb)
    text = near_the_frame_limit("alice")

    assert send_message.handler(message_event(chat(text)), lambda_context) == {"statusCode": 200}

    assert calls == ["GetItem", "UpdateItem", "UpdateItem", "PutItem", "Query"], f"row, token, number: {calls}"
    (frame,) = callback_server.frames(SENDER)
    assert frame["message"] == text and frame["from"] == "alice", "it fits alice's name, so it goes"


def test_a_message_too_large_for_the_senders_name_takes_no_token(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER, name="w" * 32)
    calls = counted_calls(table.dynamodb)

    send_message.handler(message_event(chat(near_the_frame_limit("alice"))), lambda_context)

    (error,) = callback_server.frames(SENDER)
    assert error["type"] == "error" and "bytes once encoded" in str(error["error"]), f"too large: {error}"
    assert calls == ["GetItem"] and "RateTat" not in rows(table.dynamodb)[SENDER], f"no token taken: {calls}"


def test_a_non_member_takes_no_token_and_gets_not_member(
    table: ConnectionsTable, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    connected(table, SENDER, room="elsewhere")
    calls = counted_calls(table.dynamodb)

    send_message.handler(message_event(), lambda_context)

    (error,) = callback_server.frames(SENDER)
    assert error["type"] == "error" and "not a member" in str(error["error"]), f"refused: {error}"
    assert calls == ["UpdateItem"] and "RateTat" not in rows(table.dynamodb)[SENDER], f"no token: {calls}"


def test_no_name_connect_accepts_encodes_longer_than_the_stand_in_the_size_check_uses() -> None:
    def encoded(name: str) -> int:
        return len(json.dumps(name, ensure_ascii=False).encode("utf-8"))

    alphabet = ['"', "\\", "a", " ", "é", "中", "\U0001f600", "\U0001d504", "\u0301", "\u00a0", "\u2028", "\x7f"]
    rng = random.Random(20261201)
    candidates = [char * display_name.MAX_DISPLAY_NAME_CHARS for char in alphabet]
    candidates += ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(3000)]
    accepted = [name for name in candidates if display_name.display_name_problem(name) is None]
    bound = encoded(send_message.LONGEST_NAME)
    assert max(map(encoded, accepted)) == bound, "32 four-byte characters are a storable name and the longest"
    assert len(accepted) > 100, f"the check must see many storable names, saw {len(accepted)}"
    assert all(encoded(display_name.normalize(name)) <= bound for name in accepted), "no storable name is longer"
