"""The connections table: one row per open WebSocket, keyed by API Gateway's connection id.

Attributes: `ConnectionId` (S, hash key), `ConnectedAt` (N, epoch ms), `ExpiresAt` (N, epoch seconds, the table's
TTL attribute) and the optional `DisplayName` (S). Every write is a single-item call, so a failure never leaves a
half-made row, and every call is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from handlers.aws_facts import MAX_CONNECTION_SECONDS

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_SECONDS = MAX_CONNECTION_SECONDS + 10 * 60
"""API Gateway closes every connection at its maximum age; the row expires a little later if `$disconnect` never ran."""


class ConnectionsTable:
    """The table's operations, over a DynamoDB client the caller provides (moto in tests, the real one on Lambda)."""

    def __init__(self, dynamodb: DynamoDBClient, name: str, page_size: int | None = None) -> None:
        self.dynamodb = dynamodb
        self.name = name
        self.page_size = page_size
        """Rows per Scan page; None lets DynamoDB fill 1 MB pages. Tests set it small to force many pages."""

    def add(self, connection_id: str, connected_at_ms: int, display_name: str | None) -> None:
        """Store a new connection; its row expires a little after API Gateway's 2-hour maximum."""
        item: dict[str, Any] = {
            "ConnectionId": {"S": connection_id},
            "ConnectedAt": {"N": str(connected_at_ms)},
            "ExpiresAt": {"N": str(connected_at_ms // 1000 + CONNECTION_TTL_SECONDS)},
        }
        if display_name is not None:
            item["DisplayName"] = {"S": display_name}
        self.dynamodb.put_item(TableName=self.name, Item=item)

    def remove(self, connection_id: str) -> None:
        """Delete the connection's row; deleting a row that is already gone succeeds too."""
        self.dynamodb.delete_item(TableName=self.name, Key={"ConnectionId": {"S": connection_id}})

    def display_name(self, connection_id: str) -> str | None:
        """The display name stored for the connection, or None (no name given, or no row)."""
        response = self.dynamodb.get_item(
            TableName=self.name,
            Key={"ConnectionId": {"S": connection_id}},
            ProjectionExpression="DisplayName",
            ConsistentRead=True,  # a message sent right after connecting must still show the sender's name
        )
        name = response.get("Item", {}).get("DisplayName", {}).get("S")
        return name if isinstance(name, str) else None

    def live_connection_ids(self, now_seconds: float) -> Iterator[list[str]]:
        """Every connection id, one Scan page at a time, leaving out rows whose `ExpiresAt` has passed.

        Follows `LastEvaluatedKey` to the end: a single Scan stops at 1 MB and silently drops everyone after it.
        Expired rows wait for TTL deletion (up to days); they are closed connections, so posting to them is waste.
        """
        request: dict[str, Any] = {
            "TableName": self.name,
            "ProjectionExpression": "ConnectionId, ExpiresAt",
        }
        if self.page_size is not None:
            request["Limit"] = self.page_size
        while True:
            page = self.dynamodb.scan(**request)
            yield [
                item["ConnectionId"]["S"]
                for item in page.get("Items", [])
                if "ExpiresAt" not in item or float(item["ExpiresAt"]["N"]) > now_seconds
            ]
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
