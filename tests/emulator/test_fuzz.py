"""Hostile frames through the local cloud with the REAL handlers: every text frame gets an answer, to its sender alone.

Malformed JSON, odd types, nesting past the parser's depth, control characters, duplicate keys and near-limit sizes
are sent one at a time; each must be answered with exactly one frame (an error frame, or the broadcast of a valid
message), never `Internal server error` and never silence. A listener on another connection must get only the
broadcasts of the valid ones, while other clients connect and vanish around them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import ClientConnection, connect

from emulator.testing import RunningEmulator, running_emulator

ANSWER_TIMEOUT_SECONDS = 20.0


def chat(message: Any) -> str:
    return json.dumps({"action": "sendmessage", "message": message})


HOSTILE = [
    "",
    " ",
    "\x00",
    "{",
    "}",
    "[" * 1000,
    "[" * 30_000,
    '{"action": ' + "[" * 20_000,
    '{"a": ' * 3000 + "1" + "}" * 3000,
    '{"action": "sendmessage", "message": {"deep": ' + "[" * 5000 + "]" * 5000 + "}}",
    "null",
    "true",
    "1e999999",
    "9" * 5000,
    '"just a string"',
    '{"action": null}',
    '{"action": 1}',
    '{"action": ["sendmessage"]}',
    '{"action": {"sendmessage": true}}',
    '{"action": "$connect"}',
    '{"action": "$default"}',
    '{"action": "sendmessage"}',
    '{"action": "sendmessage", "message": null}',
    '{"action": "sendmessage", "message": NaN}',
    '{"action": "sendmessage", "message": "\\ud800"}',
    '{"action": "sendmessage", "message": "ok"} trailing',
    "\ufeff" + chat("after a byte order mark"),
    chat("x" * 20_000),
    chat('"' * 16_350),
    chat(" \t\n "),
]
"""Frames that must each get an error frame."""

VALID = [
    chat("\x00\x07\x1b[31mcontrol characters\x1b[0m"),
    chat("emoji \U0001f600 and \u202e right-to-left"),
    '{"action": "sendmessage", "message": "first", "message": "duplicate key: the last one wins"}',
    chat("x" * 16_000),
]
"""Frames that are valid messages: each is broadcast, to the sender too."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    # Unwarmed: the frames reach only a few of the 10 functions, and a cold start fits well in ANSWER_TIMEOUT_SECONDS.
    with running_emulator(extra_args=("--function-timeout", "10", "--no-prewarm")) as running:
        yield running


def join(emulator: RunningEmulator, name: str) -> ClientConnection:
    client: ClientConnection = connect(
        f"{emulator.ws_url}?name={name}", proxy=None, compression=None, open_timeout=15, max_size=None, legacy=True
    )
    return client


def answer(client: ClientConnection) -> dict[str, Any]:
    """The next frame that is not a presence event (the churning clients join and leave the lobby)."""
    while True:
        document: dict[str, Any] = json.loads(client.recv(timeout=ANSWER_TIMEOUT_SECONDS))
        if document.get("type") != "presence":
            return document


def test_every_hostile_frame_is_answered_to_its_sender_alone(emulator: RunningEmulator) -> None:
    with join(emulator, "fuzzer") as fuzzer, join(emulator, "listener") as listener:
        answers: dict[str, dict[str, Any]] = {}
        for number, frame in enumerate(HOSTILE + VALID):
            if number % 5 == 0:  # churn: a client that joins and vanishes while frames are handled
                join(emulator, f"churn{number}").close()
            fuzzer.send(frame)
            answers[frame] = answer(fuzzer)
        fuzzer.send(chat("sentinel"))
        assert answer(fuzzer)["message"] == "sentinel", "the sentinel comes back after every other answer"

        heard: list[dict[str, Any]] = []
        while not heard or heard[-1].get("message") != "sentinel":
            heard.append(answer(listener))

    unanswered = {frame[:40]: reply for frame, reply in answers.items() if "Internal server error" in str(reply)}
    assert not unanswered, f"no frame may crash a handler: {unanswered}"
    wrong = {
        frame[:40]: str(reply)[:200]
        for frame, reply in answers.items()
        if frame in HOSTILE and reply.get("type") != "error"
    }
    assert not wrong, f"every hostile frame gets an error frame: {wrong}"
    broadcast = [answers[frame] for frame in VALID]
    assert all(reply.get("type") == "message" for reply in broadcast), f"valid frames are broadcast: {broadcast}"
    assert [frame["type"] for frame in heard] == ["message"] * (len(VALID) + 1), (
        f"the listener hears the valid messages and nothing of the errors: {[frame.get('type') for frame in heard]}"
    )
    assert [frame["message"] for frame in heard[:-1]] == [reply["message"] for reply in broadcast], (
        "the listener gets the same messages the sender does"
    )
