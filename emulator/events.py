"""Lambda proxy events for WebSocket routes, shaped exactly like API Gateway's.

`requestTime` uses English month names whatever the locale, as API Gateway does.
"""

from __future__ import annotations

import base64
import secrets
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def new_id() -> str:
    """A connection, request or message id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`): 11 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(11)).decode("ascii")


def new_api_id() -> str:
    """An API id like `a1b2c3d4e5`: ten lower-case letters and digits."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(10))


def now_ms() -> int:
    """The current time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def request_time(epoch_ms: int) -> str:
    """`26/Nov/2026:00:35:05 +0000`, API Gateway's `requestTime` format."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return f"{moment.day:02d}/{MONTHS[moment.month - 1]}/{moment.year}:{moment:%H:%M:%S} +0000"


def iso_time(epoch_ms: int) -> str:
    """ISO 8601 with milliseconds in UTC, as the `@connections` GET answer gives its times."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def trace_id(epoch_ms: int) -> str:
    """An X-Ray trace header value like the one API Gateway adds to `$connect` headers."""
    return f"Root=1-{epoch_ms // 1000:08x}-{secrets.token_hex(12)}"


@dataclass(frozen=True)
class Api:
    """The emulated API and stage."""

    api_id: str
    stage: str
    domain_name: str


@dataclass(frozen=True)
class Peer:
    """Who opened a connection, as `requestContext.identity` reports it."""

    connection_id: str
    connected_at_ms: int
    source_ip: str
    user_agent: str


def request_context(
    api: Api,
    peer: Peer,
    *,
    route_key: str,
    event_type: str,
    request_id: str,
    epoch_ms: int,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `requestContext` common to every event type."""
    context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(epoch_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": peer.connected_at_ms,
        "requestTimeEpoch": epoch_ms,
        "identity": {"sourceIp": peer.source_ip, "userAgent": peer.user_agent},
        "requestId": request_id,
        "domainName": api.domain_name,
        "connectionId": peer.connection_id,
        "apiId": api.api_id,
    }
    if authorizer is not None:
        context["authorizer"] = dict(authorizer)
    return context


def connect_event(
    api: Api,
    peer: Peer,
    *,
    request_id: str,
    headers: Sequence[tuple[str, str]],
    query: Sequence[tuple[str, str]],
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `$connect` event: headers (single and multi-valued) and, when there is one, the query string."""
    event: dict[str, Any] = {
        "headers": {name: value for name, value in headers},
        "multiValueHeaders": _multi(headers),
        "requestContext": request_context(
            api,
            peer,
            route_key="$connect",
            event_type="CONNECT",
            request_id=request_id,
            epoch_ms=peer.connected_at_ms,
            authorizer=authorizer,
        ),
        "isBase64Encoded": False,
    }
    if query:
        # API Gateway keeps the last value of a repeated parameter in the single-valued map.
        event["queryStringParameters"] = {name: value for name, value in query}
        event["multiValueQueryStringParameters"] = _multi(query)
    return event


def message_event(
    api: Api,
    peer: Peer,
    *,
    route_key: str,
    request_id: str,
    message_id: str,
    body: str,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A MESSAGE event: the frame's text as `body`, with its own `messageId`."""
    context = request_context(
        api,
        peer,
        route_key=route_key,
        event_type="MESSAGE",
        request_id=request_id,
        epoch_ms=now_ms(),
        authorizer=authorizer,
    )
    context["messageId"] = message_id
    return {"requestContext": context, "body": body, "isBase64Encoded": False}


def disconnect_event(
    api: Api,
    peer: Peer,
    *,
    request_id: str,
    status_code: int,
    reason: str,
    authorizer: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `$disconnect` event, with the close code and reason (observed on AWS, not documented)."""
    context = request_context(
        api,
        peer,
        route_key="$disconnect",
        event_type="DISCONNECT",
        request_id=request_id,
        epoch_ms=now_ms(),
        authorizer=authorizer,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {"requestContext": context, "isBase64Encoded": False}


def _multi(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped
