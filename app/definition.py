"""The chat application: its routes, the function serving each, the tables, and what each function may do.

The single source of truth: the Pulumi program and the emulator both read it, so it imports no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.settings import StackSettings
from handlers import environment, protocol

ROUTE_SELECTION_EXPRESSION = "$request.body.action"
"""API Gateway picks the route from the `action` field of each JSON message."""

HANDLERS_PACKAGE = "handlers"
"""The package zipped into every function; a function's handler is `handlers.<module>.handler`."""


@dataclass(frozen=True)
class Index:
    """A global secondary index: its hash key (a string attribute) and the attributes it copies besides keys."""

    name: str
    hash_key: str
    projected: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A DynamoDB table: its keys (`S` or `N`), TTL attribute and global secondary indexes."""

    logical_name: str
    hash_key: str
    ttl_attribute: str
    range_key: str | None = None
    range_key_type: str = "S"
    indexes: tuple[Index, ...] = ()

    def attribute_types(self) -> dict[str, str]:
        """Every key attribute (table and indexes) and its DynamoDB type."""
        types = {self.hash_key: "S"}
        if self.range_key is not None:
            types[self.range_key] = self.range_key_type
        types.update({index.hash_key: "S" for index in self.indexes})
        return types

    def create_table_request(self, name: str) -> dict[str, Any]:
        """`CreateTable` parameters (on-demand) for a table of this shape: what the emulator and tests create."""
        keys = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key is not None:
            keys.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": [
                {"AttributeName": attribute, "AttributeType": kind}
                for attribute, kind in self.attribute_types().items()
            ],
            "KeySchema": keys,
            "BillingMode": "PAY_PER_REQUEST",
        }
        if self.indexes:
            request["GlobalSecondaryIndexes"] = [
                {
                    "IndexName": index.name,
                    "KeySchema": [{"AttributeName": index.hash_key, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.projected)}
                    if index.projected
                    else {"ProjectionType": "KEYS_ONLY"},
                }
                for index in self.indexes
            ]
        return request


BY_NAME_INDEX = Index(name="ByName", hash_key="DisplayName", projected=("ExpiresAt",))
"""Connections by display name, for whispers (`handlers.connections.BY_NAME_INDEX`, a test keeps them equal)."""

CONNECTIONS_TABLE = Table(
    logical_name="connections", hash_key="ConnectionId", ttl_attribute="ExpiresAt", indexes=(BY_NAME_INDEX,)
)
ROOMS_TABLE = Table(logical_name="rooms", hash_key="Room", range_key="Entry", ttl_attribute="ExpiresAt")
"""Per room: member rows, name claims and the message counter (`handlers.rooms`)."""
HISTORY_TABLE = Table(
    logical_name="history", hash_key="Room", range_key="Seq", range_key_type="N", ttl_attribute="ExpiresAt"
)
"""Per room: each accepted message by sequence number, expiring after `historyRetentionDays`."""

TABLES: dict[str, Table] = {
    environment.TABLE_NAME: CONNECTIONS_TABLE,
    environment.ROOMS_TABLE_NAME: ROOMS_TABLE,
    environment.HISTORY_TABLE_NAME: HISTORY_TABLE,
}
"""Every table the stack creates, keyed by the environment variable that gives a function its name: a function
reads a table by listing that variable in its `environment`."""


@dataclass(frozen=True)
class TableAccess:
    """DynamoDB actions a function may call on one table, or on one of its indexes only."""

    table: str
    """The table's key in `TABLES` (the environment variable naming it)."""
    actions: tuple[str, ...]
    index: str | None = None
    """Grant on this global secondary index's ARN instead of the table's."""


