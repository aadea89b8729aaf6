"""What the room handlers share: posting to one connection, posting to a room's members, presence announcements.

A member whose post answers 410 is forgotten everywhere by idempotent deletes, so a connection that vanished
without `$disconnect` stops costing posts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handlers import aws_facts, broadcast, clients, config, fan_out, protocol, room_frames
from handlers.connections import CONNECTION_TTL_SECONDS, Connection
from handlers.history import HistoryTable
from handlers.rooms import Rooms

if TYPE_CHECKING:
    from handlers.callback_client import CallbackClient


PRESENCE_OFF_SLACK = 1_000
"""A crossing's presence-off reaches at most twice the cap plus this many: a real crossing holds the cap and the joins
that crossed with it, and a room far past the cap with no marker (presence just turned on, the cap lowered, an
upgrade) must not cost a post per member inside a handshake."""

CONNECT_GRACE = aws_facts.INTEGRATION_TIMEOUT_SECONDS + 1.0
"""Seconds after connecting during which a 410 does not remove a member: its `$connect` may still run, and API
Gateway answers 410 for a connection whose handshake has not completed."""


@dataclass
class RoomService:
    """A room handler's collaborators: the rooms, the callback API and its retry policy."""

    rooms: Rooms
    callback_api: CallbackClient
    retry: broadcast.Retry
    workers: int = broadcast.WORKERS
    clock: Callable[[], float] = time.time
    pacer: broadcast.Pacer | None = None
    """Caps the posts per second of every broadcast this service makes; None leaves them uncapped."""
    time_budget_seconds: float = 25.0
    """How long a broadcast keeps retrying before it gives up on the connections left."""
    shard_size: int | None = None
    """Members above which a room's broadcast is split across invocations (`handlers.fan_out`); None never splits."""
    hand_over: Callable[[list[fan_out.Shard]], list[fan_out.Shard]] | None = None
    """Starts the invocations that post the other parts; returns the parts it could not hand over."""
    presence_max_members: int = config.DEFAULT_PRESENCE_MAX_MEMBERS
    """The largest room whose joins and leaves are announced; a bigger room hears of none (`presence_audience`)."""

    def reply(self, connection_id: str, frame: bytes) -> str:
        """Post one frame to one connection: `delivered`, `gone` or an error code."""
        return broadcast.post(self.callback_api, connection_id, frame, self.retry)

    def to_room(self, room: str, frame: bytes, skip: frozenset[str] = frozenset()) -> broadcast.BroadcastResult:
        """Post `frame` to every member of `room` but those in `skip`; gone members are forgotten.

        With `shard_size` set, a big room is split and the other parts are handed to other invocations.
        """
        pages, pacer, handed_over = self.rooms.member_ids(room, self.clock()), self.pacer, 0
        if self.shard_size is not None:
            cap = self.pacer.ceiling if self.pacer is not None else float(config.broadcast_max_posts_per_second())
            planned = fan_out.plan(
                self.rooms,
                room,
                self.clock(),
                frame=frame,
                skip=skip,
                shard_size=self.shard_size,
                max_posts_per_second=cap,
                hand_over=self.hand_over,
            )
            pages, handed_over = planned.pages, len(planned.handed_over)
            if handed_over:  # this invocation's share of the cap, like every other part's
                pacer = broadcast.Pacer(cap / planned.parts)
        result = self._broadcast(room, pages, frame, pacer, skip)
        result.shards_handed_over = handed_over
        return result

    def post_shard(self, shard: fan_out.Shard) -> broadcast.BroadcastResult:
        """Post a shard's frame to its part of the room (an invocation `to_room` started)."""
        pages = self.rooms.member_ids_in_part(shard.room, self.clock(), shard.part, shard.parts)
        return self._broadcast(shard.room, pages, shard.frame, broadcast.Pacer(shard.posts_per_second), shard.skip)

    def _broadcast(
        self,
        room: str,
        pages: Iterator[list[str]],
        frame: bytes,
        pacer: broadcast.Pacer | None,
        skip: frozenset[str],
    ) -> broadcast.BroadcastResult:
        def gone(connection_id: str) -> None:
            connection = self.rooms.connection(connection_id)
            if connection is not None and connection.expires_at - CONNECTION_TTL_SECONDS > self.clock() - CONNECT_GRACE:
                return  # still in its `$connect`: API Gateway answers 410 until the handshake completes
            self.rooms.forget(connection_id)
            # The connection row may already be gone (its `$disconnect` ran) while this member row lingered.
            self.rooms.remove_member(connection_id, room)

        return broadcast.broadcast(
            pages,
            frame,
            self.callback_api,
            gone,
            retry=self.retry,
            workers=self.workers,
            pacer=pacer,
            time_budget_seconds=self.time_budget_seconds,
            skip=skip,
        )

    def presence_audience(self, room: str, connection: Connection) -> PresenceAudience:
        """Who hears that `connection` joined or left `room`: one bounded read, never the whole room."""
        if self.presence_max_members == 0:
            return PresenceAudience(others=[], live=False)
        skip = frozenset({connection.connection_id})
        # One more than fits tells "exactly one too many" (the join that ends presence) from "far too many".
        others = self.rooms.some_member_ids(room, self.clock(), self.presence_max_members + 1, skip)
        return PresenceAudience(others=others, live=len(others) < self.presence_max_members)

    def announce(
        self, room: str, event: str, connection: Connection, audience: PresenceAudience | None = None
    ) -> broadcast.BroadcastResult:
        """Tell the room's other members that `connection` joined or left, if the room is small enough for presence.

        A join that finds the room past `presence_max_members` tells the others presence is off instead (once per
        crossing, `presence_off`); a leave that finds the room back within the cap clears that crossing's marker.
        """
        audience = audience if audience is not None else self.presence_audience(room, connection)
        # The room without the leaver, so one back at exactly the cap (not announced: it counts the leaver) is live.
        within_cap = self.presence_max_members > 0 and len(audience.others) <= self.presence_max_members
        if event == "left" and within_cap and self.rooms.presence_off_marked(room):
            self.rooms.clear_presence_off(room)
        if not audience.live:
            if event == "joined":
                return self.presence_off(room, frozenset({connection.connection_id}))
            return broadcast.BroadcastResult()
        frame = room_frames.presence_frame(room, event, connection.sender_name, connection.connection_id)
        return self._broadcast(room, iter([audience.others]), frame, self.pacer, frozenset())

    def presence_off(self, room: str, skip: frozenset[str]) -> broadcast.BroadcastResult:
        """Tell the room's members but `skip` that presence is off, unless another join has since the last crossing.

        The marker's conditional write picks one teller however many joins cross at once. It posts past the presence
        audience, since the members once told the room was live may be anywhere in it, but within a bound
        (`PRESENCE_OFF_SLACK`).
        """
        if self.presence_max_members == 0 or self.rooms.presence_off_marked(room):
            return broadcast.BroadcastResult()
        if not self.rooms.mark_presence_off(room):
            return broadcast.BroadcastResult()
        reach = 2 * self.presence_max_members + PRESENCE_OFF_SLACK
        members = self.rooms.some_member_ids(room, self.clock(), reach, skip)
        frame = room_frames.presence_off_frame(room, self.presence_max_members)
        return self._broadcast(room, iter([members]), frame, self.pacer, frozenset())

    def confirm_live(self, room: str, connection: Connection) -> broadcast.BroadcastResult:
        """After `connection` was told its room is live: clear a marker left from when the room was bigger.

        If the room has crossed the cap since the count, presence-off goes to every member now, `connection` too:
        posted after its answer, so that is what it sees last.
        """
        if self.presence_max_members == 0 or not self.rooms.presence_off_marked(room):
            return broadcast.BroadcastResult()
        self.rooms.clear_presence_off(room)
        if self.presence_audience(room, connection).live:
            return broadcast.BroadcastResult()
        return self.presence_off(room, frozenset())


