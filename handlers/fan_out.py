"""Fan-out of a big room's broadcast across parallel invocations of this function, one slice range each.

A small room costs no extra read or invocation; a big one is split into disjoint slice ranges handed to asynchronous
invocations, and a part that cannot be handed over is posted here, so nothing is lost (docs/handlers.md).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.rooms import MEMBER_SLICES, Rooms, member_slice_of_entry

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

EVENT_KEY = "fanOutShard"
"""The key of a shard invocation's event; API Gateway's events never carry it."""
MAX_SHARDS = 8
"""Parts one broadcast is split into at most: new accounts run 10 invocations at once, this one included."""


@dataclass(frozen=True)
class Shard:
    """One part of a room's broadcast: its slice range, the frame, whom to leave out, and its pace."""

    room: str
    part: int
    parts: int
    frame: bytes
    skip: frozenset[str]
    posts_per_second: float

    def to_event(self) -> dict[str, Any]:
        """The event of the invocation that posts this part (the frame base64: it is bytes)."""
        return {
            EVENT_KEY: {
                "room": self.room,
                "part": self.part,
                "parts": self.parts,
                "frame": base64.b64encode(self.frame).decode("ascii"),
                "skip": sorted(self.skip),
                "postsPerSecond": self.posts_per_second,
            }
        }

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Shard:
        """The shard an invocation's event describes; ValueError when it is not one."""
        try:
            body = event[EVENT_KEY]
            shard = cls(
                room=str(body["room"]),
                part=int(body["part"]),
                parts=int(body["parts"]),
                frame=base64.b64decode(body["frame"], validate=True),
                skip=frozenset(str(connection_id) for connection_id in body["skip"]),
                posts_per_second=float(body["postsPerSecond"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a fan-out shard event: {error!r}") from None
        if not (1 <= shard.parts <= MEMBER_SLICES and 0 <= shard.part < shard.parts and shard.posts_per_second > 0):
            raise ValueError(f"a shard's part, parts and pace are out of range: {shard.part}, {shard.parts}")
        return shard


@dataclass(frozen=True)
class Plan:
    """How one broadcast goes: the pages this invocation posts, and the parts handed to other invocations."""

    pages: Iterator[list[str]]
    handed_over: list[Shard]
    parts: int


def plan(
    rooms: Rooms,
    room: str,
    now_seconds: float,
    *,
    frame: bytes,
    skip: frozenset[str],
    shard_size: int,
    max_posts_per_second: float,
    hand_over: Callable[[list[Shard]], list[Shard]] | None,
) -> Plan:
    """Read the room's first page; a small room is that page, a big one is split (see the module docstring)."""
    first, last_entry = rooms.first_member_page(room, now_seconds, shard_size)
    if last_entry is None or hand_over is None:
        rest = rooms.member_ids_after(room, now_seconds, last_entry) if last_entry is not None else iter(())
        return Plan(_chain([first], rest), [], 1)
    covered = member_slice_of_entry(last_entry) + 1
    estimated = shard_size * MEMBER_SLICES / covered
    parts = max(2, min(MAX_SHARDS, math.ceil(estimated / shard_size)))
    pace = max_posts_per_second / parts
    others = [Shard(room, part, parts, frame, skip, pace) for part in range(1, parts)]
    not_handed = hand_over(others)
    own = [rooms.member_ids_in_part(room, now_seconds, 0, parts)]
    own += [rooms.member_ids_in_part(room, now_seconds, shard.part, parts) for shard in not_handed]
    handed = [shard for shard in others if shard not in not_handed]
    return Plan(_chain(*own), handed, parts)


def _chain(*sources: Iterator[list[str]] | list[list[str]]) -> Iterator[list[str]]:
    for source in sources:
        yield from source


def lambda_hand_over(lambda_client: LambdaClient, function_name: str) -> Callable[[list[Shard]], list[Shard]]:
    """Hand shards to asynchronous invocations of `function_name`, in parallel; returns those it could not."""

    def invoke(shard: Shard) -> Shard | None:
        try:
            lambda_client.invoke(
                FunctionName=function_name, InvocationType="Event", Payload=json.dumps(shard.to_event()).encode()
            )
        except (ClientError, BotoCoreError):
            return shard
        return None

    def hand_over(shards: list[Shard]) -> list[Shard]:
        if not shards:
            return []
        with ThreadPoolExecutor(max_workers=len(shards), thread_name_prefix="fan-out") as pool:
            return [shard for shard in pool.map(invoke, shards) if shard is not None]

    return hand_over