@dataclass(frozen=True)
class Function:
    """One Lambda function: the handler module it runs, the environment it needs and what it may do."""

    name: str
    """Logical name, kebab-case friendly (`send-message`); Pulumi derives physical names from it."""
    module: str
    """Module under `handlers/` exposing `handler(event, context)`."""
    environment: tuple[str, ...]
    """Names of the environment variables (from `handlers.environment`) the function reads."""
    table_access: tuple[TableAccess, ...]
    """DynamoDB actions per table and index, least privilege (a transaction needs the actions of its items)."""
    callback_methods: tuple[str, ...]
    """HTTP methods of the `@connections` callback API the function calls (IAM `execute-api:ManageConnections`)."""
    libraries: tuple[str, ...] = ()
    """Top-level packages besides `handlers` that its zip ships, from the hashed wheels of `app/requirements/`."""
    fans_out: bool = False
    """Posts to every member of a room, so it gets `broadcastMemoryMb`: Lambda's CPU follows memory."""
    invokes_itself: bool = False
    """Splits a big broadcast across asynchronous invocations of itself (`handlers.fan_out`), so its role may
    `lambda:InvokeFunction` on its own ARN, and nothing else."""

    @property
    def handler(self) -> str:
        """The Lambda `handler` setting: dotted module path and function."""
        return f"{HANDLERS_PACKAGE}.{self.module}.handler"


_CONNECTIONS, _ROOMS, _HISTORY = environment.TABLE_NAME, environment.ROOMS_TABLE_NAME, environment.HISTORY_TABLE_NAME
# Posting to a room forgets members that answer 410: it reads the connection row (one still in its `$connect` is
# kept), then deletes it and the member rows (handlers.room_service).
_FORGET_GONE = (
    TableAccess(_CONNECTIONS, ("dynamodb:GetItem", "dynamodb:DeleteItem")),
    TableAccess(_ROOMS, ("dynamodb:DeleteItem",)),
)
_ROOM_ENVIRONMENT = (_CONNECTIONS, _ROOMS, environment.MAX_ROOMS, environment.ENDPOINT_URL)
_PRESENCE_ENVIRONMENT = (*_ROOM_ENVIRONMENT, environment.PRESENCE_MAX_MEMBERS)
"""The functions that announce joins and leaves (connect, disconnect, join, leave) or say whether they are (who)."""

