"""Parsing and rendering of server frames in the command-line client (no network)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from client.frames import (
    ChatMessage,
    GatewayError,
    ServerError,
    UnknownFrame,
    format_message,
    format_problem,
    parse_frame,
    printable,
)

ENVELOPE = {
    "type": "message",
    "id": "0f8e3c1b2a6d4e5f8a9b0c1d2e3f4a5b",
    "message": "hello",
    "from": "alice",
    "connectionId": "L0SM9cOFvHcCIhw=",
    "sentAt": "2026-11-26T00:35:05.123Z",
}
ERROR_TEXT = "The message is 20000 UTF-8 bytes; at most 16384 are accepted."
ERROR_FRAME = {
    "type": "error",
    "error": ERROR_TEXT,
    "expected": {"action": "sendmessage", "message": "<non-blank text, at most 16384 UTF-8 bytes>"},
    "acceptedActions": ["sendmessage"],
    "requestId": "req-1",
}
GATEWAY_FRAME = {"message": "Internal server error", "connectionId": "L0SM9cOFvHcCIhw=", "requestId": "req-2"}


def test_broadcast_envelope_becomes_a_chat_message() -> None:
    frame = parse_frame(json.dumps(ENVELOPE))
    assert frame == ChatMessage(
        id=ENVELOPE["id"],
        text="hello",
        sender="alice",
        connection_id="L0SM9cOFvHcCIhw=",
        sent_at=datetime(2026, 11, 26, 0, 35, 5, 123000, tzinfo=timezone.utc),
    ), f"envelope parsed wrongly: {frame!r}"


def test_sender_falls_back_to_the_connection_id() -> None:
    frame = parse_frame(json.dumps({**ENVELOPE, "from": None}))
    assert isinstance(frame, ChatMessage) and frame.sender == "L0SM9cOFvHcCIhw=", f"no fallback sender: {frame!r}"


def test_error_frame_and_gateway_failure_are_told_apart() -> None:
    error = parse_frame(json.dumps(ERROR_FRAME))
    gateway = parse_frame(json.dumps(GATEWAY_FRAME).encode())
    assert error == ServerError(ERROR_TEXT, ("sendmessage",), "req-1"), f"error frame: {error!r}"
    assert gateway == GatewayError("req-2", "L0SM9cOFvHcCIhw="), f"API Gateway failure frame: {gateway!r}"


def test_anything_else_is_kept_verbatim() -> None:
    for raw in ("not json", "[1, 2]", '{"type": "typing"}', '{"message": "hi"}'):
        assert parse_frame(raw) == UnknownFrame(raw), f"{raw!r} was not kept as an unknown frame"


def test_message_line_shows_local_time_sender_and_text() -> None:
    frame = parse_frame(json.dumps(ENVELOPE))
    assert isinstance(frame, ChatMessage)
    local = datetime(2026, 11, 26, 0, 35, 5, tzinfo=timezone.utc).astimezone()
    line = format_message(frame, received_at=datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert line == f"[{local:%H:%M:%S}] alice: hello", f"unexpected line {line!r}"


def test_message_without_sent_at_uses_the_arrival_time() -> None:
    frame = parse_frame(json.dumps({**ENVELOPE, "sentAt": "yesterday"}))
    assert isinstance(frame, ChatMessage) and frame.sent_at is None, f"bad sentAt was accepted: {frame!r}"
    arrival = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=0)))
    line = format_message(frame, received_at=arrival)
    assert line.startswith(f"[{arrival.astimezone():%H:%M:%S}] "), f"arrival time not used: {line!r}"


def test_control_characters_cannot_reach_the_terminal() -> None:
    hostile = "red\x1b[31m\nnext line\u202egnp.exe\r"
    assert printable(hostile) == "red\\x1b[31m\\nnext line\\u202egnp.exe\\r", f"not escaped: {printable(hostile)!r}"
    assert printable("héllo, wörld \U0001f600\t") == "héllo, wörld \U0001f600\\t", "printable text was altered"
    frame = parse_frame(json.dumps({**ENVELOPE, "from": "eve\x07", "message": "<b>hi</b>\x1b]0;pwned\x07"}))
    assert isinstance(frame, ChatMessage)
    line = format_message(frame, received_at=datetime.now(timezone.utc))
    assert "\x1b" not in line and "\x07" not in line, f"raw control characters in {line!r}"
    assert line.endswith("eve\\x07: <b>hi</b>\\x1b]0;pwned\\x07"), f"unexpected rendering {line!r}"


def test_problems_are_labelled_by_origin() -> None:
    error = parse_frame(json.dumps(ERROR_FRAME))
    gateway = parse_frame(json.dumps(GATEWAY_FRAME))
    assert isinstance(error, ServerError) and isinstance(gateway, GatewayError)
    assert format_problem(error) == f"error from server: {ERROR_TEXT}", format_problem(error)
    assert format_problem(gateway) == (
        "error from API Gateway: Internal server error (the handler failed, request id req-2)"
    ), format_problem(gateway)
    assert format_problem(UnknownFrame("odd\x1b")) == "unexpected frame: odd\\x1b", "unknown frame not escaped"
