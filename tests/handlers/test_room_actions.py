"""The room actions through their handlers: join, leave, sendmessage in a room, who, history, whisper, publish.

DynamoDB is moto, the callback API the local `CallbackServer`; every frame posted is checked against `schemas/`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from app import definition
from app.definition import TABLES
from handlers import (
    broadcast,
    clients,
    connect,
    disconnect,
    environment,
    join_room,
    leave_room,
    list_members,
    publish,
    read_history,
    room_frames,
    room_service,
    send_message,
    whisper,
)
from handlers.callback_client import CallbackClient
from handlers.history import HistoryTable
from handlers.room_service import RoomService
from handlers.rooms import Rooms
from tests.handlers.callback_server import GONE, CallbackServer
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines, rows

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

pytestmark = pytest.mark.usefixtures("frames_match_schemas", "dynamodb")

ROUTES = {
    "join": join_room,
    "leave": leave_room,
    "who": list_members,
    "history": read_history,
    "whisper": whisper,
    "sendmessage": send_message,
}


def now_ms() -> int:
    return int(time.time() * 1000)


def arrive(name: str | None, connection_id: str, room: str | None = None, *, token: bool = False) -> int:
    """`$connect` as `?name=<name>&room=<room>` (or with a token's name), now; returns the status."""
    query = {key: value for key, value in (("name", name), ("room", room)) if value is not None}
    event = load_event("connect", queryStringParameters=query or None)
    if not query:
        del event["queryStringParameters"]
    event["requestContext"].update(connectionId=connection_id, connectedAt=now_ms())
    if token:
        event["requestContext"]["authorizer"] = {"name": name, "principalId": name}
    return int(connect.handler(event, FakeLambdaContext())["statusCode"])


def act(connection_id: str, **body: Any) -> int:
    """Send one action's JSON from `connection_id` through its route's handler; returns the status."""
    route = str(body["action"])
    event = load_event(route, body=json.dumps(body))
    event["requestContext"].update(connectionId=connection_id, requestTimeEpoch=now_ms())
    return int(ROUTES[route].handler(event, FakeLambdaContext())["statusCode"])


def last(server: CallbackServer, connection_id: str) -> dict[str, Any]:
    frames = server.frames(connection_id)
    assert frames, f"{connection_id} received nothing"
    return frames[-1]


def of_type(server: CallbackServer, connection_id: str, kind: str) -> list[dict[str, Any]]:
    return [frame for frame in server.frames(connection_id) if frame.get("type") == kind]


def test_join_answers_with_own_id_members_and_history_and_tells_the_others(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    act("Alice=", action="sendmessage", room="ops", message="before bob came")
    arrive("bob", "Bob=")
    assert act("Bob=", action="join", room="ops") == 200
    joined = last(callback_server, "Bob=")
    assert joined["type"] == "joined" and joined["room"] == "ops"
    assert (joined["connectionId"], joined["name"]) == ("Bob=", "bob"), "the joiner learns its own id and name"
    assert joined["members"] == [
        {"name": "alice", "connectionId": "Alice="},
        {"name": "bob", "connectionId": "Bob="},
    ]
    assert [message["message"] for message in joined["history"]] == ["before bob came"], "history on join"
    assert last(callback_server, "Alice=") == {
        "type": "presence",
        "room": "ops",
        "event": "joined",
        "name": "bob",
        "connectionId": "Bob=",
    }


def test_a_second_join_is_harmless(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    presence_before = len(of_type(callback_server, "Alice=", "presence"))
    act("Bob=", action="join", room="ops")
    act("Bob=", action="join", room="ops")
    assert len(of_type(callback_server, "Bob=", "joined")) == 2, "each join is answered"
    assert len(of_type(callback_server, "Alice=", "presence")) == presence_before, "no second presence event"


def test_a_connection_joined_through_the_query_string_learns_its_id_by_joining(
    callback_server: CallbackServer,
) -> None:
    arrive("alice", "Alice=", "ops")
    assert callback_server.received("Alice=") == [], "$connect cannot post to the new connection"
    act("Alice=", action="join", room="ops")
    assert last(callback_server, "Alice=")["connectionId"] == "Alice="


def test_leave_answers_left_and_tells_the_others(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    assert act("Bob=", action="leave", room="ops") == 200
    assert last(callback_server, "Bob=") == {"type": "left", "room": "ops"}
    assert last(callback_server, "Alice=")["event"] == "left"
    act("Alice=", action="sendmessage", room="ops", message="still here?")
    assert of_type(callback_server, "Bob=", "message") == [], "a leaver gets the room's messages no more"


def test_messages_reach_only_the_rooms_members_numbered_per_room(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    arrive("carol", "Carol=")
    act("Alice=", action="sendmessage", room="ops", message="one")
    act("Bob=", action="sendmessage", room="ops", message="two")
    act("Carol=", action="sendmessage", message="in the lobby")
    ops = of_type(callback_server, "Alice=", "message")
    assert [(frame["message"], frame["seq"], frame["room"]) for frame in ops] == [("one", 1, "ops"), ("two", 2, "ops")]
    assert [frame["message"] for frame in of_type(callback_server, "Carol=", "message")] == ["in the lobby"]
    assert of_type(callback_server, "Carol=", "message")[0]["seq"] == 1, "each room counts on its own"


def test_the_seeds_plain_sendmessage_still_goes_to_the_lobby(callback_server: CallbackServer) -> None:
    arrive(None, "Plain=")
    arrive("bob", "Bob=")
    assert act("Plain=", action="sendmessage", message="hi") == 200
    (frame,) = of_type(callback_server, "Bob=", "message")
    assert (frame["from"], frame["room"], frame["message"]) == ("Plain=", "lobby", "hi")


def test_a_non_member_gets_an_error_and_nothing_is_sent_or_numbered(
    callback_server: CallbackServer, dynamodb: DynamoDBClient
) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=")
    act("Bob=", action="sendmessage", room="ops", message="let me in")
    error = last(callback_server, "Bob=")
    assert error["type"] == "error" and 'not a member of "ops"' in error["error"]
    assert of_type(callback_server, "Alice=", "message") == []
    act("Alice=", action="sendmessage", room="ops", message="first")
    assert of_type(callback_server, "Alice=", "message")[0]["seq"] == 1, "a refused message takes no number"


def test_concurrent_sends_keep_seq_strictly_increasing(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    senders = [f"S{number}=" for number in range(4)]
    for sender in senders:
        arrive(f"sender{sender[1]}", sender, "ops")

    credentials = boto3.Session().get_credentials()
    assert credentials is not None

    def send(sender: str) -> None:
        # Each thread is its own container: its own callback client (one event loop each), as Lambda runs them.
        service = RoomService(
            Rooms(clients.dynamodb(), "connections-test", "rooms-test"),
            CallbackClient(callback_server.url, "us-east-1", credentials),
            broadcast.Retry(),
        )
        for number in range(3):
            body = {"action": "sendmessage", "room": "ops", "message": f"{sender} {number}"}
            event = load_event("sendmessage", body=json.dumps(body))
            event["requestContext"].update(connectionId=sender, requestTimeEpoch=now_ms())
            send_message.send_message(event, service, HistoryTable(clients.dynamodb(), "history-test"), 16384)

    threads = [threading.Thread(target=send, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seqs = sorted(frame["seq"] for frame in of_type(callback_server, "Alice=", "message"))
    assert seqs == list(range(1, 13)), f"12 concurrent sends take 1..12, each once: {seqs}"
    per_sender = {
        sender: [frame["seq"] for frame in of_type(callback_server, "Alice=", "message") if frame["from"] == sender]
        for sender in (f"sender{sender[1]}" for sender in senders)
    }
    assert all(seq == sorted(seq) for seq in per_sender.values()), f"one sender's messages ascend: {per_sender}"


def test_who_lists_members_to_members_only(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=")
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=") == {
        "type": "members",
        "room": "ops",
        "members": [{"name": "alice", "connectionId": "Alice="}],
        "truncated": False,
        "presence": True,
    }
    act("Bob=", action="who", room="ops")
    assert last(callback_server, "Bob=")["type"] == "error", "who is for members"


def test_history_pages_back_oldest_first(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    for number in range(1, 8):
        act("Alice=", action="sendmessage", room="ops", message=f"m{number}")
    act("Alice=", action="history", room="ops", limit=3)
    page = last(callback_server, "Alice=")
    assert page["type"] == "history" and [m["seq"] for m in page["messages"]] == [5, 6, 7]
    act("Alice=", action="history", room="ops", before=5, limit=3)
    assert [m["seq"] for m in last(callback_server, "Alice=")["messages"]] == [2, 3, 4]
    act("Alice=", action="history", room="ops", before=2)
    assert [m["message"] for m in last(callback_server, "Alice=")["messages"]] == ["m1"]
    sent = of_type(callback_server, "Alice=", "message")
    assert page["messages"][-1]["id"] == sent[-1]["id"], "history replays the same envelope, so ids deduplicate"


def test_history_in_a_frame_keeps_the_newest_that_fit(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    for number in range(4):
        act("Alice=", action="sendmessage", room="ops", message=f"{number}" + "x" * 12000)
    act("Alice=", action="history", room="ops")
    page = last(callback_server, "Alice=")
    assert [m["seq"] for m in page["messages"]] == [3, 4], "two 12 KB messages fit a 32 KB frame, the newest two"


def test_history_is_for_members(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=")
    act("Bob=", action="history", room="ops")
    assert last(callback_server, "Bob=")["type"] == "error"


def test_whisper_reaches_every_connection_of_the_name_and_echoes(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob1=", "dev", token=True)
    arrive("bob", "Bob2=", token=True)
    arrive("carol", "Carol=")
    assert act("Alice=", action="whisper", to="bob", message="psst") == 200
    for connection_id in ("Bob1=", "Bob2=", "Alice="):
        frame = last(callback_server, connection_id)
        assert frame["type"] == "whisper" and frame["to"] == "bob" and frame["from"] == "alice", connection_id
    assert callback_server.frames("Carol=") == [], "nobody else sees a whisper"


def test_whisper_to_a_look_alike_does_not_reach_the_real_name(callback_server: CallbackServer) -> None:
    arrive("ace", "Ace=")
    arrive("mallory", "Mallory=")
    act("Mallory=", action="whisper", to="\u0430\u0441\u0435", message="psst")
    assert last(callback_server, "Mallory=")["type"] == "error"
    assert of_type(callback_server, "Ace=", "whisper") == [], "a look-alike name is another name"


def test_whisper_to_an_unknown_name_is_an_error(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=")
    act("Alice=", action="whisper", to="nobody", message="psst")
    error = last(callback_server, "Alice=")
    assert error["type"] == "error" and "nobody" in error["error"] and error["expected"]["action"] == "whisper"


BAD_REQUESTS = {
    "join-no-room": ({"action": "join"}, "missing"),
    "join-bad-room": ({"action": "join", "room": "a b"}, "A-Z a-z 0-9 . _ -"),
    "join-long-room": ({"action": "join", "room": "x" * 65}, "1 to 64"),
    "join-extra": ({"action": "join", "room": "ops", "x": 1}, "unexpected"),
    "leave-not-member": ({"action": "leave", "room": "ops"}, "not a member"),
    "who-no-room": ({"action": "who"}, "missing"),
    "history-bad-before": ({"action": "history", "room": "lobby", "before": "x"}, '"before" must be a whole number'),
    "history-bad-limit": ({"action": "history", "room": "lobby", "limit": 0}, '"limit" must be a whole number'),
    "whisper-no-to": ({"action": "whisper", "message": "hi"}, '"to" field is missing'),
    "whisper-blank": ({"action": "whisper", "to": "bob", "message": " "}, "blank"),
}


@pytest.mark.parametrize(("body", "explanation"), BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_get_an_error_frame_naming_the_problem_and_the_shape(
    callback_server: CallbackServer, capsys: pytest.CaptureFixture[str], body: dict[str, Any], explanation: str
) -> None:
    arrive("alice", "Alice=")
    arrive("bob", "Bob=")
    capsys.readouterr()
    assert act("Alice=", **body) == 200, "a bad request is answered in a frame, not a 5xx"
    error = last(callback_server, "Alice=")
    assert error["type"] == "error" and explanation in error["error"], f"{error['error']!r}"
    assert error["expected"]["action"] == body["action"], "the error shows the shape the action expects"
    assert callback_server.frames("Bob=") == [], "nobody else hears of it"
    (line,) = log_lines(capsys.readouterr().out)
    assert line["rejected"].replace("-", "").isalnum(), f"the log carries a reason code only: {line}"


def test_too_many_rooms(callback_server: CallbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_ROOMS", "2")
    arrive("alice", "Alice=")
    act("Alice=", action="join", room="two")
    act("Alice=", action="join", room="three")
    error = last(callback_server, "Alice=")
    assert error["type"] == "error" and "2 rooms" in error["error"]


def test_a_taken_name_is_refused_on_join(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("alice", "Alice2=")
    act("Alice2=", action="join", room="ops")
    error = last(callback_server, "Alice2=")
    assert error["type"] == "error" and "holds the name" in error["error"]


def test_disconnect_is_a_left_in_every_room(callback_server: CallbackServer, dynamodb: DynamoDBClient) -> None:
    arrive("alice", "Alice=", "ops")
    act("Alice=", action="join", room="dev")
    arrive("bob", "Bob=", "ops")
    act("Bob=", action="join", room="dev")
    event = load_event("disconnect")
    event["requestContext"]["connectionId"] = "Bob="
    disconnect.handler(event, FakeLambdaContext())
    left = [(frame["room"], frame["event"]) for frame in of_type(callback_server, "Alice=", "presence")]
    assert ("ops", "left") in left and ("dev", "left") in left
    assert set(rows(dynamodb)) == {"Alice="}


def test_a_sender_gone_mid_broadcast_corrupts_nothing(
    callback_server: CallbackServer, dynamodb: DynamoDBClient
) -> None:
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    callback_server.script("Alice=", GONE)  # alice's socket closed while her own message went out
    act("Alice=", action="sendmessage", room="ops", message="bye")
    event = load_event("disconnect")
    event["requestContext"]["connectionId"] = "Alice="
    assert disconnect.handler(event, FakeLambdaContext()) == {"statusCode": 200}, "the late disconnect is harmless"
    assert [frame["message"] for frame in of_type(callback_server, "Bob=", "message")] == ["bye"]
    assert set(rows(dynamodb)) == {"Bob="}
    act("Bob=", action="who", room="ops")
    assert last(callback_server, "Bob=")["members"] == [{"name": "bob", "connectionId": "Bob="}]
    act("Bob=", action="sendmessage", room="ops", message="next")
    assert of_type(callback_server, "Bob=", "message")[-1]["seq"] == 2, "the room's counter carries on"


def test_publish_posts_into_a_room_for_a_backend(callback_server: CallbackServer) -> None:
    arrive("alice", "Alice=", "ops")
    answer = publish.handler({"room": "ops", "message": "release 1.4 is out", "from": "deploy-bot"}, None)
    assert answer["ok"] is True and answer["seq"] == 1 and answer["delivered"] == 1
    frame = last(callback_server, "Alice=")
    assert frame["from"] == "deploy-bot" and frame["published"] is True and "connectionId" not in frame


@pytest.mark.parametrize(
    ("event", "code"),
    [
        ({"room": "ops", "message": "hi"}, "bad-display-name"),
        ({"room": "a b", "message": "hi", "from": "bot"}, "bad-room"),
        ({"room": "ops", "message": "", "from": "bot"}, "blank"),
        ({"room": "ops", "message": "hi", "from": "bot", "extra": 1}, "unexpected-field"),
        (["not", "an", "object"], "not-object"),
    ],
)
def test_publish_refuses_bad_events(callback_server: CallbackServer, event: Any, code: str) -> None:
    answer = publish.handler(event, None)
    assert answer["ok"] is False and answer["code"] == code and answer["error"], answer
    assert callback_server.posts == []


def presence_seen(server: CallbackServer, connection_id: str) -> list[tuple[str, str]]:
    """The presence events `connection_id` received, as (event, name)."""
    return [(frame["event"], frame["name"]) for frame in of_type(server, connection_id, "presence")]


def test_presence_stops_above_the_cap_and_the_room_is_told_once(
    callback_server: CallbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "3")
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    arrive("carol", "Carol=", "ops")  # the room's 3rd member: a room of the cap is announced
    assert presence_seen(callback_server, "Alice=") == [("joined", "bob"), ("joined", "carol")]
    act("Carol=", action="join", room="ops")
    assert last(callback_server, "Carol=")["presence"] is True, "a room of 3 announces its joins"
    arrive("dave", "Dave=")
    act("Dave=", action="join", room="ops")  # the 4th: no presence, and the others learn it stops
    assert last(callback_server, "Dave=")["presence"] is False, "the joiner is told the room is too big"
    for member in ("Alice=", "Bob=", "Carol="):
        assert ("joined", "dave") not in presence_seen(callback_server, member), f"{member} must not hear of dave"
        assert of_type(callback_server, member, "presence-off") == [
            {"type": "presence-off", "room": "ops", "maxMembers": 3}
        ], f"{member} must be told once that presence is off"
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=")["presence"] is False, "who says a room of 4 has no presence"
    arrive("erin", "Erin=", "ops")
    act("Dave=", action="leave", room="ops")  # from a room of 5, then 4: neither is announced
    act("Erin=", action="leave", room="ops")
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=")["presence"] is True, "who says a room back at 3 is live again"
    for member in ("Alice=", "Bob=", "Carol="):
        heard = presence_seen(callback_server, member)
        assert ("left", "dave") not in heard and ("left", "erin") not in heard, f"{member} heard a big room's leave"
        assert len(of_type(callback_server, member, "presence-off")) == 1, "told once, not at every join"
    act("Carol=", action="leave", room="ops")  # from a room of 3: announced again
    assert presence_seen(callback_server, "Alice=")[-1] == ("left", "carol")


def test_a_disconnect_from_a_big_room_is_not_announced(
    callback_server: CallbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_in_ops_past_a_cap_of_two(monkeypatch)
    act("Bob=", action="join", room="small")
    arrive("dave", "Dave=", "small")
    event = load_event("disconnect")
    event["requestContext"]["connectionId"] = "Bob="
    disconnect.handler(event, FakeLambdaContext())
    assert ("left", "bob") not in presence_seen(callback_server, "Alice="), "a room of 3 hears of no leave"
    assert presence_seen(callback_server, "Dave=")[-1] == ("left", "bob"), "a room of 2 does"


def test_presence_can_be_switched_off(callback_server: CallbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "0")
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    act("Bob=", action="join", room="ops")
    assert last(callback_server, "Bob=")["presence"] is False
    assert callback_server.frames("Alice=") == [], "with 0, no room announces anything"


def test_a_bad_presence_setting_is_a_configuration_error(
    callback_server: CallbackServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arrive("alice", "Alice=", "ops")
    capsys.readouterr()
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "-1")
    assert act("Alice=", action="join", room="dev") == 500
    (line,) = log_lines(capsys.readouterr().out)
    assert "PRESENCE_MAX_MEMBERS" in json.dumps(line), f"the log names the variable: {line}"


def test_join_and_who_list_a_big_room_with_bounded_reads(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    monkeypatch.setattr(room_frames, "MEMBER_LIST_LIMIT", 4)
    for number in range(30):
        arrive(f"user{number:02d}", f"C{number:02d}=", "big")
    read: list[int] = []
    query = dynamodb.query

    def counting_query(**request: Any) -> Any:
        page = query(**request)
        if request["TableName"] == "rooms-test":
            read.append(page["ScannedCount"])
        return page

    monkeypatch.setattr(dynamodb, "query", counting_query)
    # The list's 4 and one more, the presence decision's 2 others and one more plus the joiner, the marker's row.
    bound = (4 + 1) + (2 + 1 + 1) + 1
    for action in ("join", "who"):
        read.clear()
        act("C00=", action=action, room="big")
        answer = last(callback_server, "C00=")
        assert len(answer["members"]) == 4 and answer["truncated"] is True, f"{action} lists 4 of 30 and says so"
        assert sum(read) <= bound, f"{action} read {read} rows of the room of 30: must be at most {bound}"


def in_own_container(server: CallbackServer, presence_max_members: int) -> RoomService:
    """A service with its own callback client (one event loop each), as each concurrent Lambda container has."""
    credentials = boto3.Session().get_credentials()
    assert credentials is not None
    return RoomService(
        Rooms(clients.dynamodb(), "connections-test", "rooms-test"),
        CallbackClient(server.url, "us-east-1", credentials),
        broadcast.Retry(),
        presence_max_members=presence_max_members,
    )


def three_in_ops_past_a_cap_of_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alice, Bob and Carol join #ops with the presence cap at 2: Carol's join crosses it."""
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    for name in ("alice", "bob", "carol"):
        arrive(name, f"{name.title()}=", "ops")


def presence_marked(dynamodb: DynamoDBClient, room: str) -> bool:
    key = {"Room": {"S": room}, "Entry": {"S": "presence-off"}}
    return "Item" in dynamodb.get_item(TableName="rooms-test", Key=key, ConsistentRead=True)


@pytest.mark.parametrize("route", ["$connect", "join"])
def test_joins_crossing_the_cap_at_once_tell_the_room_exactly_once(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch, route: str
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "3")
    for name in ("alice", "bob"):
        arrive(name, f"{name.title()}=", "ops")
        act(f"{name.title()}=", action="join", room="ops")
        assert last(callback_server, f"{name.title()}=")["presence"] is True, f"{name} is told the room is live"
    burst = [f"B{number}=" for number in range(5)]
    for connection_id in burst if route == "join" else ():
        arrive(connection_id.lower(), connection_id)
    # Every join is written before any of them counts the room: each sees it over the cap, none sees the crossing.
    counted = threading.Barrier(len(burst), timeout=20)
    waited = threading.local()
    some_member_ids = Rooms.some_member_ids

    def after_every_join(self: Rooms, *args: Any) -> list[str]:
        if not getattr(waited, "done", False):
            waited.done = True
            counted.wait()
        return some_member_ids(self, *args)

    monkeypatch.setattr(Rooms, "some_member_ids", after_every_join)
    failures: list[BaseException] = []

    def cross(connection_id: str) -> None:
        service = in_own_container(callback_server, 3)
        try:
            if route == "$connect":
                event = load_event("connect", queryStringParameters={"name": connection_id.lower(), "room": "ops"})
                event["requestContext"].update(connectionId=connection_id, connectedAt=now_ms())
                connect.connect(event, service)
            else:
                event = load_event("join", body=json.dumps({"action": "join", "room": "ops"}))
                event["requestContext"].update(connectionId=connection_id, requestTimeEpoch=now_ms())
                join_room.join(event, service, HistoryTable(clients.dynamodb(), "history-test"), 10)
        except BaseException as error:  # the assertion below reports it; a thread's exception is otherwise lost
            failures.append(error)

    threads = [threading.Thread(target=cross, args=(connection_id,)) for connection_id in burst]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, f"a join failed: {failures!r}"
    for member in ("Alice=", "Bob="):
        assert of_type(callback_server, member, "presence-off") == [
            {"type": "presence-off", "room": "ops", "maxMembers": 3}
        ], f"{member} was told the room is live, so it must be told exactly once that it no longer is"
    assert presence_marked(dynamodb, "ops"), "the room keeps the marker while it is over the cap"
    for connection_id in burst if route == "join" else ():
        assert of_type(callback_server, connection_id, "joined")[-1]["presence"] is False


def test_presence_off_in_a_room_far_past_the_cap_reaches_a_bounded_number(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A room that grew with presence off (or before an upgrade) has no marker: its next join must not post to all.
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "100")
    members = [f"M{number:02d}=" for number in range(12)]
    for connection_id in members:
        arrive(connection_id.lower().rstrip("="), connection_id, "big")
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    monkeypatch.setattr(room_service, "PRESENCE_OFF_SLACK", 1)  # reach: 2 x 2 + 1
    arrive("late", "Late=", "big")
    told = [member for member in members if of_type(callback_server, member, "presence-off")]
    assert len(told) == 5, f"presence-off reaches twice the cap plus the slack, not all 12: {told}"
    assert presence_marked(dynamodb, "big"), "the crossing is marked all the same"


def test_a_room_back_within_the_cap_is_told_again_at_its_next_crossing(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_in_ops_past_a_cap_of_two(monkeypatch)
    assert presence_marked(dynamodb, "ops"), "carol's join crossed the cap"
    act("Carol=", action="leave", room="ops")  # the room is back at 2: the marker goes
    assert not presence_marked(dynamodb, "ops"), "the leave that brings the room within the cap clears the marker"
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=")["presence"] is True
    arrive("dave", "Dave=", "ops")
    assert len(of_type(callback_server, "Alice=", "presence-off")) == 2, "each crossing is told"


def test_a_room_that_shrank_without_a_leave_is_live_after_a_join(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    three_in_ops_past_a_cap_of_two(monkeypatch)
    rooms = Rooms(dynamodb, "connections-test", "rooms-test")
    rooms.remove_member("Carol=", "ops")  # as if carol's row expired: no leave clears the marker
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=")["presence"] is False, "a marker not yet cleared: the room is not live"
    act("Bob=", action="join", room="ops")
    assert last(callback_server, "Bob=")["presence"] is True and not presence_marked(dynamodb, "ops")
    act("Alice=", action="who", room="ops")
    assert last(callback_server, "Alice=")["presence"] is True, "the join that found the room live cleared it"


def test_a_join_told_live_as_the_room_crosses_gets_presence_off_after_its_answer(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=")
    reply = RoomService.reply

    def crossing_before_the_answer(self: RoomService, connection_id: str, frame: bytes) -> str:
        if connection_id == "Bob=" and not presence_marked(dynamodb, "ops"):
            arrive("carol", "Carol=", "ops")  # after bob's count: its presence-off overtakes bob's answer
        return reply(self, connection_id, frame)

    monkeypatch.setattr(RoomService, "reply", crossing_before_the_answer)
    act("Bob=", action="join", room="ops")
    frames = callback_server.frames("Bob=")
    assert [frame["type"] for frame in frames] == ["presence-off", "joined", "presence-off"], "told again, last"
    assert frames[1]["presence"] is True and presence_marked(dynamodb, "ops")


def test_a_who_told_live_as_the_room_crosses_gets_presence_off_after_its_answer(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    reply = RoomService.reply

    def crossing_before_the_answer(self: RoomService, connection_id: str, frame: bytes) -> str:
        if b'"members"' in frame and not presence_marked(dynamodb, "ops"):
            arrive("carol", "Carol=", "ops")  # after alice's check: its presence-off overtakes alice's answer
        return reply(self, connection_id, frame)

    monkeypatch.setattr(RoomService, "reply", crossing_before_the_answer)
    act("Alice=", action="who", room="ops")
    frames = callback_server.frames("Alice=")
    assert [frame["type"] for frame in frames[-3:]] == ["presence-off", "members", "presence-off"], "told again, last"
    assert frames[-2]["presence"] is True
    act("Bob=", action="who", room="ops")
    assert [frame["type"] for frame in callback_server.frames("Bob=")[-2:]] == ["presence-off", "members"]
    assert last(callback_server, "Bob=")["presence"] is False, "a who after the crossing is answered not live"


TRANSACTION_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}


def record_table_calls(dynamodb: DynamoDBClient, add: Callable[[tuple[str, str | None, str]], object]) -> None:
    """Pass every DynamoDB call the handlers' client makes to `add`, as (table variable, index, IAM action)."""
    tables = {f"{table.logical_name}-test": variable for variable, table in TABLES.items()}

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls = [(str(model.name), params)]
        if model.name == "TransactWriteItems":  # a transaction needs the actions of its items
            calls = [
                (TRANSACTION_ITEM_ACTIONS[kind], request)
                for item in params["TransactItems"]
                for kind, request in item.items()
            ]
        for action, request in calls:
            add((tables[request["TableName"]], request.get("IndexName"), f"dynamodb:{action}"))

    dynamodb.meta.events.register("provide-client-params.dynamodb", record)


def test_forgetting_a_member_that_answers_410_needs_only_what_every_posting_function_is_granted(
    callback_server: CallbackServer, dynamodb: DynamoDBClient
) -> None:
    # moto grants everything, so a call outside the grants would pass here and be refused by IAM on AWS.
    arrive("alice", "Alice=", "ops")
    arrive("bob", "Bob=", "ops")
    callback_server.script("Bob=", GONE)
    used: set[tuple[str, str | None, str]] = set()
    record_table_calls(dynamodb, used.add)
    event = load_event("disconnect")
    event["requestContext"]["connectionId"] = "Alice="
    disconnect.handler(event, FakeLambdaContext())  # its presence post to bob answers 410
    assert callback_server.received("Bob="), "the scenario must post to the gone member"
    assert (environment.TABLE_NAME, None, "dynamodb:GetItem") in used, "the 410 path must read the gone member's row"
    posting = [function for function in definition.FUNCTIONS if function.fans_out]  # every room-posting function
    assert definition.DISCONNECT in posting and definition.PUBLISH in posting, posting
    for function in posting:
        granted = {
            (access.table, access.index, action) for access in function.table_access for action in access.actions
        }
        forgetting = {call for call in used if call[2] in ("dynamodb:GetItem", "dynamodb:DeleteItem")}
        assert forgetting <= granted, f"{function.name} posts to rooms but may not {sorted(forgetting - granted)}"


def test_the_presence_marker_needs_no_table_access_beyond_the_functions_grants(
    callback_server: CallbackServer, dynamodb: DynamoDBClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESENCE_MAX_MEMBERS", "2")
    calling = {"function": "test"}
    used: dict[str, set[tuple[str, str | None, str]]] = {}
    record_table_calls(dynamodb, lambda call: used.setdefault(calling["function"], set()).add(call))
    disconnect_event = load_event("disconnect")
    disconnect_event["requestContext"]["connectionId"] = "Dave="
    steps: list[tuple[str, Callable[[], object]]] = [
        ("connect", lambda: arrive("alice", "Alice=", "ops")),
        ("connect", lambda: arrive("bob", "Bob=", "ops")),
        ("connect", lambda: arrive("carol", "Carol=", "ops")),  # crosses the cap: writes the marker, tells the room
        ("who", lambda: act("Alice=", action="who", room="ops")),  # reads the marker
        ("leave", lambda: act("Carol=", action="leave", room="ops")),  # back at 2: clears it
        ("connect", lambda: arrive("dave", "Dave=", "ops")),
        ("disconnect", lambda: disconnect.handler(disconnect_event, FakeLambdaContext())),  # back at 2: clears it
        ("test", lambda: Rooms(dynamodb, "connections-test", "rooms-test").mark_presence_off("ops")),  # a stale one
        ("join", lambda: act("Alice=", action="join", room="ops")),  # told live: clears it and counts again
        ("connect", lambda: arrive("erin", "Erin=")),
        ("join", lambda: act("Erin=", action="join", room="ops")),  # crosses: writes it, tells the room
    ]
    for function, step in steps:
        calling["function"] = function
        step()
    rooms = environment.ROOMS_TABLE_NAME
    for function, action in (
        ("connect", "PutItem"),
        ("join", "PutItem"),
        ("join", "DeleteItem"),
        ("leave", "DeleteItem"),
        ("disconnect", "DeleteItem"),
    ):
        assert (rooms, None, f"dynamodb:{action}") in used[function], f"the scenario must make {function} {action}"
    for granted_to in (definition.CONNECT, definition.DISCONNECT, definition.JOIN, definition.LEAVE, definition.WHO):
        granted = {
            (access.table, access.index, action) for access in granted_to.table_access for action in access.actions
        }
        extra = used.get(granted_to.name, set()) - granted
        assert not extra, f"{granted_to.name} calls {extra}, which app.definition does not grant"