CONNECT = Function(
    name="connect",
    module="connect",
    environment=_PRESENCE_ENVIRONMENT,
    # PutItem stores the row; the join transaction updates it and puts the member row and name claim; GetItem
    # rereads a row whose join failed; Query lists the members told of the newcomer; the room's presence-off row is
    # read with Query and written with PutItem.
    table_access=(
        TableAccess(
            _CONNECTIONS, ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        ),
        TableAccess(_ROOMS, ("dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query")),
    ),
    callback_methods=("POST",),
    fans_out=True,
)
DISCONNECT = Function(
    name="disconnect",
    module="disconnect",
    environment=_PRESENCE_ENVIRONMENT,
    # DeleteItem returns the row's rooms and removes its memberships and a room's presence-off row; Query lists the
    # members told it left.
    table_access=(*_FORGET_GONE, TableAccess(_ROOMS, ("dynamodb:Query",))),
    callback_methods=("POST",),
    fans_out=True,
)
SEND_MESSAGE = Function(
    name="send-message",
    module="send_message",
    environment=(
        *_ROOM_ENVIRONMENT,
        _HISTORY,
        environment.MAX_MESSAGE_BYTES,
        environment.HISTORY_RETENTION_DAYS,
        environment.BROADCAST_MAX_POSTS_PER_SECOND,
        environment.BROADCAST_SHARD_SIZE,
        environment.MESSAGE_RATE_PER_SECOND,
        environment.MESSAGE_BURST,
    ),
    # GetItem reads the sender's name, rooms and rate bucket, UpdateItem on its row takes a token from the bucket;
    # UpdateItem on the room takes its next number, Query lists the members, PutItem keeps the message in history.
    table_access=(
        *_FORGET_GONE,
        TableAccess(_CONNECTIONS, ("dynamodb:GetItem", "dynamodb:UpdateItem")),
        TableAccess(_ROOMS, ("dynamodb:Query", "dynamodb:UpdateItem")),
        TableAccess(_HISTORY, ("dynamodb:PutItem",)),
    ),
    callback_methods=("POST",),
    fans_out=True,
    invokes_itself=True,
)
JOIN = Function(
    name="join",
    module="join_room",
    environment=(*_PRESENCE_ENVIRONMENT, _HISTORY, environment.HISTORY_LIMIT),
    # Besides the join transaction and the member lists: PutItem and DeleteItem on rooms write and clear the room's
    # presence-off row.
    table_access=(
        *_FORGET_GONE,
        TableAccess(_CONNECTIONS, ("dynamodb:GetItem", "dynamodb:UpdateItem")),
        TableAccess(_ROOMS, ("dynamodb:PutItem", "dynamodb:Query")),
        TableAccess(_HISTORY, ("dynamodb:Query",)),
    ),
    callback_methods=("POST",),
    fans_out=True,
)
LEAVE = Function(
    name="leave",
    module="leave_room",
    environment=_PRESENCE_ENVIRONMENT,
    # DeleteItem on rooms (from forgetting gone members) also clears the room's presence-off row.
    table_access=(
        *_FORGET_GONE,
        TableAccess(_CONNECTIONS, ("dynamodb:GetItem", "dynamodb:UpdateItem")),
        TableAccess(_ROOMS, ("dynamodb:Query",)),
    ),
    callback_methods=("POST",),
    fans_out=True,
)
WHO = Function(
    name="who",
    module="list_members",
    environment=_PRESENCE_ENVIRONMENT,
    table_access=(TableAccess(_CONNECTIONS, ("dynamodb:GetItem",)), TableAccess(_ROOMS, ("dynamodb:Query",))),
    callback_methods=("POST",),
)
HISTORY = Function(
    name="history",
    module="read_history",
    environment=(*_ROOM_ENVIRONMENT, _HISTORY, environment.HISTORY_LIMIT),
    table_access=(TableAccess(_CONNECTIONS, ("dynamodb:GetItem",)), TableAccess(_HISTORY, ("dynamodb:Query",))),
    callback_methods=("POST",),
)
WHISPER = Function(
    name="whisper",
    module="whisper",
    environment=(*_ROOM_ENVIRONMENT, environment.MAX_MESSAGE_BYTES),
    # Query on the ByName index finds the recipients; DeleteItem removes a recipient that answered 410.
    table_access=(
        TableAccess(_CONNECTIONS, ("dynamodb:DeleteItem", "dynamodb:GetItem")),
        TableAccess(_CONNECTIONS, ("dynamodb:Query",), index=BY_NAME_INDEX.name),
    ),
    callback_methods=("POST",),
)
DEFAULT = Function(
    name="default",
    module="default",
    # MAX_MESSAGE_BYTES: its error frame tells the client the size limit `sendmessage` applies.
    environment=(environment.ENDPOINT_URL, environment.MAX_MESSAGE_BYTES),
    table_access=(),
    # Replies to the sender with an error frame naming the accepted actions.
    callback_methods=("POST",),
)
PUBLISH = Function(
    name="publish",
    module="publish",
    environment=(
        *_ROOM_ENVIRONMENT,
        _HISTORY,
        environment.MAX_MESSAGE_BYTES,
        environment.HISTORY_RETENTION_DAYS,
    ),
    table_access=(
        *_FORGET_GONE,
        TableAccess(_ROOMS, ("dynamodb:Query", "dynamodb:UpdateItem")),
        TableAccess(_HISTORY, ("dynamodb:PutItem",)),
    ),
    callback_methods=("POST",),
    fans_out=True,
)
"""Posts into a room for another service, which invokes it with IAM (`lambda:InvokeFunction`); no route."""

