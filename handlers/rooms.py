"""Rooms: who is in which room, who holds which name there, and each room's message counter.

Every step is one single-item call or one transaction, so it is atomic and safe to repeat; member rows are spread
over slices so a big room is read by parallel Queries (docs/handlers.md, "Tables and access patterns").
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from handlers.connections import Connection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

MAX_ROOMS_PER_CONNECTION = 20

MEMBER_SLICES = 64
"""Slices a room's members are spread over; `member_pages` reads any number of parts up to this many."""
MEMBER_PREFIX = "member#"
NAME_PREFIX = "name#"
SEQUENCE_ENTRY = "sequence"
PRESENCE_OFF_ENTRY = "presence-off"
"""The marker of a room whose members were told presence is off; it sorts outside the member range and never expires."""


class JoinOutcome(Enum):
    """What `Rooms.join` did."""

    JOINED = "joined"
    ALREADY_MEMBER = "already-member"
    TOO_MANY_ROOMS = "too-many-rooms"
    NAME_TAKEN = "name-taken"
    GONE = "connection-gone"


@dataclass(frozen=True)
class Member:
    """One connection in a room, as the `members` lists show it."""

    connection_id: str
    name: str | None


def member_slice(connection_id: str) -> int:
    """The slice of a member row: a stable hash (CRC-32, the same on every machine and Python version)."""
    return zlib.crc32(connection_id.encode("utf-8")) % MEMBER_SLICES


def member_slice_of_entry(entry: str) -> int:
    """The slice a member row's entry (`member#<slice>#<connection id>`) names."""
    return int(entry[len(MEMBER_PREFIX) : len(MEMBER_PREFIX) + 2])


def member_entry(connection_id: str) -> str:
    """The sort key of a member row; two-digit slices sort as numbers, so slice ranges are key ranges."""
    return f"{MEMBER_PREFIX}{member_slice(connection_id):02d}#{connection_id}"


