"""The chat's wire protocol: what clients send, and the frames the handlers send back (see docs/handlers.md).

Client to server: `{"action": "sendmessage", "message": "<text>"}`. Server to clients: a `message` envelope to every
connection, or an `error` frame to the sender alone saying what was wrong and what is expected.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers.aws_facts import FRAME_LIMIT_BYTES


@dataclass(frozen=True)
class Action:
    """One `action` clients may send, and the fields it takes, as error frames describe them to the client."""

    name: str
    fields: Mapping[str, str]
    """Field name to a description of its value; `{max_bytes}` stands for the stack's `MAX_MESSAGE_BYTES`."""

    def expected(self, max_bytes: int) -> dict[str, str]:
        """The shape an error frame shows the client: `{"action": name, field: description, ...}`."""
        return {"action": self.name, **{name: text.format(max_bytes=max_bytes) for name, text in self.fields.items()}}


SEND_MESSAGE = Action("sendmessage", {"message": "<non-blank text, at most {max_bytes} UTF-8 bytes>"})

ACTIONS: tuple[Action, ...] = (SEND_MESSAGE,)
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
    """The client's message is unacceptable; the text is a sentence for the client's error frame and the log."""


def action_body(event: dict[str, Any], action: Action) -> dict[str, Any]:
    """The JSON object of a message for `action`, or InvalidMessageError; only the action's fields are allowed."""
    body = _json_body(event)
    if not isinstance(body, dict):
        raise InvalidMessageError(f"the message must be a JSON object, got {_json_type(body)}")
    unexpected = sorted(set(body) - {"action", *action.fields})
    if unexpected:
        listed = ", ".join(_short(name) for name in unexpected[:3])
        raise InvalidMessageError(f"unexpected field(s) {listed}: only {_listing(('action', *action.fields))} allowed")
    if body.get("action") != action.name:
        raise InvalidMessageError(f'"action" must be "{action.name}"')
    return body


def chat_message(event: dict[str, Any], max_bytes: int) -> str:
    """The text of a valid `sendmessage` body, or InvalidMessageError saying what is wrong with it."""
    body = action_body(event, SEND_MESSAGE)
    if "message" not in body:
        raise InvalidMessageError('the "message" field is missing')
    text = body["message"]
    if not isinstance(text, str):
        raise InvalidMessageError(f'"message" must be a string, got {_json_type(text)}')
    if not text.strip():
        raise InvalidMessageError('"message" must not be empty or blank')
    size = len(_utf8(text, '"message"'))
    if size > max_bytes:
        raise InvalidMessageError(f'"message" is {size} UTF-8 bytes, more than the limit of {max_bytes}')
    return text


def unroutable_reason(event: dict[str, Any]) -> str:
    """Why a message reached `$default`: not JSON, no `action`, or an action no route serves."""
    try:
        body = _json_body(event)
    except InvalidMessageError as problem:
        return str(problem)
    if not isinstance(body, dict):
        return f"the message must be a JSON object, got {_json_type(body)}"
    if "action" not in body:
        return 'the message has no "action" field'
    return f"unknown action {_short(body['action'])}"


def message_frame(text: str, sender_name: str, sender_id: str, sent_at_ms: int) -> bytes:
    """The broadcast envelope, UTF-8 JSON; InvalidMessageError when JSON escaping pushes it past one frame."""
    sent_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent_at_ms // 1000)) + f".{sent_at_ms % 1000:03d}Z"
    frame = _encode(
        {
            "type": "message",
            "id": uuid.uuid4().hex,
            "message": text,
            "from": sender_name,
            "connectionId": sender_id,
            "sentAt": sent_at,
        }
    )
    if len(frame) > FRAME_LIMIT_BYTES:
        # Quotes, backslashes and control characters grow when escaped; the byte limit alone cannot promise a fit.
        raise InvalidMessageError(
            f"the message takes {len(frame)} bytes once encoded, more than a {FRAME_LIMIT_BYTES}-byte frame; "
            "send less text or fewer quotes, backslashes and control characters"
        )
    return frame


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
        raise InvalidMessageError("the message is empty; send a JSON object")
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidMessageError("the message is binary, not UTF-8 text; send a JSON text frame") from None
    _utf8(body, "the message")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers malformed JSON and numbers past Python's digit limit; RecursionError, absurd nesting.
        raise InvalidMessageError("the message is not JSON; send a JSON object") from None


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "a value")


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (a JSON "\ud800" escape) are valid Python text but have no UTF-8 form.
        raise InvalidMessageError(f"{what} is not valid UTF-8 text") from None


def _listing(names: tuple[str, ...]) -> str:
    quoted = [f'"{name}"' for name in names]
    return quoted[0] + " is" if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1] + " are"


def _short(value: object) -> str:
    """A client-supplied value quoted for an error sentence, cut so an error frame stays small."""
    text = json.dumps(value)  # ASCII escapes: the value may hold lone surrogates, which UTF-8 cannot encode
    return text if len(text) <= 40 else text[:37] + "..."


def _encode(frame: dict[str, Any]) -> bytes:
    # ensure_ascii=False: \u escapes would grow non-ASCII text up to 3x and overflow the frame limit.
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
