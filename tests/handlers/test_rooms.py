"""The rooms data model against moto: membership, the room cap, name claims, slices, sequence numbers, history."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from handlers import display_name, room_frames
from handlers import rooms as rooms_module
from handlers.aws_facts import FRAME_LIMIT_BYTES
from handlers.connections import Connection, ConnectionsTable
from handlers.history import SECONDS_PER_DAY, HistoryTable
from handlers.protocol import room_name_problem
from handlers.rooms import MEMBER_SLICES, JoinOutcome, Member, Rooms, member_entry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def connect(table: ConnectionsTable, connection_id: str, name: str | None = None, verified: bool = False) -> None:
    table.add(connection_id, int(time.time() * 1000), name, verified)


def fresh(rooms: Rooms, connection_id: str) -> Connection:
    connection = rooms.connection(connection_id)
    assert connection is not None, f"{connection_id} must have a row"
    return connection


def join(rooms: Rooms, connection_id: str, room: str) -> JoinOutcome:
    return rooms.join(fresh(rooms, connection_id), room, time.time())


def member_ids(rooms: Rooms, room: str) -> list[str]:
    return sorted(connection_id for page in rooms.member_ids(room, time.time()) for connection_id in page)


def test_join_lists_the_room_on_the_connection_and_the_member_in_the_room(
    table: ConnectionsTable, rooms: Rooms
) -> None:
    connect(table, "a=", "alice")
    assert join(rooms, "a=", "ops") is JoinOutcome.JOINED
    assert fresh(rooms, "a=").rooms == {"ops"}, "the connection row must list the room"
    members, truncated = rooms.members("ops", time.time())
    assert [(member.connection_id, member.name) for member in members] == [("a=", "alice")] and not truncated


def test_joining_twice_is_harmless(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    join(rooms, "a=", "ops")
    assert join(rooms, "a=", "ops") is JoinOutcome.ALREADY_MEMBER, "a second join must say already a member"
    assert member_ids(rooms, "ops") == ["a="], "one member row, not two"


def test_leave_removes_both_sides_and_a_second_leave_changes_nothing(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    join(rooms, "a=", "ops")
    assert rooms.leave(fresh(rooms, "a="), "ops") is True
    assert fresh(rooms, "a=").rooms == frozenset() and member_ids(rooms, "ops") == []
    assert rooms.leave(fresh(rooms, "a="), "ops") is False, "leaving a room one is not in must report it"


def test_the_room_cap_holds(table: ConnectionsTable, dynamodb: DynamoDBClient) -> None:
    capped = Rooms(dynamodb, "connections-test", "rooms-test", max_rooms=3)
    connect(table, "a=")
    assert [join(capped, "a=", f"r{number}") for number in range(3)] == [JoinOutcome.JOINED] * 3
    assert join(capped, "a=", "r3") is JoinOutcome.TOO_MANY_ROOMS
    assert member_ids(capped, "r3") == [], "a refused join must leave no member row"


def test_the_cap_holds_when_the_snapshot_is_stale(table: ConnectionsTable, dynamodb: DynamoDBClient) -> None:
    capped = Rooms(dynamodb, "connections-test", "rooms-test", max_rooms=1)
    connect(table, "a=")
    stale = fresh(capped, "a=")
    assert capped.join(stale, "r0", time.time()) is JoinOutcome.JOINED
    # A concurrent join read the row before r0 was added: the condition in the write must still refuse it.
    assert capped.join(stale, "r1", time.time()) is JoinOutcome.TOO_MANY_ROOMS
    assert fresh(capped, "a=").rooms == {"r0"} and member_ids(capped, "r1") == []


def test_two_connections_without_a_token_cannot_hold_one_name_in_a_room(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    connect(table, "b=", "ALICE")
    connect(table, "c=", "Alice")
    join(rooms, "a=", "ops")
    assert join(rooms, "b=", "ops") is JoinOutcome.NAME_TAKEN, "names compare without case"
    assert join(rooms, "c=", "ops") is JoinOutcome.NAME_TAKEN
    assert join(rooms, "b=", "dev") is JoinOutcome.JOINED, "another room is another namespace"
    assert member_ids(rooms, "ops") == ["a="] and fresh(rooms, "b=").rooms == {"dev"}


def test_cyrillic_look_alike_names_collide_with_the_latin_one(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "ace")
    connect(table, "b=", "\u0430\u0441\u0435")  # Cyrillic a, es, ie
    join(rooms, "a=", "ops")
    assert join(rooms, "b=", "ops") is JoinOutcome.NAME_TAKEN


def test_a_released_name_can_be_taken(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    connect(table, "b=", "alice")
    join(rooms, "a=", "ops")
    rooms.leave(fresh(rooms, "a="), "ops")
    assert join(rooms, "b=", "ops") is JoinOutcome.JOINED
    rooms.forget("b=")
    assert join(rooms, "a=", "ops") is JoinOutcome.JOINED, "a disconnect must release the name"


def test_token_holders_may_share_their_name(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice", verified=True)
    connect(table, "b=", "alice", verified=True)
    join(rooms, "a=", "ops")
    assert join(rooms, "b=", "ops") is JoinOutcome.JOINED, "two tabs of one verified user are both alice"


def test_forget_removes_every_membership_and_returns_the_rooms(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    connect(table, "b=", "bob")
    for room in ("ops", "dev"):
        join(rooms, "a=", room)
        join(rooms, "b=", room)
    forgotten = rooms.forget("a=")
    assert forgotten is not None and forgotten.rooms == {"ops", "dev"}
    assert member_ids(rooms, "ops") == ["b="] and member_ids(rooms, "dev") == ["b="]
    assert rooms.forget("a=") is None, "forgetting twice is harmless"


def test_a_join_after_the_disconnect_leaves_no_member(table: ConnectionsTable, rooms: Rooms) -> None:
    connect(table, "a=", "alice")
    snapshot = fresh(rooms, "a=")
    rooms.forget("a=")
    assert rooms.join(snapshot, "ops", time.time()) is JoinOutcome.GONE
    assert member_ids(rooms, "ops") == [], "a join racing a disconnect must not leave a member behind"


def test_parts_cover_every_member_exactly_once(table: ConnectionsTable, dynamodb: DynamoDBClient) -> None:
    paged = Rooms(dynamodb, "connections-test", "rooms-test", page_size=3)
    ids = [f"conn-{number:03d}=" for number in range(60)]
    for connection_id in ids:
        connect(table, connection_id)
        join(paged, connection_id, "big")
    rooms_module_slices = {rooms_module.member_slice(connection_id) for connection_id in ids}
    assert len(rooms_module_slices) > 10, "the ids must spread over many slices for this test to mean anything"
    for parts in (1, 2, 3, 7, MEMBER_SLICES):
        seen = [
            member.connection_id
            for part in range(parts)
            for page in paged.member_pages("big", time.time(), part, parts)
            for member in page
        ]
        assert sorted(seen) == sorted(ids), f"{parts} parts must read each member once"


def test_member_pages_refuse_impossible_parts(rooms: Rooms) -> None:
    with pytest.raises(ValueError, match="parts"):
        next(rooms.member_pages("ops", time.time(), 0, MEMBER_SLICES + 1))
    with pytest.raises(ValueError, match="part"):
        next(rooms.member_pages("ops", time.time(), 2, 2))


def test_member_entries_sort_by_slice() -> None:
    entry = member_entry("L0SM9cOFvHcCIhw=")
    slice_number = rooms_module.member_slice("L0SM9cOFvHcCIhw=")
    assert entry == f"member#{slice_number:02d}#L0SM9cOFvHcCIhw=", "the slice is the sort key's prefix"


def test_expired_members_are_left_out(table: ConnectionsTable, rooms: Rooms) -> None:
    table.add("old=", int((time.time() - 3 * 60 * 60) * 1000), None)  # connected 3 hours ago: past API Gateway's 2
    join(rooms, "old=", "ops")
    assert member_ids(rooms, "ops") == [], "a member whose row has expired is a closed connection"


def test_member_lists_are_capped_and_say_so(table: ConnectionsTable, rooms: Rooms) -> None:
    for number in range(5):
        connect(table, f"c{number}=", f"user{number}")
        join(rooms, f"c{number}=", "ops")
    members, truncated = rooms.members("ops", time.time(), limit=3)
    assert len(members) == 3 and truncated
    members, truncated = rooms.members("ops", time.time(), limit=5)
    assert [member.name for member in members] == [f"user{number}" for number in range(5)] and not truncated


def test_concurrent_sends_get_distinct_strictly_increasing_numbers(rooms: Rooms) -> None:
    taken: list[int] = []
    lock = threading.Lock()

    def send() -> None:
        for _ in range(10):
            number = rooms.next_sequence("ops")
            with lock:
                taken.append(number)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 81)), "80 sends must take 1..80, each once"
    assert rooms.next_sequence("ops") == 81 and rooms.next_sequence("dev") == 1, "each room counts on its own"


@pytest.mark.parametrize("room", ["lobby", "a", "A.b_c-9", "x" * 64])
def test_valid_room_names(room: str) -> None:
    assert room_name_problem(room) is None


@pytest.mark.parametrize("room", ["", "x" * 65, "with space", "ops/1", "ünï", 7, None])
def test_invalid_room_names(room: object) -> None:
    problem = room_name_problem(room)
    assert problem is not None and "A-Z a-z 0-9 . _ -" in problem, f"{room!r} must be refused, saying the rule"


def test_history_pages_back_oldest_first(history: HistoryTable) -> None:
    now = time.time()
    for seq in range(1, 8):
        history.append("ops", seq, f'{{"seq":{seq}}}'.encode(), now)
    assert history.before("ops", None, 3, now) == [b'{"seq":5}', b'{"seq":6}', b'{"seq":7}']
    assert history.before("ops", 5, 3, now) == [b'{"seq":2}', b'{"seq":3}', b'{"seq":4}']
    assert history.before("ops", 2, 3, now) == [b'{"seq":1}']
    assert history.before("dev", None, 3, now) == []


def test_history_expires_after_the_retention(dynamodb: DynamoDBClient) -> None:
    history = HistoryTable(dynamodb, "history-test", retention_days=2)
    now = time.time()
    history.append("ops", 1, b'{"seq":1}', now - 3 * SECONDS_PER_DAY)
    history.append("ops", 2, b'{"seq":2}', now)
    item = dynamodb.get_item(TableName="history-test", Key={"Room": {"S": "ops"}, "Seq": {"N": "2"}})["Item"]
    assert int(item["ExpiresAt"]["N"]) == int(now) + 2 * SECONDS_PER_DAY, "the TTL is the retention after sending"
    assert history.before("ops", None, 5, now) == [b'{"seq":2}'], "an expired message waiting for TTL is not shown"


def test_some_member_ids_reads_a_bounded_part_of_a_big_room(table: ConnectionsTable, dynamodb: DynamoDBClient) -> None:
    rooms = Rooms(dynamodb, "connections-test", "rooms-test")
    ids = [f"conn-{number:03d}=" for number in range(40)]
    for connection_id in ids:
        connect(table, connection_id)
        join(rooms, connection_id, "big")
    table.add("old=", int((time.time() - 3 * 60 * 60) * 1000), None)
    join(rooms, "old=", "big")  # an expired row is not a member, and reading past it still finds enough
    read: list[int] = []
    consistent: list[bool] = []
    query = dynamodb.query

    def counting_query(**request: Any) -> Any:
        page = query(**request)
        read.append(page["ScannedCount"])
        consistent.append(request.get("ConsistentRead", False))
        return page

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamodb, "query", counting_query)
        found = rooms.some_member_ids("big", time.time(), 5, frozenset({ids[0], ids[1]}))
    assert len(found) == 5 and set(found) <= set(ids[2:]), f"5 live members, the skipped ones left out: {found}"
    assert sum(read) <= 5 + 2 + 1, f"rows read {read}: a bounded read, never the whole room of 41"
    assert all(consistent), "the presence decision reads consistently: a join just written must count"
    everyone = rooms.some_member_ids("big", time.time(), 100, frozenset())
    assert sorted(everyone) == ids, "a count above the room's size reads every live member"
    assert rooms.some_member_ids("big", time.time(), 0, frozenset()) == []


def test_a_member_list_is_a_bounded_read_with_an_exact_truncated(
    table: ConnectionsTable, dynamodb: DynamoDBClient
) -> None:
    rooms = Rooms(dynamodb, "connections-test", "rooms-test")
    ids = [f"conn-{number:03d}=" for number in range(40)]
    for number, connection_id in enumerate(ids):
        connect(table, connection_id, f"user{39 - number:02d}")
        join(rooms, connection_id, "big")
    read: list[int] = []
    query = dynamodb.query

    def counting_query(**request: Any) -> Any:
        page = query(**request)
        read.append(page["ScannedCount"])
        return page

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dynamodb, "query", counting_query)
        members, truncated = rooms.members("big", time.time(), limit=5)
    assert truncated and len(members) == 5
    assert sum(read) <= 5 + 1, f"rows read {read}: the listed members and one more, never the room of 40"
    first_in_key_order = sorted(ids, key=member_entry)[:5]
    assert sorted(member.connection_id for member in members) == sorted(first_in_key_order), "the first in key order"
    assert [member.name for member in members] == sorted(member.name or "" for member in members), "sorted by name"
    table.add("old=", int((time.time() - 3 * 60 * 60) * 1000), None)
    join(rooms, "old=", "big")  # an expired row must not make a full list look longer, nor a short one complete
    for limit, expected in ((39, True), (40, False)):
        members, truncated = rooms.members("big", time.time(), limit=limit)
        assert (len(members), truncated) == (limit, expected), f"a limit of {limit} in a room of 40 live members"


def test_a_full_member_list_fits_one_frame() -> None:
    longest = "\U0001d54f" * display_name.MAX_DISPLAY_NAME_CHARS  # four UTF-8 bytes a character
    members = [Member(f"L0SM9cOFvHcC{number:03d}=", longest) for number in range(room_frames.MEMBER_LIST_LIMIT)]
    frame = room_frames.joined_frame(
        "x" * 64, "L0SM9cOFvHcCIhw=", longest, members=members, truncated=True, presence=True, history=[]
    )
    assert len(frame) <= FRAME_LIMIT_BYTES, f"{len(frame)} bytes: the list cap must fit the longest names"
