"""Seeded random bodies into `sendmessage` and `$default`: every one is answered, bad ones to the sender alone.

The bodies are built from random JSON values (odd types, deep nesting, control characters, lone surrogates), cut
at random points and sometimes base64-encoded; the seed is fixed so a failure repeats.
"""

from __future__ import annotations

import base64
import json
import random
import time
from typing import Any

import pytest

from handlers import broadcast, clients, default, send_message
from handlers.connections import ConnectionsTable
from handlers.history import HistoryTable
from handlers.room_service import RoomService
from handlers.rooms import Rooms
from tests.handlers.callback_server import CallbackServer
from tests.handlers.conftest import load_event

SENDER = "L0SM9cOFvHcCIhw="
LISTENER = "listener="
SAMPLES = 250
ALPHABET = 'ab \t\n\x00\x07\x1b"\\/\u00e9\u202e\U0001f600{}[]:,'


def random_value(chooser: random.Random, depth: int = 0) -> Any:
    kinds = ["string", "number", "bool", "null", "list", "object", "action"] if depth < 6 else ["string", "number"]
    kind = chooser.choice(kinds)
    if kind == "string":
        return "".join(chooser.choice(ALPHABET) for _ in range(chooser.randrange(0, 12)))
    if kind == "number":
        return chooser.choice([0, -1, 1.5, 10**40, float("nan"), float("inf")])
    if kind == "bool":
        return chooser.random() < 0.5
    if kind == "null":
        return None
    if kind == "list":
        return [random_value(chooser, depth + 1) for _ in range(chooser.randrange(0, 4))]
    if kind == "action":
        return {"action": "sendmessage", "message": random_value(chooser, depth + 1)}
    return {random_value_key(chooser): random_value(chooser, depth + 1) for _ in range(chooser.randrange(0, 4))}


def random_value_key(chooser: random.Random) -> str:
    return chooser.choice(["action", "message", "x", "", "\ud800", "sendmessage"])


def random_body(chooser: random.Random) -> tuple[str, bool]:
    """A body and whether it is base64-encoded (a binary frame)."""
    roll = chooser.random()
    if roll < 0.1:
        return chooser.choice(["[", "{"]) * chooser.randrange(500, 5000), False
    text = json.dumps(random_value(chooser), ensure_ascii=chooser.random() < 0.5)
    if roll < 0.35:
        text = text[: chooser.randrange(0, len(text) + 1)]
    if roll > 0.9:
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), True
    return text, False


@pytest.mark.parametrize("route", ["sendmessage", "$default"])
def test_random_bodies_are_all_answered(table: ConnectionsTable, callback_server: CallbackServer, route: str) -> None:
    rooms = Rooms(table.dynamodb, table.name, "rooms-test")
    for connection_id in (SENDER, LISTENER):
        rooms.join(table.add(connection_id, int(time.time() * 1000), None), "lobby", time.time())
    callback = clients.callback_api(callback_server.url)
    service = RoomService(rooms, callback, broadcast.Retry(), workers=2)
    history = HistoryTable(table.dynamodb, "history-test")
    chooser = random.Random(20261201)
    retry = broadcast.Retry()
    for number in range(SAMPLES):
        body, encoded = random_body(chooser)
        event = load_event("sendmessage", body=body, isBase64Encoded=encoded)
        before_sender, before_listener = len(callback_server.received(SENDER)), len(callback_server.received(LISTENER))
        if route == "sendmessage":
            fields = send_message.send_message(event, service, history, 16384)
        else:
            fields = default.reply_unroutable(event, callback, 16384, retry)
        sender_frames = callback_server.frames(SENDER)[before_sender:]
        listener_frames = callback_server.frames(LISTENER)[before_listener:]
        assert len(sender_frames) == 1, f"sample {number} ({body[:60]!r}): one answer to the sender, got {fields}"
        if sender_frames[0]["type"] == "error":
            assert listener_frames == [], f"sample {number} ({body[:60]!r}): an error reached another connection"
        else:
            assert route == "sendmessage" and listener_frames == sender_frames, f"sample {number}: {fields}"
