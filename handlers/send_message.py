"""`sendmessage`: validate the sender's message, then broadcast it to every live connection, the sender included.

An invalid message gets an error frame back to the sender alone and nothing is broadcast.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from handlers import broadcast, clients, config, protocol
from handlers.connections import ConnectionsTable
from handlers.invocation import handle
from handlers.rate_limit import RateLimit, RateLimiter

if TYPE_CHECKING:
    from handlers.callback_client import CallbackClient

RETRY = broadcast.Retry()
TIME_MARGIN_SECONDS = 1.0
"""Left over when retries stop: enough to tally, log and return before Lambda's timeout."""
DEFAULT_TIME_BUDGET_SECONDS = 25.0
"""The retry budget when the context cannot say how much time is left."""


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `sendmessage` route."""
    return handle(
        event,
        context,
        lambda: send_message(
            event,
            ConnectionsTable(clients.dynamodb(), config.table_name()),
            clients.callback_api(config.endpoint_url()),
            config.max_message_bytes(),
            retry=RETRY,
            rate_limiter=RateLimiter(
                clients.dynamodb(),
                config.table_name(),
                RateLimit(config.message_rate_per_second(), config.message_burst()),
            ),
            pacer=broadcast.Pacer(config.broadcast_max_posts_per_second()),
            time_budget_seconds=retry_budget_seconds(context),
        ),
    )


def retry_budget_seconds(context: object) -> float:
    """How long the broadcast may keep retrying: the invocation's remaining time less a margin for the log line."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return max(0.0, remaining() / 1000 - TIME_MARGIN_SECONDS) if callable(remaining) else DEFAULT_TIME_BUDGET_SECONDS


def send_message(
    event: dict[str, Any],
    table: ConnectionsTable,
    callback_api: CallbackClient,
    max_message_bytes: int,
    *,
    retry: broadcast.Retry,
    workers: int = broadcast.WORKERS,
    rate_limiter: RateLimiter | None = None,
    pacer: broadcast.Pacer | None = None,
    time_budget_seconds: float = DEFAULT_TIME_BUDGET_SECONDS,
) -> dict[str, Any]:
    """Broadcast the message, or reply with an error frame; returns the fields for the invocation's log line."""
    request = event["requestContext"]
    sender = request["connectionId"]
    try:
        text = protocol.chat_message(event, max_message_bytes)
        sender_name = table.display_name(sender) or sender
        sent_at_ms = int(request.get("requestTimeEpoch") or time.time() * 1000)
        frame = protocol.message_frame(text, sender_name, sender, sent_at_ms)
    except protocol.InvalidMessageError as problem:
        reply = protocol.error_frame(
            str(problem), request.get("requestId", ""), max_message_bytes, protocol.SEND_MESSAGE
        )
        outcome = broadcast.post(callback_api, sender, reply, retry)
        return {"rejected": str(problem), "reply": outcome, "delivered": 0, "staleRemoved": 0, "failed": 0}
    if rate_limiter is not None and (wait := rate_limiter.take(sender, time.time() * 1000)) > 0:
        return _refuse_flood(
            request,
            rate_limiter.limit,
            wait,
            callback_api=callback_api,
            max_message_bytes=max_message_bytes,
            retry=retry,
        )
    result = broadcast.broadcast(
        table.live_connection_ids(time.time()),
        frame,
        callback_api,
        table.remove,
        retry=retry,
        workers=workers,
        pacer=pacer,
        time_budget_seconds=time_budget_seconds,
    )
    return {
        "delivered": result.delivered,
        "staleRemoved": result.stale_removed,
        "failed": result.failed,
        "errors": dict(result.errors),
        "retries": dict(result.retries),
    }


def _refuse_flood(
    request: dict[str, Any],
    limit: RateLimit,
    wait_seconds: float,
    *,
    callback_api: CallbackClient,
    max_message_bytes: int,
    retry: broadcast.Retry,
) -> dict[str, Any]:
    """Tell a sender over its rate limit when to retry; nothing is broadcast."""
    retry_after_ms = max(1, math.ceil(wait_seconds * 1000))
    reason = (
        f"too many messages: a connection may send {limit.per_second:g} per second ({limit.burst} at once); "
        f"retry in {retry_after_ms / 1000:.3g} s"
    )
    reply = protocol.error_frame(
        reason, request.get("requestId", ""), max_message_bytes, protocol.SEND_MESSAGE, retry_after_ms=retry_after_ms
    )
    outcome = broadcast.post(callback_api, request["connectionId"], reply, retry)
    return {"rejected": "rate limited", "retryAfterMs": retry_after_ms, "reply": outcome, "delivered": 0, "failed": 0}
