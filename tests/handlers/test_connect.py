"""`$connect` and `$disconnect`: the rows they write and delete, display names, the first room, presence, and
storage failures."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from app.definition import CONNECTIONS_TABLE
from handlers import connect, disconnect, display_name
from handlers.connections import CONNECTION_TTL_SECONDS
from tests.handlers.callback_server import CallbackServer
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines, rows, with_connection
from tests.handlers.dynamodb_faults import answer_error, unreachable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.usefixtures("frames_match_schemas")

CONNECTION_ID = "L0SM9cOFvHcCIhw="
CONNECTED_AT_MS = 1795653305123


@pytest.fixture(autouse=True)
def callback(callback_server: CallbackServer) -> CallbackServer:
    """Every test here has the callback API: `$connect` and `$disconnect` post presence to the room's members."""
    return callback_server


def connect_event_named(name: str, room: str | None = None) -> dict[str, Any]:
    """The `$connect` event of `ws://.../dev?name=<name>` (and `&room=<room>`)."""
    query = {"name": name} if room is None else {"name": name, "room": room}
    return load_event(
        "connect",
        queryStringParameters=query,
        multiValueQueryStringParameters={key: [value] for key, value in query.items()},
    )


def members(dynamodb: DynamoDBClient, room: str) -> set[str]:
    """The connection ids with a member row in `room`."""
    items = dynamodb.query(
        TableName="rooms-test",
        KeyConditionExpression="Room = :room AND begins_with(Entry, :member)",
        ExpressionAttributeValues={":room": {"S": room}, ":member": {"S": "member#"}},
    )["Items"]
    return {item["ConnectionId"]["S"] for item in items}


