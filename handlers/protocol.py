"""The chat's wire protocol: what clients send, and the frames the handlers send back (see docs/handlers.md).

Each action is declared once in `ACTIONS`; every refusal carries a reason code, so logs get the code, never the
client's text.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.aws_facts import FRAME_LIMIT_BYTES

HISTORY_RESERVE_BYTES = 512
"""Bytes of a frame an envelope leaves free for the `history` frame wrapped around it, so any message replays."""


@dataclass(frozen=True)
class Action:
    """One `action` clients may send, and the fields it takes, as error frames describe them to the client."""

    name: str
    fields: Mapping[str, str]
    """Field name to a description of its value; `{max_bytes}` stands for the stack's `MAX_MESSAGE_BYTES`."""

    def expected(self, max_bytes: int) -> dict[str, str]:
        """The shape an error frame shows the client: `{"action": name, field: description, ...}`."""
        return {"action": self.name, **{name: text.format(max_bytes=max_bytes) for name, text in self.fields.items()}}


LOBBY = "lobby"
"""The room of a connection that names none, and of a `sendmessage` without `room`."""
ROOM_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Room names: 1 to 64 characters of `A-Z a-z 0-9 . _ -`."""

_TEXT = "<non-blank text, at most {max_bytes} UTF-8 bytes>"
_ROOM_RULE = "1 to 64 characters of A-Z a-z 0-9 . _ -"
_ROOM = f"<room name: {_ROOM_RULE}>"

SEND_MESSAGE = Action(
    "sendmessage", {"message": _TEXT, "room": f"<optional room name ({_ROOM_RULE}), default {LOBBY}>"}
)
JOIN = Action("join", {"room": _ROOM})
LEAVE = Action("leave", {"room": _ROOM})
WHO = Action("who", {"room": _ROOM})
HISTORY = Action(
    "history",
    {"room": _ROOM, "before": "<optional seq: only messages before it>", "limit": "<optional count, 1 or more>"},
)
WHISPER = Action("whisper", {"to": "<a display name>", "message": _TEXT})

ACTIONS: tuple[Action, ...] = (SEND_MESSAGE, JOIN, LEAVE, WHO, HISTORY, WHISPER)
"""Every action, each with a route in `app.definition` (a test keeps them equal; handlers cannot import app).
The first is the shape `$default`'s error frame shows, the one a client that lost its way most likely wants."""

ACCEPTED_ACTIONS: tuple[str, ...] = tuple(action.name for action in ACTIONS)

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


class InvalidMessageError(ValueError):
    """The client's message is unacceptable: a sentence for the client's error frame, and a code for the log."""

    def __init__(self, message: str, code: str = "invalid-message") -> None:
        super().__init__(message)
        self.code = code


def action_body(event: dict[str, Any], action: Action) -> dict[str, Any]:
    """The JSON object of a message for `action`, or InvalidMessageError; only the action's fields are allowed."""
    body = _json_body(event)
    if not isinstance(body, dict):
        raise InvalidMessageError(f"the message must be a JSON object, got {_json_type(body)}", "not-object")
    unexpected = sorted(set(body) - {"action", *action.fields})
    if unexpected:
        listed = ", ".join(_short(name) for name in unexpected[:3])
        raise InvalidMessageError(
            f"unexpected field(s) {listed}: only {_listing(('action', *action.fields))} allowed", "unexpected-field"
        )
    if body.get("action") != action.name:
        raise InvalidMessageError(f'"action" must be "{action.name}"', "wrong-action")
    return body


def chat_message(event: dict[str, Any], max_bytes: int) -> tuple[str, str]:
    """The room (default `lobby`) and text of a valid `sendmessage` body, or InvalidMessageError."""
    body = action_body(event, SEND_MESSAGE)
    room = room_field(body, default=LOBBY)
    return room, message_text(body, max_bytes)


def room_request(event: dict[str, Any], action: Action) -> str:
    """The room of a valid `join`, `leave` or `who`, or InvalidMessageError."""
    return room_field(action_body(event, action))


def history_request(event: dict[str, Any], max_limit: int) -> tuple[str, int | None, int]:
    """The room, `before` (None: from the newest) and `limit` (capped at `max_limit`) of a valid `history`."""
    body = action_body(event, HISTORY)
    room = room_field(body)
    before = _whole_number(body, "before", None)
    limit = _whole_number(body, "limit", max_limit)
    return room, before, min(limit if limit is not None else max_limit, max_limit)


def whisper_request(event: dict[str, Any], max_bytes: int) -> tuple[str, str]:
    """The recipient's name and the text of a valid `whisper`, or InvalidMessageError."""
    body = action_body(event, WHISPER)
    if "to" not in body:
        raise InvalidMessageError('the "to" field is missing: name whom to whisper to', "missing-field")
    to = body["to"]
    if not isinstance(to, str) or not to.strip() or len(to) > 64:
        raise InvalidMessageError('"to" must be a display name (non-blank text)', "bad-recipient")
    return to, message_text(body, max_bytes)


def room_field(body: dict[str, Any], default: str | None = None) -> str:
    """The body's valid `room`, or `default` when it has none; InvalidMessageError otherwise."""
    if "room" not in body:
        if default is None:
            raise InvalidMessageError(f'the "room" field is missing; expected {_ROOM}', "missing-field")
        return default
    problem = room_name_problem(body["room"])
    if problem is not None:
        raise InvalidMessageError(problem, "bad-room")
    room: str = body["room"]
    return room


