"""`handlers.fan_out`: a big room's broadcast split across invocations reaches every member exactly once.

The hand-over is recorded instead of invoking Lambda, and the recorded shards are then run the way their invocations
would run them (`RoomService.post_shard`), after members join and leave: every member present throughout gets the
frame exactly once, whichever invocation posts it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from handlers import broadcast, clients, fan_out, send_message
from handlers.connections import ConnectionsTable
from handlers.room_service import RoomService
from handlers.rooms import Rooms
from tests.handlers.callback_server import GONE, CallbackServer
from tests.handlers.conftest import FakeLambdaContext, log_lines

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

FRAME = b'{"type":"message","id":"0123456789abcdef0123456789abcdef","message":"hi"}'


def populate(table: ConnectionsTable, rooms: Rooms, room: str, ids: list[str]) -> None:
    for connection_id in ids:
        table.add(connection_id, int(time.time() * 1000), None)
        connection = rooms.connection(connection_id)
        assert connection is not None
        rooms.join(connection, room, time.time())


def service_for(rooms: Rooms, callback_server: CallbackServer, shard_size: int, hand_over: Any) -> RoomService:
    return RoomService(
        rooms=rooms,
        callback_api=clients.callback_api(callback_server.url),
        retry=broadcast.Retry(),
        workers=8,
        pacer=broadcast.Pacer(4000),
        shard_size=shard_size,
        hand_over=hand_over,
    )


class RecordedHandOver:
    """A hand-over that keeps the shards (a real one invokes Lambda), refusing those listed in `refuse`."""

    def __init__(self, refuse: frozenset[int] = frozenset()) -> None:
        self.shards: list[fan_out.Shard] = []
        self.refuse = refuse

    def __call__(self, shards: list[fan_out.Shard]) -> list[fan_out.Shard]:
        self.shards += [shard for shard in shards if shard.part not in self.refuse]
        return [shard for shard in shards if shard.part in self.refuse]


def posted(callback_server: CallbackServer) -> Counter[str]:
    return Counter(post.connection_id for post in callback_server.posts)


def test_a_small_room_stays_in_one_invocation(
    table: ConnectionsTable, rooms: Rooms, callback_server: CallbackServer, dynamodb: DynamoDBClient
) -> None:
    ids = [f"small-{number:02d}=" for number in range(12)]
    populate(table, rooms, "small", ids)
    queries: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.Query", lambda **_: queries.append("Query"))
    hand_over = RecordedHandOver()

    result = service_for(rooms, callback_server, 50, hand_over).to_room("small", FRAME)

    assert hand_over.shards == [] and result.shards_handed_over == 0, "a room under one shard is not split"
    assert posted(callback_server) == Counter(ids), "every member once"
    assert len(queries) == 1, f"a small room costs one Query, as before the fan-out existed: {len(queries)}"


def test_a_big_room_is_split_and_every_member_gets_the_frame_once_despite_joins_and_leaves(
    table: ConnectionsTable, rooms: Rooms, callback_server: CallbackServer
) -> None:
    ids = [f"big-{number:03d}=" for number in range(60)]
    populate(table, rooms, "big", ids)
    hand_over = RecordedHandOver()
    service = service_for(rooms, callback_server, 10, hand_over)

    result = service.to_room("big", FRAME)
    leaving, joining = ids[::7], [f"late-{number:02d}=" for number in range(5)]
    for connection_id in leaving:
        rooms.leave(rooms.connection(connection_id), "big")  # type: ignore[arg-type]
    populate(table, rooms, "big", joining)
    for shard in hand_over.shards:  # what each handed-over invocation does, from its event
        service.post_shard(fan_out.Shard.from_event(json.loads(json.dumps(shard.to_event()))))

    parts = hand_over.shards[0].parts
    assert result.shards_handed_over == parts - 1 >= 1, f"the big room must be split: {result}"
    counts = posted(callback_server)
    stayed = [cid for cid in ids if cid not in leaving]
    assert all(counts[cid] == 1 for cid in stayed), f"members there throughout: exactly once; {counts.most_common(3)}"
    assert all(counts[cid] <= 1 for cid in leaving + joining), "those who left or joined meanwhile: at most once"
    assert {shard.posts_per_second for shard in hand_over.shards} == {4000 / parts}, "the cap is shared by the parts"


def test_a_part_that_cannot_be_handed_over_is_posted_by_the_caller(
    table: ConnectionsTable, rooms: Rooms, callback_server: CallbackServer
) -> None:
    ids = [f"big-{number:03d}=" for number in range(50)]
    populate(table, rooms, "big", ids)
    hand_over = RecordedHandOver(refuse=frozenset({1}))
    service = service_for(rooms, callback_server, 10, hand_over)

    service.to_room("big", FRAME)
    for shard in hand_over.shards:
        service.post_shard(shard)

    assert posted(callback_server) == Counter(ids), "a refused hand-over loses nobody: the caller posts that part"
    assert all(shard.part != 1 for shard in hand_over.shards)


def test_skipped_connections_stay_skipped_in_every_part(
    table: ConnectionsTable, rooms: Rooms, callback_server: CallbackServer
) -> None:
    ids = [f"big-{number:03d}=" for number in range(40)]
    populate(table, rooms, "big", ids)
    hand_over = RecordedHandOver()
    service = service_for(rooms, callback_server, 8, hand_over)
    skip = frozenset(ids[:12])

    service.to_room("big", FRAME, skip=skip)
    for shard in hand_over.shards:
        service.post_shard(shard)

    assert posted(callback_server) == Counter(ids[12:]), "no part posts to a skipped connection"


@pytest.mark.parametrize(
    "event",
    [
        {fan_out.EVENT_KEY: {}},
        {fan_out.EVENT_KEY: {"room": "r", "part": 3, "parts": 2, "frame": "", "skip": [], "postsPerSecond": 1}},
        {fan_out.EVENT_KEY: {"room": "r", "part": 0, "parts": 2, "frame": "!!", "skip": [], "postsPerSecond": 1}},
        {fan_out.EVENT_KEY: {"room": "r", "part": 0, "parts": 2, "frame": "", "skip": [], "postsPerSecond": 0}},
    ],
    ids=["empty", "part-out-of-range", "frame-not-base64", "no-pace"],
)
def test_a_malformed_shard_event_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="shard"):
        fan_out.Shard.from_event(event)


def test_the_handler_posts_a_shard_it_is_invoked_with(
    *,
    table: ConnectionsTable,
    rooms: Rooms,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = [f"big-{number:03d}=" for number in range(30)]
    populate(table, rooms, "big", ids)
    events = [fan_out.Shard("big", part, 3, FRAME, frozenset(), 100.0).to_event() for part in range(3)]

    for event in events:
        assert send_message.handler(event, lambda_context) == {"statusCode": 200}

    assert posted(callback_server) == Counter(ids), "three shard invocations cover the room once"
    lines = log_lines(capsys.readouterr().out)
    assert sum(line["delivered"] for line in lines) == 30, f"each invocation logs its own tally: {lines}"


def test_the_first_page_and_what_follows_it_cover_the_room_once(
    table: ConnectionsTable, dynamodb: DynamoDBClient
) -> None:
    paged = Rooms(dynamodb, "connections-test", "rooms-test", page_size=3)
    ids = [f"conn-{number:03d}=" for number in range(50)]
    populate(table, paged, "r", ids)
    limits: list[int] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.Query", lambda params, **_: limits.append(params.get("Limit"))
    )

    first, last_entry = paged.first_member_page("r", time.time(), 10)
    rest = [
        connection_id for page in paged.member_ids_after("r", time.time(), last_entry or "") for connection_id in page
    ]

    assert len(first) == 10 and last_entry is not None, "the first page holds the limit and says where it stopped"
    assert sorted(first + rest) == sorted(ids), "the first page and the rest read every member exactly once"
    assert limits[0] == 10 and set(limits[1:]) == {3}, f"only the first page is limited to one shard: {limits}"


def test_a_410_for_a_connection_still_in_its_connect_keeps_its_membership(
    table: ConnectionsTable, rooms: Rooms, callback_server: CallbackServer
) -> None:
    populate(table, rooms, "r", ["joining=", "steady="])
    table.add("vanished=", int((time.time() - 120) * 1000), None)  # connected two minutes ago, then gone
    vanished = rooms.connection("vanished=")
    assert vanished is not None
    rooms.join(vanished, "r", time.time())
    callback_server.script("joining=", GONE)  # API Gateway's answer while a `$connect` still runs
    callback_server.script("vanished=", GONE)

    service_for(rooms, callback_server, 50, None).to_room("r", FRAME)

    members = {cid for page in rooms.member_ids("r", time.time()) for cid in page}
    assert "joining=" in members and rooms.connection("joining=") is not None, (
        "a connection that is still connecting must not be forgotten: its handshake is about to complete"
    )
    assert "vanished=" not in members and rooms.connection("vanished=") is None, "a stale connection is forgotten"
