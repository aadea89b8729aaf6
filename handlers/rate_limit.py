"""Per-connection message rate limit: a token bucket kept in the connection's row, one conditional write a message.

The bucket is one number, `RateTat` (the generic cell rate algorithm's theoretical arrival time), moved by an atomic
conditional update so concurrent invocations cannot overspend it (docs/handlers.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ATTRIBUTE = "RateTat"
HASH_KEY = "ConnectionId"
"""The connections table's key (`app.definition.CONNECTIONS_TABLE.hash_key`; a test keeps them equal)."""
ROOMS_ATTRIBUTE = "Rooms"
"""The row's string set of rooms (`handlers.rooms` writes it; a test keeps them equal)."""


@dataclass(frozen=True)
class MemberTake:
    """What `take_as_member` found: the row (after the write when a token was taken, None when there is none),
    whether the connection is in the room, and the wait (0 when a token was taken)."""

    row: dict[str, Any] | None
    member: bool
    wait: float


@dataclass(frozen=True)
class RateLimit:
    """`per_second` messages sustained, `burst` at once after a pause."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and self.burst >= 1):
            raise ValueError(f"a rate limit needs a positive rate and a burst of 1 or more, got {self}")

    @property
    def interval_ms(self) -> float:
        """Milliseconds one message costs."""
        return 1000.0 / self.per_second


class RateLimiter:
    """Takes a token from a connection's bucket in the connections table."""

    def __init__(self, dynamodb: DynamoDBClient, table_name: str, limit: RateLimit) -> None:
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.hash_key = HASH_KEY
        self.limit = limit

    def take(self, connection_id: str, now_ms: float) -> float:
        """0 when the message may go, else the seconds to wait before the next one will be allowed.

        A connection without a row has no bucket: its message goes and no row is made for it.
        """
        exists, stored = self._read(connection_id)
        return self.take_after_read(connection_id, stored, now_ms) if exists else 0.0

    def take_after_read(self, connection_id: str, stored: float | None, now_ms: float) -> float:
        """`take` for a caller that has just read the connection's row: `stored` is its `RateTat` (None if unset).

        The writes are conditional on the bucket they find, so a value that moved since the read cannot overspend it.
        """
        if stored is None or stored < now_ms:
            try:
                self._write(connection_id, now_ms, restart_from=stored)
            except ClientError as error:
                if not _condition_failed(error):
                    raise
                # Another invocation moved the bucket since the read: continue from its value.
            else:
                return 0.0
        try:
            self._write(connection_id, now_ms, restart_from=None, continuing=True)
        except ClientError as error:
            if not _condition_failed(error):
                raise
            item: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            if item is None:  # the row went away between the read and the write
                return 0.0
            return self._wait_seconds(float(item.get(ATTRIBUTE, {}).get("N", now_ms)), now_ms)
        return 0.0

    def take_as_member(self, connection_id: str, room: str, now_ms: float) -> MemberTake:
        """`take` for a member of `room` only, in the write itself: one UpdateItem (two within a burst), no read.

        A connection without a row or outside the room takes no token; the row comes back either way.
        """
        interval = self.limit.interval_ms
        latest = now_ms + (self.limit.burst - 1) * interval  # the newest arrival time that still fits the burst
        written, row = self._write_if_member(
            connection_id,
            room,
            ("attribute_not_exists(#tat) OR #tat < :now", "SET #tat = :next"),
            {":now": now_ms, ":next": now_ms + interval},
        )
        if not written and row is not None and _in_room(row, room):
            # The bucket was mid-burst, so it did not restart: carry on from its value, within the burst.
            written, row = self._write_if_member(
                connection_id,
                room,
                ("#tat <= :latest", "SET #tat = #tat + :interval"),
                {":latest": latest, ":interval": interval},
            )
        if row is None or not _in_room(row, room):
            return MemberTake(row, member=False, wait=0.0)
        if written:
            return MemberTake(row, member=True, wait=0.0)
        return MemberTake(
            row, member=True, wait=self._wait_seconds(float(row.get(ATTRIBUTE, {}).get("N", now_ms)), now_ms)
        )

    def _write_if_member(
        self, connection_id: str, room: str, bucket: tuple[str, str], values: dict[str, float]
    ) -> tuple[bool, dict[str, Any] | None]:
        """One conditional write of the bucket for a member: whether it was made, and the row after it or as found."""
        condition, update = bucket
        try:
            response = self.dynamodb.update_item(
                TableName=self.table_name,
                Key={self.hash_key: {"S": connection_id}},
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(#key) AND contains(#rooms, :room) AND ({condition})",
                ExpressionAttributeNames={"#tat": ATTRIBUTE, "#key": self.hash_key, "#rooms": ROOMS_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":room": {"S": room},
                    **{name: {"N": _number(value)} for name, value in values.items()},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            found: dict[str, Any] | None = error.response.get("Item")  # type: ignore[assignment]
            return False, found
        return True, response["Attributes"]

    def _read(self, connection_id: str) -> tuple[bool, float | None]:
        """Whether the row exists, and its `RateTat` if set."""
        response = self.dynamodb.get_item(
            TableName=self.table_name,
            Key={self.hash_key: {"S": connection_id}},
            ProjectionExpression="#key, #tat",
            ExpressionAttributeNames={"#key": self.hash_key, "#tat": ATTRIBUTE},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if item is None:
            return False, None
        value = item.get(ATTRIBUTE, {}).get("N")
        return True, float(value) if value is not None else None

    def _write(self, connection_id: str, now_ms: float, restart_from: float | None, continuing: bool = False) -> None:
        interval = self.limit.interval_ms
        names = {"#tat": ATTRIBUTE, "#key": self.hash_key}
        if continuing:
            latest = now_ms + (self.limit.burst - 1) * interval  # the newest arrival time that still fits the burst
            update, values = "SET #tat = #tat + :interval", {":interval": interval, ":latest": latest}
            condition = "attribute_exists(#key) AND #tat <= :latest"
        else:
            update, values = "SET #tat = :next", {":next": now_ms + interval}
            if restart_from is None:
                condition = "attribute_exists(#key) AND attribute_not_exists(#tat)"
            else:
                condition = "attribute_exists(#key) AND #tat = :read"
                values[":read"] = restart_from
        self.dynamodb.update_item(
            TableName=self.table_name,
            Key={self.hash_key: {"S": connection_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={name: {"N": _number(value)} for name, value in values.items()},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )

    def _wait_seconds(self, stored_ms: float, now_ms: float) -> float:
        """How long until a message at `stored_ms` fits the burst again."""
        latest = now_ms + (self.limit.burst - 1) * self.limit.interval_ms
        return max(0.001, (stored_ms - latest) / 1000)


def _in_room(row: dict[str, Any], room: str) -> bool:
    return room in row.get(ROOMS_ATTRIBUTE, {}).get("SS", [])


def _condition_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _number(value: float) -> str:
    """A DynamoDB number: milliseconds to three decimals, so repeated additions stay exact enough."""
    return f"{value:.3f}" if math.isfinite(value) else "0"