class Rooms:
    """Membership operations over the connections table and the rooms table (clients are the caller's)."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        connections_table: str,
        rooms_table: str,
        max_rooms: int = MAX_ROOMS_PER_CONNECTION,
        page_size: int | None = None,
    ) -> None:
        self.dynamodb = dynamodb
        self.connections_table = connections_table
        self.rooms_table = rooms_table
        self.max_rooms = max_rooms
        self.page_size = page_size
        """Items per Query page; None lets DynamoDB fill 1 MB pages. Tests set it small to force many pages."""

    def join(self, connection: Connection, room: str, now_seconds: float) -> JoinOutcome:
        """Make the connection a member of `room`, claiming its name there unless a token vouches for it.

        `connection` must be freshly read (`connection()`): its room list decides "already a member".
        """
        if room in connection.rooms:
            return JoinOutcome.ALREADY_MEMBER
        if len(connection.rooms) >= self.max_rooms:
            return JoinOutcome.TOO_MANY_ROOMS
        items: list[dict[str, Any]] = [
            {"Update": self._add_room(connection.connection_id, room)},
            {"Put": {"TableName": self.rooms_table, "Item": self._member_item(connection, room)}},
        ]
        if connection.name is not None and not connection.verified:
            items.append({"Put": self._name_claim(connection, room, now_seconds)})
        try:
            self.dynamodb.transact_write_items(TransactItems=items)  # type: ignore[arg-type]
        except ClientError as error:
            reasons = _cancellation_codes(error)
            if reasons is None:
                raise
            if len(reasons) > 2 and reasons[2] == "ConditionalCheckFailed":
                return JoinOutcome.NAME_TAKEN
            if reasons[0] == "ConditionalCheckFailed":
                # The row vanished (a disconnect), or a concurrent join filled the last slot.
                current = self.connection(connection.connection_id)
                return JoinOutcome.GONE if current is None else JoinOutcome.TOO_MANY_ROOMS
            raise
        return JoinOutcome.JOINED

    def leave(self, connection: Connection, room: str) -> bool:
        """Remove the connection from `room`; False when it was not a member (nothing changes)."""
        if room not in connection.rooms:
            return False
        try:
            self.dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.connections_table,
                            "Key": {"ConnectionId": {"S": connection.connection_id}},
                            "UpdateExpression": "DELETE Rooms :rooms",
                            "ConditionExpression": "contains(Rooms, :room)",
                            "ExpressionAttributeValues": {":rooms": {"SS": [room]}, ":room": {"S": room}},
                        }
                    },
                    {
                        "Delete": {
                            "TableName": self.rooms_table,
                            "Key": self._member_key(connection.connection_id, room),
                        }
                    },
                ]
            )
        except ClientError as error:
            if _cancellation_codes(error) is None:
                raise
            return False
        self._release_name(connection, room)
        return True

    def forget(self, connection_id: str) -> Connection | None:
        """Delete the connection and its memberships (on `$disconnect`); returns what it was, None if already gone."""
        response = self.dynamodb.delete_item(
            TableName=self.connections_table,
            Key={"ConnectionId": {"S": connection_id}},
            ReturnValues="ALL_OLD",
        )
        old = response.get("Attributes")
        if not old:
            return None
        connection = Connection.from_item(old)
        for room in sorted(connection.rooms):
            self.dynamodb.delete_item(TableName=self.rooms_table, Key=self._member_key(connection_id, room))
            self._release_name(connection, room)
        return connection

    def remove_member(self, connection_id: str, room: str) -> None:
        """Delete one member row (a post to it answered 410); its connection row is the caller's to delete."""
        self.dynamodb.delete_item(TableName=self.rooms_table, Key=self._member_key(connection_id, room))

    def connection(self, connection_id: str) -> Connection | None:
        """The connection's row (name, token, rooms), read consistently; None when it is gone."""
        response = self.dynamodb.get_item(
            TableName=self.connections_table, Key={"ConnectionId": {"S": connection_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return Connection.from_item(item) if item else None

    def member_pages(self, room: str, now_seconds: float, part: int = 0, parts: int = 1) -> Iterator[list[Member]]:
        """The room's members in slice range `part` of `parts`, one Query page at a time, expired rows left out.

        The `parts` ranges are disjoint and cover every slice, so reading all of them, in any order or at once,
        reads each member exactly once.
        """
        if not 1 <= parts <= MEMBER_SLICES or not 0 <= part < parts:
            raise ValueError(f"part must be in 0..parts-1 and parts in 1..{MEMBER_SLICES}, got {part} of {parts}")
        low = part * MEMBER_SLICES // parts
        high = (part + 1) * MEMBER_SLICES // parts
        for page, _ in self._member_query(room, now_seconds, low, high):
            yield page

    def first_member_page(self, room: str, now_seconds: float, limit: int) -> tuple[list[str], str | None]:
        """The ids on the room's first page of at most `limit` members, and the entry to continue after (None: all)."""
        for page, last_entry in self._member_query(room, now_seconds, 0, MEMBER_SLICES, limit=limit):
            return [member.connection_id for member in page], last_entry
        return [], None

    def some_member_ids(self, room: str, now_seconds: float, count: int, skip: frozenset[str]) -> list[str]:
        """Up to `count` live members' ids, those in `skip` left out: a bounded read whatever the room's size.

        Read consistently: it decides presence, and a count that missed a join just written could miss a crossing.
        """
        found = self._first_members(room, now_seconds, count, skip, consistent=True)
        return [member.connection_id for member in found]

    def _first_members(
        self, room: str, now_seconds: float, count: int, skip: frozenset[str], *, consistent: bool = False
    ) -> list[Member]:
        """The first `count` live members in key order (slice, then id), those in `skip` left out.

        Every Query page is limited to what is still missing, so a big room costs about `count` rows, not all of them.
        """
        found: list[Member] = []
        after: str | None = None
        unseen = set(skip)
        while len(found) < count:
            limit = count - len(found) + len(unseen)
            pages = self._member_query(
                room, now_seconds, 0, MEMBER_SLICES, after=after, limit=limit, consistent=consistent
            )
            page, after = next(pages)
            for member in page:
                if member.connection_id in unseen:
                    unseen.discard(member.connection_id)
                else:
                    found.append(member)
            if after is None:
                break
        return found[:count]

    def member_ids_after(self, room: str, now_seconds: float, entry: str) -> Iterator[list[str]]:
        """The ids of every member whose entry sorts after `entry` (what `first_member_page` left), page by page."""
        for page, _ in self._member_query(room, now_seconds, 0, MEMBER_SLICES, after=entry):
            yield [member.connection_id for member in page]

    def member_ids_in_part(self, room: str, now_seconds: float, part: int, parts: int) -> Iterator[list[str]]:
        """The ids of the members in slice range `part` of `parts`, page by page."""
        for page in self.member_pages(room, now_seconds, part, parts):
            yield [member.connection_id for member in page]

    def _member_query(
        self,
        room: str,
        now_seconds: float,
        low: int,
        high: int,
        *,
        after: str | None = None,
        limit: int | None = None,
        consistent: bool = False,
    ) -> Iterator[tuple[list[Member], str | None]]:
        """Pages of the members in slices `low` to `high - 1`, each with the entry its Query stopped at (or None)."""
        # "member#05" <= "member#05#id..." and "member#07#id..." > "member#07": BETWEEN is exactly slices 5 and 6.
        request: dict[str, Any] = {
            "TableName": self.rooms_table,
            "KeyConditionExpression": "#room = :room AND #entry BETWEEN :low AND :high",
            "ExpressionAttributeNames": {"#room": "Room", "#entry": "Entry"},
            "ExpressionAttributeValues": {
                ":room": {"S": room},
                ":low": {"S": f"{MEMBER_PREFIX}{low:02d}"},
                ":high": {"S": f"{MEMBER_PREFIX}{high:02d}"},
            },
            "ProjectionExpression": "ConnectionId, DisplayName, ExpiresAt",
        }
        if limit is not None or self.page_size is not None:
            request["Limit"] = limit if limit is not None else self.page_size
        if after is not None:
            request["ExclusiveStartKey"] = {"Room": {"S": room}, "Entry": {"S": after}}
        if consistent:
            request["ConsistentRead"] = True
        while True:
            page = self.dynamodb.query(**request)
            last = page.get("LastEvaluatedKey")
            members = [
                Member(item["ConnectionId"]["S"], item.get("DisplayName", {}).get("S"))
                for item in page.get("Items", [])
                if "ExpiresAt" not in item or float(item["ExpiresAt"]["N"]) > now_seconds
            ]
            yield members, last["Entry"]["S"] if last else None
            if last is None:
                return
            request["ExclusiveStartKey"] = last
            if self.page_size is None:
                request.pop("Limit", None)  # `limit` bounds the first page only
            else:
                request["Limit"] = self.page_size

    def members(self, room: str, now_seconds: float, limit: int | None = None) -> tuple[list[Member], bool]:
        """Up to `limit` members of the room, sorted by name, and whether there were more.

        A bounded read of `limit + 1` rows: a bigger room's list shows its first `limit` in key order, a sample that no
        name's spelling favours and every reader sees alike while those members stay.
        """
        if limit is None:
            found = [member for page in self.member_pages(room, now_seconds) for member in page]
        else:
            found = self._first_members(room, now_seconds, limit + 1, frozenset())
        truncated = limit is not None and len(found) > limit
        found = found[:limit] if limit is not None else found
        found.sort(key=lambda member: (member.name is None, member.name or "", member.connection_id))
        return found, truncated

    def member_ids(self, room: str, now_seconds: float) -> Iterator[list[str]]:
        """The connection ids of every member, one page at a time (what a room broadcast posts to)."""
        for page in self.member_pages(room, now_seconds):
            yield [member.connection_id for member in page]

    def presence_off_marked(self, room: str) -> bool:
        """Whether the room carries the presence-off marker, read consistently so a marker just written counts."""
        # A Query on the one key rather than GetItem: every function that asks already has Query on the table.
        response = self.dynamodb.query(
            TableName=self.rooms_table,
            KeyConditionExpression="#room = :room AND #entry = :marker",
            ExpressionAttributeNames={"#room": "Room", "#entry": "Entry"},
            ExpressionAttributeValues={":room": {"S": room}, ":marker": {"S": PRESENCE_OFF_ENTRY}},
            ProjectionExpression="#entry",
            ConsistentRead=True,
        )
        return bool(response.get("Items"))

    def mark_presence_off(self, room: str) -> bool:
        """Write the room's presence-off marker; True only for the one caller whose write created it."""
        try:
            self.dynamodb.put_item(
                TableName=self.rooms_table,
                Item={"Room": {"S": room}, "Entry": {"S": PRESENCE_OFF_ENTRY}},
                ConditionExpression="attribute_not_exists(Entry)",
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            return False
        return True

    def clear_presence_off(self, room: str) -> None:
        """Delete the room's presence-off marker (idempotent), so the next crossing of the cap is announced."""
        self.dynamodb.delete_item(
            TableName=self.rooms_table, Key={"Room": {"S": room}, "Entry": {"S": PRESENCE_OFF_ENTRY}}
        )

    def next_sequence(self, room: str) -> int:
        """The room's next message number: one atomic ADD, so concurrent senders never share or reuse one."""
        response = self.dynamodb.update_item(
            TableName=self.rooms_table,
            Key={"Room": {"S": room}, "Entry": {"S": SEQUENCE_ENTRY}},
            UpdateExpression="ADD LastSeq :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["LastSeq"]["N"])

    def _add_room(self, connection_id: str, room: str) -> dict[str, Any]:
        return {
            "TableName": self.connections_table,
            "Key": {"ConnectionId": {"S": connection_id}},
            "UpdateExpression": "ADD Rooms :rooms",
            # The cap holds under concurrent joins: the count is checked in the same write that adds the room.
            "ConditionExpression": "attribute_exists(ConnectionId) AND "
            "(attribute_not_exists(Rooms) OR contains(Rooms, :room) OR size(Rooms) < :max)",
            "ExpressionAttributeValues": {
                ":rooms": {"SS": [room]},
                ":room": {"S": room},
                ":max": {"N": str(self.max_rooms)},
            },
        }

    def _member_key(self, connection_id: str, room: str) -> dict[str, Any]:
        return {"Room": {"S": room}, "Entry": {"S": member_entry(connection_id)}}

    def _member_item(self, connection: Connection, room: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self._member_key(connection.connection_id, room),
            "ConnectionId": {"S": connection.connection_id},
            "ExpiresAt": {"N": str(connection.expires_at)},
        }
        if connection.name is not None:
            item["DisplayName"] = {"S": connection.name}
        return item

    def _name_claim(self, connection: Connection, room: str, now_seconds: float) -> dict[str, Any]:
        assert connection.name is not None
        return {
            "TableName": self.rooms_table,
            "Item": {
                "Room": {"S": room},
                "Entry": {"S": NAME_PREFIX + connection.name_key},
                "ConnectionId": {"S": connection.connection_id},
                "ExpiresAt": {"N": str(connection.expires_at)},
            },
            # A claim left by a connection that vanished without `$disconnect` lapses with its row's TTL.
            "ConditionExpression": "attribute_not_exists(Entry) OR ConnectionId = :me OR ExpiresAt < :now",
            "ExpressionAttributeValues": {
                ":me": {"S": connection.connection_id},
                ":now": {"N": str(int(now_seconds))},
            },
        }

    def _release_name(self, connection: Connection, room: str) -> None:
        if connection.name is None or connection.verified:
            return
        try:
            self.dynamodb.delete_item(
                TableName=self.rooms_table,
                Key={"Room": {"S": room}, "Entry": {"S": NAME_PREFIX + connection.name_key}},
                ConditionExpression="ConnectionId = :me",
                ExpressionAttributeValues={":me": {"S": connection.connection_id}},
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _cancellation_codes(error: ClientError) -> list[str] | None:
    """Per-item reasons of a cancelled transaction (`"None"` for items that were fine); None for other errors."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return None
    reasons = error.response.get("CancellationReasons") or []
    return [str(reason.get("Code", "None")) for reason in reasons]
