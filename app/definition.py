"""The chat application: its routes, the function serving each, the tables, and what each function may do.

The single source of truth: the Pulumi program and the emulator both read it, so it imports no Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import StackSettings
from handlers import environment, protocol

ROUTE_SELECTION_EXPRESSION = "$request.body.action"
"""API Gateway picks the route from the `action` field of each JSON message."""

HANDLERS_PACKAGE = "handlers"
"""The package zipped into every function; a function's handler is `handlers.<module>.handler`."""


@dataclass(frozen=True)
class Table:
    """The DynamoDB table of live connections."""

    logical_name: str
    hash_key: str
    ttl_attribute: str


CONNECTIONS_TABLE = Table(logical_name="connections", hash_key="ConnectionId", ttl_attribute="ExpiresAt")

TABLES: dict[str, Table] = {environment.TABLE_NAME: CONNECTIONS_TABLE}
"""Every table the stack creates, keyed by the environment variable that gives a function its name: a function
reads a table by listing that variable in its `environment`."""


@dataclass(frozen=True)
class Function:
    """One Lambda function: the handler module it runs, the environment it needs and what it may do."""

    name: str
    """Logical name, kebab-case friendly (`send-message`); Pulumi derives physical names from it."""
    module: str
    """Module under `handlers/` exposing `handler(event, context)`."""
    environment: tuple[str, ...]
    """Names of the environment variables (from `handlers.environment`) the function reads."""
    table_actions: tuple[str, ...]
    """DynamoDB actions on the connections table, least privilege."""
    callback_methods: tuple[str, ...]
    """HTTP methods of the `@connections` callback API the function calls (IAM `execute-api:ManageConnections`)."""
    libraries: tuple[str, ...] = ()
    """Top-level packages besides `handlers` that its zip ships (import names), installed from the pinned, hashed
    wheels listed in `app/requirements/<name>.txt` for the function's architecture (`infra/wheels.py`)."""
    fans_out: bool = False
    """Posts to every connection. Lambda gives CPU in proportion to memory and a broadcast is CPU-bound (one signed
    request per connection), so such a function gets the stack's `broadcastMemoryMb` instead of `lambdaMemoryMb`."""

    @property
    def handler(self) -> str:
        """The Lambda `handler` setting: dotted module path and function."""
        return f"{HANDLERS_PACKAGE}.{self.module}.handler"


CONNECT = Function(
    name="connect",
    module="connect",
    environment=(environment.TABLE_NAME,),
    table_actions=("dynamodb:PutItem",),
    callback_methods=(),
)
DISCONNECT = Function(
    name="disconnect",
    module="disconnect",
    environment=(environment.TABLE_NAME,),
    table_actions=("dynamodb:DeleteItem",),
    callback_methods=(),
)
SEND_MESSAGE = Function(
    name="send-message",
    module="send_message",
    environment=(
        environment.TABLE_NAME,
        environment.ENDPOINT_URL,
        environment.MAX_MESSAGE_BYTES,
        environment.BROADCAST_MAX_POSTS_PER_SECOND,
        environment.MESSAGE_RATE_PER_SECOND,
        environment.MESSAGE_BURST,
    ),
    # GetItem reads the sender's display name and rate bucket, UpdateItem takes a token from the bucket, Scan lists
    # the audience, DeleteItem removes stale connections.
    table_actions=("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Scan", "dynamodb:DeleteItem"),
    callback_methods=("POST",),
    fans_out=True,
)
DEFAULT = Function(
    name="default",
    module="default",
    # MAX_MESSAGE_BYTES: its error frame tells the client the size limit `sendmessage` applies.
    environment=(environment.ENDPOINT_URL, environment.MAX_MESSAGE_BYTES),
    table_actions=(),
    # Replies to the sender with an error frame naming the accepted actions.
    callback_methods=("POST",),
)

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
    table_actions=(),
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
)

FUNCTIONS: tuple[Function, ...] = tuple(dict.fromkeys(route.function for route in ROUTES))
"""The functions that serve routes, each once, in route order; every stack deploys them."""

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
"""Where local tools find the HS256 secret: the emulator seeds its SSM parameter from it and `python -m client token`
signs with it. A deployed stack keeps its secret in Pulumi config (`jwtSecret`)."""


def settings_environment(settings: StackSettings) -> dict[str, str]:
    """The environment variables whose values are stack settings, by name; the program and the emulator both
    give each function those of them it declares."""
    return {
        environment.MAX_MESSAGE_BYTES: str(settings.max_message_bytes),
        environment.BROADCAST_MAX_POSTS_PER_SECOND: str(settings.broadcast_max_posts_per_second),
        environment.MESSAGE_RATE_PER_SECOND: repr(settings.message_rate_per_second),
        environment.MESSAGE_BURST: str(settings.message_burst),
    }