@dataclass(frozen=True)
class PresenceAudience:
    """The outcome of `RoomService.presence_audience`."""

    others: list[str]
    """Up to `presence_max_members + 1` of the room's other members."""
    live: bool
    """The room, the subject included, has at most `presence_max_members`: its joins and leaves are announced."""


def broadcast_fields(result: broadcast.BroadcastResult) -> dict[str, object]:
    """A broadcast's counts for the invocation's log line."""
    return {
        "delivered": result.delivered,
        "staleRemoved": result.stale_removed,
        "failed": result.failed,
        "errors": dict(result.errors),
        "retries": dict(result.retries),
        "shardsHandedOver": result.shards_handed_over,
    }


def from_environment(
    retry: broadcast.Retry, presence_max_members: int = config.DEFAULT_PRESENCE_MAX_MEMBERS
) -> RoomService:
    """The service over the function's own clients and tables (read from its environment).

    The functions that announce joins and leaves pass `config.presence_max_members()`.
    """
    return RoomService(
        rooms=Rooms(clients.dynamodb(), config.table_name(), config.rooms_table_name(), config.max_rooms()),
        callback_api=clients.callback_api(config.endpoint_url()),
        retry=retry,
        presence_max_members=presence_max_members,
    )


def refuse(
    service: RoomService,
    event: dict[str, Any],
    problem: protocol.InvalidMessageError,
    action: protocol.Action,
    max_bytes: int,
) -> dict[str, Any]:
    """Send the sender an error frame for `problem`; the log fields carry its reason code, never client text."""
    request = event["requestContext"]
    frame = protocol.error_frame(str(problem), request.get("requestId", ""), max_bytes, action)
    return {"rejected": problem.code, "reply": service.reply(request["connectionId"], frame)}


def sender(service: RoomService, event: dict[str, Any]) -> Connection:
    """The sending connection's row; InvalidMessageError `connection-gone` when it no longer exists."""
    connection = service.rooms.connection(event["requestContext"]["connectionId"])
    if connection is None:
        raise connection_gone()
    return connection


def connection_gone() -> protocol.InvalidMessageError:
    """The error for a request from a connection whose row no longer exists."""
    return protocol.InvalidMessageError("this connection is closing; reconnect", "connection-gone")


def require_member(connection: Connection, room: str) -> None:
    """InvalidMessageError `not-member` unless the connection is in `room`."""
    if room not in connection.rooms:
        raise not_member(room)


def not_member(room: str) -> protocol.InvalidMessageError:
    """The error for a request about a room the sender is not in."""
    return protocol.InvalidMessageError(
        f'you are not a member of "{room}"; send {{"action": "join", "room": "{room}"}} first', "not-member"
    )


def post_message(
    service: RoomService,
    history: HistoryTable,
    *,
    room: str,
    text: str,
    sender_name: str,
    sender_id: str | None,
    sent_at_ms: int,
) -> dict[str, Any]:
    """Number, store and post one accepted message (`sendmessage` and `publish`); returns the log fields."""
    seq = service.rooms.next_sequence(room)
    frame = protocol.message_frame(text, sender_name, sender_id, sent_at_ms, room=room, seq=seq)
    # Stored before it is posted, so anyone who saw it can also find it in history.
    history.append(room, seq, frame, sent_at_ms / 1000)
    result = service.to_room(room, frame)
    return {"seq": seq, **broadcast_fields(result)}