def test_connect_then_disconnect_round_trip(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    response = connect.handler(load_event("connect_with_name"), lambda_context)
    assert response == {"statusCode": 200}, "a valid $connect must accept the handshake"
    stored = rows(dynamodb)
    assert stored == {
        CONNECTION_ID: {
            CONNECTIONS_TABLE.hash_key: CONNECTION_ID,
            "ConnectedAt": str(CONNECTED_AT_MS),
            CONNECTIONS_TABLE.ttl_attribute: str(CONNECTED_AT_MS // 1000 + CONNECTION_TTL_SECONDS),
            "DisplayName": "alice",
            "Verified": False,
            "Rooms": ["lobby"],
        }
    }, "connect must store exactly the contract's attributes"
    assert members(dynamodb, "lobby") == {CONNECTION_ID}, "without ?room= the connection is in the lobby"

    assert disconnect.handler(load_event("disconnect"), lambda_context) == {"statusCode": 200}
    assert rows(dynamodb) == {}, "disconnect must delete the connection's row"
    assert members(dynamodb, "lobby") == set(), "and its memberships"


def test_expiry_is_past_api_gateways_two_hour_limit() -> None:
    assert 2 * 60 * 60 < CONNECTION_TTL_SECONDS <= 3 * 60 * 60, "rows must outlive a 2-hour connection, not by days"


def test_connect_without_query_string_stores_no_display_name(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("connect")
    assert "queryStringParameters" not in event, "the fixture must be a $connect with no query string"
    assert connect.handler(event, lambda_context) == {"statusCode": 200}
    assert "DisplayName" not in rows(dynamodb)[CONNECTION_ID], "no name given, so no DisplayName attribute"


def test_empty_name_parameter_counts_as_no_name(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    event = connect_event_named("")
    assert connect.handler(event, lambda_context) == {"statusCode": 200}
    assert "DisplayName" not in rows(dynamodb)[CONNECTION_ID], "an empty ?name= must not store an empty name"


def test_authorizer_name_wins_over_query_string(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    event = load_event("connect_with_authorizer")
    assert event["queryStringParameters"]["name"] == "mallory", "the fixture must also ask for another name"
    assert connect.handler(event, lambda_context) == {"statusCode": 200}
    assert rows(dynamodb)[CONNECTION_ID]["DisplayName"] == "alice", "the authorizer's verified name must win"
    assert rows(dynamodb)[CONNECTION_ID]["Verified"] is True, "a name from a token is marked verified"


def test_connect_log_line_carries_no_query_string(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("connect_with_authorizer")
    connect.handler(event, lambda_context)
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    assert line["route"] == "$connect" and line["connectionId"] == CONNECTION_ID and line["status"] == 200
    assert event["queryStringParameters"]["token"] not in output, "the token must never reach the log"


@pytest.mark.parametrize(
    "name",
    ["a" * 32, "Zoë 🎉", "Ada Lovelace", "Nguyễn", "Алиса"],
    ids=["32-characters", "non-ascii", "inner-space", "two-marks", "all-cyrillic"],
)
def test_acceptable_display_names_are_stored(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, name: str
) -> None:
    event = connect_event_named(name)
    assert connect.handler(event, lambda_context) == {"statusCode": 200}, f"{name!r} is a valid display name"
    assert rows(dynamodb)[CONNECTION_ID]["DisplayName"] == name, "the name must be stored as given (it is NFKC)"


def test_names_are_stored_in_nfkc(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    assert connect.handler(connect_event_named("\uff41\uff4c\uff49\uff43\uff45"), lambda_context) == {"statusCode": 200}
    assert rows(dynamodb)[CONNECTION_ID]["DisplayName"] == "alice", "fullwidth letters are stored as ASCII"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("a" * 33, "at most 32"),
        ("   ", "blank"),
        ("bell\x07", "printable"),
        ("tab\tname", "printable"),
        ("zero\u200bwidth", "printable"),
        (" alice", "whitespace"),
        ("\u3164", "invisible"),
        ("bob\u2800", "invisible"),
        ("\uffa0x", "invisible"),
        ("e\u0301\u0301\u0301\u0301", "combining marks"),
        ("\u0430lice", "mix"),
        ("alice (you)", "(you)"),
        ("alice\uff08you\uff09", "(you)"),
        ("Zx9SM9cOFvHcCIhw=", "connection id"),
    ],
    ids=[
        "33-characters",
        "blank",
        "control-character",
        "tab",
        "zero-width-space",
        "leading-space",
        "hangul-filler",
        "braille-blank",
        "halfwidth-filler",
        "stacked-marks",
        "cyrillic-a-in-latin",
        "you-suffix",
        "fullwidth-you-suffix",
        "connection-id-shape",
    ],
)
def test_unacceptable_display_name_refuses_handshake(
    dynamodb: DynamoDBClient,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    name: str,
    reason: str,
) -> None:
    event = connect_event_named(name)
    assert display_name.display_name_problem(name) is not None
    assert reason in str(display_name.display_name_problem(name)), f"the rule must say why {name!r} is refused"
    assert connect.handler(event, lambda_context) == {"statusCode": 400}, f"{name!r} must be refused with 400"
    assert rows(dynamodb) == {}, "a refused handshake must leave no row"
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    assert line["reason"] == "bad-display-name", f"the log line must give the reason code: {line}"
    assert name.strip() not in output or not name.strip(), "the refused name itself must not be logged"


def test_storage_failure_refuses_handshake_after_retries(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    attempts = unreachable(dynamodb, "PutItem")
    response = connect.handler(load_event("connect_with_name"), lambda_context)
    assert response == {"statusCode": 500}, "a storage failure must refuse the handshake"
    assert len(attempts) == 3, f"botocore's standard mode must retry (3 attempts in all), saw {len(attempts)}"
    assert rows(dynamodb) == {}, "a failed connect must leave no row behind"
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    assert line["error"] == "EndpointConnectionError" and line["level"] == "ERROR", f"log must name the error: {line}"
    assert "Traceback" not in output and "alice" not in output, "no traceback, nothing from the event"


def test_unrecoverable_error_is_not_retried(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    dynamodb.delete_table(TableName="connections-test")
    response = connect.handler(load_event("connect"), lambda_context)
    assert response == {"statusCode": 500}, "a missing table must give 500, not an unhandled exception"


def test_missing_table_name_gives_500_naming_the_variable(
    dynamodb: DynamoDBClient,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TABLE_NAME")
    assert connect.handler(load_event("connect"), lambda_context) == {"statusCode": 500}
    (line,) = log_lines(capsys.readouterr().out)
    assert line["error"] == "ConfigurationError" and "TABLE_NAME" in line["detail"], f"must name the variable: {line}"


def test_disconnect_is_idempotent(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    connect.handler(load_event("connect"), lambda_context)
    event = load_event("disconnect")
    assert disconnect.handler(event, lambda_context) == {"statusCode": 200}
    assert disconnect.handler(event, lambda_context) == {"statusCode": 200}, "a second disconnect must succeed too"
    assert rows(dynamodb) == {}


def test_disconnect_deletes_only_its_own_row(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    connect.handler(load_event("connect"), lambda_context)
    other = load_event("connect")
    other["requestContext"]["connectionId"] = "OtherConnId="
    connect.handler(other, lambda_context)
    disconnect.handler(load_event("disconnect"), lambda_context)
    assert set(rows(dynamodb)) == {"OtherConnId="}, "disconnect must leave other connections alone"


def test_disconnect_storage_failure_gives_500(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    answer_error(dynamodb, "DeleteItem", 400, "ValidationException")
    assert disconnect.handler(load_event("disconnect"), lambda_context) == {"statusCode": 500}
    (line,) = log_lines(capsys.readouterr().out)
    assert line["error"] == "ValidationException", f"the log line must name the error: {line}"


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("websocket-chat, bearer.a.b.c", {"headers": {"Sec-WebSocket-Protocol": "websocket-chat"}}),
        ("bearer.a.b.c,websocket-chat", {"headers": {"Sec-WebSocket-Protocol": "websocket-chat"}}),
        ("graphql-ws", {}),
        (None, {}),
    ],
    ids=["chat-and-token", "token-first", "foreign-protocol", "none"],
)
def test_connect_selects_the_chat_subprotocol_never_the_token(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, offered: str | None, answered: dict[str, Any]
) -> None:
    event = load_event("connect")
    if offered is not None:
        event["headers"]["Sec-WebSocket-Protocol"] = offered
    response = connect.handler(event, lambda_context)
    assert response == {"statusCode": 200, **answered}, f"offered {offered!r}, $connect answered {response}"


def test_room_parameter_picks_the_first_room(dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext) -> None:
    assert connect.handler(connect_event_named("alice", room="ops"), lambda_context) == {"statusCode": 200}
    assert members(dynamodb, "ops") == {CONNECTION_ID} and members(dynamodb, "lobby") == set()


def test_bad_room_parameter_refuses_the_handshake(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect.handler(connect_event_named("alice", room="no such/room"), lambda_context) == {"statusCode": 400}
    assert rows(dynamodb) == {}, "a refused handshake leaves no row"
    (line,) = log_lines(capsys.readouterr().out)
    assert line["reason"] == "bad-room", f"the log gives the code: {line}"


def test_a_name_held_in_the_room_refuses_the_second_with_409(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect.handler(connect_event_named("alice"), lambda_context) == {"statusCode": 200}
    second = with_connection(connect_event_named("ALICE"), "Second=")
    assert connect.handler(second, lambda_context) == {"statusCode": 409}, "the name is taken in the lobby"
    assert set(rows(dynamodb)) == {CONNECTION_ID}, "the refused connection leaves no row"
    elsewhere = with_connection(connect_event_named("alice", room="ops"), "Third=")
    assert connect.handler(elsewhere, lambda_context) == {"statusCode": 200}, "another room is fine"
    lines = log_lines(capsys.readouterr().out)
    assert lines[1]["reason"] == "name-taken", f"the log gives the code: {lines[1]}"


def test_members_hear_of_a_newcomer_and_of_its_abrupt_departure(
    dynamodb: DynamoDBClient, lambda_context: FakeLambdaContext, callback: CallbackServer
) -> None:
    bob, alice = with_connection(connect_event_named("bob"), "Bob="), connect_event_named("alice")
    for event in (bob, alice):
        event["requestContext"]["connectedAt"] = int(time.time() * 1000)  # live now, not when the fixture was taken
    connect.handler(bob, lambda_context)
    connect.handler(alice, lambda_context)
    (joined,) = callback.frames("Bob=")
    assert joined == {
        "type": "presence",
        "room": "lobby",
        "event": "joined",
        "name": "alice",
        "connectionId": CONNECTION_ID,
    }, "the other members get a presence joined"
    assert callback.received(CONNECTION_ID) == [], "$connect cannot post to the connection it is opening"

    abrupt = load_event("disconnect")
    abrupt["requestContext"]["disconnectStatusCode"] = 1006
    assert disconnect.handler(abrupt, lambda_context) == {"statusCode": 200}
    assert callback.frames("Bob=")[-1] == {
        "type": "presence",
        "room": "lobby",
        "event": "left",
        "name": "alice",
        "connectionId": CONNECTION_ID,
    }, "an abrupt disconnect is a presence left too"
