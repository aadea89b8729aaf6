"""`sendmessage`: validate the message, number it in its room, keep it in history and post it to the room's members.

A plain `{"action": "sendmessage", "message": ...}` goes to `lobby`. A sender who is not a member of the room, whose
message is invalid, or who is over its rate limit gets an error frame back alone: nothing is numbered, stored or sent.
"""

from __future__ import annotations

import math
import time
from typing import Any

from handlers import broadcast, clients, config, display_name, fan_out, protocol, room_service
from handlers.connections import Connection
from handlers.history import HistoryTable
from handlers.invocation import handle
from handlers.rate_limit import RateLimit, RateLimiter
from handlers.room_service import RoomService

RETRY = broadcast.Retry()
LARGEST_SEQ = 2**53
"""A number at least as long as any room's sequence reaches: frames are checked at their widest."""
LONGEST_NAME = "\U0001f600" * display_name.MAX_DISPLAY_NAME_CHARS
"""Encodes to as many bytes as any display name can: its most characters, each of the most UTF-8 bytes (4), none
of which JSON escapes (printable only)."""
TIME_MARGIN_SECONDS = 1.0
"""Left over when retries stop: enough to tally, log and return before Lambda's timeout."""
DEFAULT_TIME_BUDGET_SECONDS = 25.0
"""The retry budget when the context cannot say how much time is left."""


def handler(event: dict[str, Any], context: object) -> dict[str, int]:
    """Lambda entry point for the `sendmessage` route."""

    def serve() -> dict[str, Any]:
        service = room_service.from_environment(RETRY)
        service.time_budget_seconds = retry_budget_seconds(context)
        if fan_out.EVENT_KEY in event:  # one part of a big room's broadcast, handed over by another invocation
            return room_service.broadcast_fields(service.post_shard(fan_out.Shard.from_event(event)))
        service.pacer = broadcast.Pacer(config.broadcast_max_posts_per_second())
        service.shard_size = config.broadcast_shard_size()
        own_name = config.function_name()
        if own_name is not None:
            service.hand_over = fan_out.lambda_hand_over(clients.lambda_api(), own_name)
        return send_message(
            event,
            service,
            HistoryTable(clients.dynamodb(), config.history_table_name(), config.history_retention_days()),
            config.max_message_bytes(),
            rate_limiter=RateLimiter(
                clients.dynamodb(),
                config.table_name(),
                RateLimit(config.message_rate_per_second(), config.message_burst()),
            ),
        )

    return handle(event, context, serve)


def retry_budget_seconds(context: object) -> float:
    """How long the broadcast may keep retrying: the invocation's remaining time less a margin for the log line."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return max(0.0, remaining() / 1000 - TIME_MARGIN_SECONDS) if callable(remaining) else DEFAULT_TIME_BUDGET_SECONDS


def send_message(
    event: dict[str, Any],
    service: RoomService,
    history: HistoryTable,
    max_message_bytes: int,
    *,
    rate_limiter: RateLimiter | None = None,
) -> dict[str, Any]:
    """Post the message to its room, or reply with an error frame; returns the fields for the log line."""
    request = event["requestContext"]
    connection_id = request["connectionId"]
    try:
        room, text = protocol.chat_message(event, max_message_bytes)
        sent_at_ms = int(request.get("requestTimeEpoch") or time.time() * 1000)
        if rate_limiter is not None and _fits_every_name(text, connection_id, sent_at_ms, room):
            # No name can push the frame past the limit, so the token can be taken before the row is read.
            sender, wait = _admit(rate_limiter, connection_id, room)
        else:
            sender = room_service.sender(service, event)
            room_service.require_member(sender, room)
            _frame_fits(text, sender, sent_at_ms, room)
            # The bucket is in the sender's row, read above: the limiter needs no read of its own.
            wait = (
                rate_limiter.take_after_read(connection_id, sender.rate_tat, time.time() * 1000)
                if rate_limiter
                else 0.0
            )
    except protocol.InvalidMessageError as problem:
        return room_service.refuse(service, event, problem, protocol.SEND_MESSAGE, max_message_bytes)
    if rate_limiter is not None and wait > 0:
        return _refuse_flood(service, request, rate_limiter.limit, wait, max_message_bytes)
    return room_service.post_message(
        service,
        history,
        room=room,
        text=text,
        sender_name=sender.sender_name,
        sender_id=sender.connection_id,
        sent_at_ms=sent_at_ms,
    )


def _admit(rate_limiter: RateLimiter, connection_id: str, room: str) -> tuple[Connection, float]:
    """The sender's row and its wait, from one conditional write that also checks its membership."""
    taken = rate_limiter.take_as_member(connection_id, room, time.time() * 1000)
    if taken.row is None:
        raise room_service.connection_gone()
    if not taken.member:
        raise room_service.not_member(room)
    return Connection.from_item(taken.row), taken.wait


def _frame_fits(text: str, sender: Connection, sent_at_ms: int, room: str) -> None:
    """InvalidMessageError `frame-too-large` unless the message's frame fits, whatever number it gets.

    Checked before a number is taken: a refused message must leave no gap in the room's sequence.
    """
    protocol.message_frame(text, sender.sender_name, sender.connection_id, sent_at_ms, room=room, seq=LARGEST_SEQ)


def _fits_every_name(text: str, connection_id: str, sent_at_ms: int, room: str) -> bool:
    """Whether the frame fits however long the sender's name (`$connect` stores at most `LONGEST_NAME`'s bytes)."""
    # A sender without a name is shown by its connection id: the longer of the two bounds the frame.
    widest = max((LONGEST_NAME, connection_id), key=lambda name: len(name.encode("utf-8")))
    try:
        protocol.message_frame(text, widest, connection_id, sent_at_ms, room=room, seq=LARGEST_SEQ)
    except protocol.InvalidMessageError:
        return False
    return True


def _refuse_flood(
    service: RoomService, request: dict[str, Any], limit: RateLimit, wait_seconds: float, max_message_bytes: int
) -> dict[str, Any]:
    """Tell a sender over its rate limit when to retry; nothing is numbered or sent."""
    retry_after_ms = max(1, math.ceil(wait_seconds * 1000))
    reason = (
        f"too many messages: a connection may send {limit.per_second:g} per second ({limit.burst} at once); "
        f"retry in {retry_after_ms / 1000:.3g} s"
    )
    reply = protocol.error_frame(
        reason, request.get("requestId", ""), max_message_bytes, protocol.SEND_MESSAGE, retry_after_ms=retry_after_ms
    )
    outcome = service.reply(request["connectionId"], reply)
    return {"rejected": "rate-limited", "retryAfterMs": retry_after_ms, "reply": outcome, "delivered": 0, "failed": 0}