AUTHORIZER = Function(
    name="authorizer",
    module="authorizer",
    # The stack sets the ones of its mode: the secret's parameter, or the issuer's (docs/hardening.md).
    environment=(
        environment.TOKEN_SECRET_PARAMETER,
        environment.JWT_ISSUER,
        environment.JWT_AUDIENCE,
        environment.JWKS_URL,
        environment.JWT_NAME_CLAIM,
    ),
    table_access=(),
    callback_methods=(),
    libraries=("jwt", "cryptography", "cffi", "_cffi_backend", "pycparser"),
)
"""The Lambda REQUEST authorizer guarding `$connect`, deployed only when the stack's `auth` setting is `jwt`.
Besides logs it may read exactly one SSM parameter, the HS256 secret, and only in shared-secret mode."""

AUTHORIZER_ROUTE = "$connect"
"""API Gateway allows authorizers on `$connect` only."""

TOKEN_QUERY_PARAMETER = "token"
"""Browsers cannot set headers on a WebSocket, so the token travels in the query string (`?token=`)."""

TOKEN_HEADER = "Authorization"
"""A client that can set headers may send `Authorization: Bearer <token>` instead."""


@dataclass(frozen=True)
class Route:
    """A WebSocket route and the function that serves it."""

    key: str
    function: Function

    @property
    def logical_name(self) -> str:
        """Resource-name-safe form of the route key (`$connect` -> `connect`)."""
        return self.key.lstrip("$").lower()


ROUTES: tuple[Route, ...] = (
    Route("$connect", CONNECT),
    Route("$disconnect", DISCONNECT),
    Route("$default", DEFAULT),
    Route(protocol.SEND_MESSAGE.name, SEND_MESSAGE),
    Route(protocol.JOIN.name, JOIN),
    Route(protocol.LEAVE.name, LEAVE),
    Route(protocol.WHO.name, WHO),
    Route(protocol.HISTORY.name, HISTORY),
    Route(protocol.WHISPER.name, WHISPER),
)

INVOKED_FUNCTIONS: tuple[Function, ...] = (PUBLISH,)
"""Functions no route serves: other services invoke them directly, with their own IAM credentials."""

FUNCTIONS: tuple[Function, ...] = (*dict.fromkeys(route.function for route in ROUTES), *INVOKED_FUNCTIONS)
"""Every function a stack deploys, each once: those serving routes, in route order, then the invoked ones."""

ACTIONS: tuple[str, ...] = tuple(route.key for route in ROUTES if not route.key.startswith("$"))
"""The `action` values clients may send; `handlers.protocol.ACTIONS` declares each one's shape."""


def route(key: str) -> Route:
    """The route with this key, or KeyError."""
    for candidate in ROUTES:
        if candidate.key == key:
            return candidate
    raise KeyError(key)


TOKEN_VARIABLE = "CHAT_TOKEN"
"""Where the client (and `make smoke`) finds a token when `--token` is not given: an argument shows in `ps`."""

DEV_TOKEN_SECRET_VARIABLE = "CHAT_TOKEN_SECRET"
"""Where local tools find the HS256 secret (the emulator's SSM parameter, `python -m client token`); a deployed
stack keeps it in Pulumi config (`jwtSecret`)."""


def settings_environment(settings: StackSettings) -> dict[str, str]:
    """The environment variables whose values are stack settings, by name; the program and the emulator both
    give each function those of them it declares."""
    return {
        environment.MAX_MESSAGE_BYTES: str(settings.max_message_bytes),
        environment.BROADCAST_MAX_POSTS_PER_SECOND: str(settings.broadcast_max_posts_per_second),
        environment.BROADCAST_SHARD_SIZE: str(settings.broadcast_shard_size),
        environment.MESSAGE_RATE_PER_SECOND: repr(settings.message_rate_per_second),
        environment.MESSAGE_BURST: str(settings.message_burst),
        environment.MAX_ROOMS: str(settings.max_rooms_per_connection),
        environment.HISTORY_LIMIT: str(settings.history_limit),
        environment.HISTORY_RETENTION_DAYS: str(settings.history_retention_days),
        environment.PRESENCE_MAX_MEMBERS: str(settings.presence_max_members),
    }
