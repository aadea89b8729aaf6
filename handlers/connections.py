"""The connections table: one row per open WebSocket, keyed by API Gateway's connection id.

Every write is one single-item call or one transaction, so a failure never leaves a half-made row and every call is
safe to repeat (attributes: docs/handlers.md, "Tables and access patterns").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from handlers import display_name as display_names
from handlers.aws_facts import MAX_CONNECTION_SECONDS
from handlers.rate_limit import ATTRIBUTE as RATE_ATTRIBUTE

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONNECTION_TTL_SECONDS = MAX_CONNECTION_SECONDS + 10 * 60
"""API Gateway closes every connection at its maximum age; the row expires a little later if `$disconnect` never ran."""


BY_NAME_INDEX = "ByName"
"""Global secondary index on `DisplayName` (projecting `ExpiresAt`): the connections holding a name, for whispers."""


@dataclass(frozen=True)
class Connection:
    """One connection's row: who it is and which rooms it is in."""

    connection_id: str
    name: str | None
    verified: bool
    expires_at: int
    rooms: frozenset[str] = field(default_factory=frozenset)
    rate_tat: float | None = None
    """Its message rate limit's bucket (`handlers.rate_limit`), None before its first message."""

    @property
    def name_key(self) -> str:
        """What its name must not share with another name held in the same room (`display_name.name_key`)."""
        return display_names.name_key(self.name or "")

    @property
    def sender_name(self) -> str:
        """What messages show as `from`: the display name, else the connection id."""
        return self.name or self.connection_id

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Connection:
        """From a DynamoDB item in the low-level client's attribute-value form."""
        return cls(
            connection_id=item["ConnectionId"]["S"],
            name=item.get("DisplayName", {}).get("S"),
            verified=bool(item.get("Verified", {}).get("BOOL", False)),
            expires_at=int(item.get("ExpiresAt", {}).get("N", "0")),
            rooms=frozenset(item.get("Rooms", {}).get("SS", [])),
            rate_tat=float(item[RATE_ATTRIBUTE]["N"]) if RATE_ATTRIBUTE in item else None,
        )


class ConnectionsTable:
    """The table's operations, over a DynamoDB client the caller provides (moto in tests, the real one on Lambda)."""

    def __init__(self, dynamodb: DynamoDBClient, name: str) -> None:
        self.dynamodb = dynamodb
        self.name = name

    def add(
        self, connection_id: str, connected_at_ms: int, display_name: str | None, verified: bool = False
    ) -> Connection:
        """Store a new connection; its row expires a little after API Gateway's 2-hour maximum."""
        connection = Connection(
            connection_id=connection_id,
            name=display_name,
            verified=verified and display_name is not None,
            expires_at=connected_at_ms // 1000 + CONNECTION_TTL_SECONDS,
        )
        item: dict[str, Any] = {
            "ConnectionId": {"S": connection_id},
            "ConnectedAt": {"N": str(connected_at_ms)},
            "ExpiresAt": {"N": str(connection.expires_at)},
        }
        if display_name is not None:
            item["DisplayName"] = {"S": display_name}
            item["Verified"] = {"BOOL": connection.verified}
        self.dynamodb.put_item(TableName=self.name, Item=item)
        return connection

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

    def named(self, display_name: str, now_seconds: float) -> list[str]:
        """The ids of every live connection holding exactly this display name, through the `ByName` index."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "IndexName": BY_NAME_INDEX,
            "KeyConditionExpression": "DisplayName = :name",
            "ExpressionAttributeValues": {":name": {"S": display_name}},
        }
        found: list[str] = []
        while True:
            page = self.dynamodb.query(**request)
            found.extend(
                item["ConnectionId"]["S"]
                for item in page.get("Items", [])
                if "ExpiresAt" not in item or float(item["ExpiresAt"]["N"]) > now_seconds
            )
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
