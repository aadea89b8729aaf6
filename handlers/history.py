"""The history table: each room's accepted messages by sequence number, kept `HISTORY_RETENTION_DAYS` through TTL.

Hash key `Room`, range key `Seq` (N); `Envelope` holds the exact frame the members were sent, so a replayed message
has the same `id` (clients drop duplicates by it) and the same bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

DEFAULT_RETENTION_DAYS = 7
SECONDS_PER_DAY = 24 * 60 * 60


class HistoryTable:
    """Append and read back a room's messages, over a DynamoDB client the caller provides."""

    def __init__(self, dynamodb: DynamoDBClient, name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self.dynamodb = dynamodb
        self.name = name
        self.retention_days = retention_days

    def append(self, room: str, seq: int, envelope: bytes, sent_at_seconds: float) -> None:
        """Store one message; it expires `retention_days` after it was sent."""
        self.dynamodb.put_item(
            TableName=self.name,
            Item={
                "Room": {"S": room},
                "Seq": {"N": str(seq)},
                "Envelope": {"S": envelope.decode("utf-8")},
                "ExpiresAt": {"N": str(int(sent_at_seconds) + self.retention_days * SECONDS_PER_DAY)},
            },
        )

    def before(self, room: str, before_seq: int | None, limit: int, now_seconds: float) -> list[bytes]:
        """Up to `limit` envelopes of the room with `seq` below `before_seq` (None: the newest), oldest first."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "Room = :room",
            "ExpressionAttributeValues": {":room": {"S": room}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before_seq is not None:
            request["KeyConditionExpression"] += " AND Seq < :before"
            request["ExpressionAttributeValues"][":before"] = {"N": str(before_seq)}
        found: list[bytes] = []
        # Expired rows linger until TTL deletes them (up to days later): skip them and read on.
        while len(found) < limit:
            page = self.dynamodb.query(**request)
            found.extend(
                item["Envelope"]["S"].encode("utf-8")
                for item in page.get("Items", [])
                if float(item["ExpiresAt"]["N"]) > now_seconds
            )
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return list(reversed(found[:limit]))