def room_name_problem(room: object) -> str | None:
    """Why `room` is not a valid room name (a sentence), or None when it is."""
    if not isinstance(room, str):
        return f'"room" must be a string of 1 to 64 characters of A-Z a-z 0-9 . _ -, got {_json_type(room)}'
    if not ROOM_NAME.fullmatch(room):
        return '"room" must be 1 to 64 characters of A-Z a-z 0-9 . _ -'
    return None


def message_text(body: dict[str, Any], max_bytes: int) -> str:
    """The body's valid `message`, or InvalidMessageError saying what is wrong with it."""
    if "message" not in body:
        raise InvalidMessageError('the "message" field is missing', "missing-field")
    text = body["message"]
    if not isinstance(text, str):
        raise InvalidMessageError(f'"message" must be a string, got {_json_type(text)}', "wrong-type")
    if not text.strip():
        raise InvalidMessageError('"message" must not be empty or blank', "blank")
    size = len(_utf8(text, '"message"'))
    if size > max_bytes:
        raise InvalidMessageError(f'"message" is {size} UTF-8 bytes, more than the limit of {max_bytes}', "too-large")
    return text


def unroutable(event: dict[str, Any]) -> InvalidMessageError:
    """Why a message reached `$default`: not JSON, no `action`, or an action no route serves."""
    try:
        body = _json_body(event)
    except InvalidMessageError as problem:
        return problem
    if not isinstance(body, dict):
        return InvalidMessageError(f"the message must be a JSON object, got {_json_type(body)}", "not-object")
    if "action" not in body:
        return InvalidMessageError('the message has no "action" field', "no-action")
    return InvalidMessageError(f"unknown action {_short(body['action'])}", "unknown-action")


def message_frame(
    text: str,
    sender_name: str,
    sender_id: str | None,
    sent_at_ms: int,
    *,
    room: str = LOBBY,
    seq: int | None = None,
) -> bytes:
    """The room envelope, UTF-8 JSON; InvalidMessageError when JSON escaping pushes it past one frame.

    `sender_id` is None for a message published from a backend (`publish`), which has no connection. The envelope
    leaves `HISTORY_RESERVE_BYTES` of the frame free, so a history frame can always carry it.
    """
    sent_at = timestamp(sent_at_ms)
    envelope: dict[str, Any] = {
        "type": "message",
        "id": uuid.uuid4().hex,
        "message": text,
        "from": sender_name,
        "connectionId": sender_id,
        "sentAt": sent_at,
        "room": room,
    }
    if seq is not None:
        envelope["seq"] = seq
    if sender_id is None:
        del envelope["connectionId"]
        envelope["published"] = True
    frame = _encode(envelope)
    if len(frame) > FRAME_LIMIT_BYTES - HISTORY_RESERVE_BYTES:
        # Quotes, backslashes and control characters grow when escaped; the byte limit alone cannot promise a fit.
        raise InvalidMessageError(
            f"the message takes {len(frame)} bytes once encoded, more than a {FRAME_LIMIT_BYTES}-byte frame allows; "
            "send less text or fewer quotes, backslashes and control characters",
            "frame-too-large",
        )
    return frame


def timestamp(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, as `sentAt` carries it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + f".{epoch_ms % 1000:03d}Z"


def error_frame(
    reason: str, request_id: str, max_bytes: int, action: Action = ACTIONS[0], retry_after_ms: int | None = None
) -> bytes:
    """The error frame for the sender alone: what was wrong, the shape `action` expects, every accepted action,
    and for a message refused by the rate limit, `retryAfterMs`: when the next one will be accepted."""
    frame: dict[str, Any] = {
        "type": "error",
        "error": reason,
        "expected": action.expected(max_bytes),
        "acceptedActions": list(ACCEPTED_ACTIONS),
        "requestId": request_id,
    }
    if retry_after_ms is not None:
        frame["retryAfterMs"] = retry_after_ms
    return _encode(frame)


def _json_body(event: dict[str, Any]) -> Any:
    body = event.get("body")
    if not isinstance(body, str) or not body:
        raise InvalidMessageError("the message is empty; send a JSON object", "empty")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidMessageError(
                "the message is binary, not UTF-8 text; send a JSON text frame", "binary"
            ) from None
    _utf8(body, "the message")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and numbers past Python's digit limit; RecursionError, absurd nesting.
        raise InvalidMessageError("the message is not JSON; send a JSON object", "not-json") from None


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a value")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (a JSON "\ud800" escape) are valid Python text but have no UTF-8 form.
        raise InvalidMessageError(f"{what} is not valid UTF-8 text", "not-utf8") from None


def _listing(names: tuple[str, ...]) -> str:
    quoted = [f'"{name}"' for name in names]
    return quoted[0] + " is" if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1] + " are"


def quoted(value: object) -> str:
    """A client-supplied value quoted for an error frame (never for a log line), cut to 40 characters."""
    return _short(value)


def _short(value: object) -> str:
    """A client-supplied value quoted for an error sentence, cut so an error frame stays small."""
    text = json.dumps(value)  # ASCII escapes: the value may hold lone surrogates, which UTF-8 cannot encode
    return text if len(text) <= 40 else text[:37] + "..."


def _encode(frame: dict[str, Any]) -> bytes:
    # ensure_ascii=False: \u escapes would grow non-ASCII text up to 3x and overflow the frame limit.
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _whole_number(body: dict[str, Any], field: str, default: int | None) -> int | None:
    if field not in body:
        return default
    value = body[field]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        got = value if isinstance(value, int) and not isinstance(value, bool) else _json_type(value)
        raise InvalidMessageError(f'"{field}" must be a whole number of at least 1, got {got}', "bad-" + field)
    return value
