"""`$default`: every unroutable message gets an error frame, to its sender alone, naming the accepted actions."""

from __future__ import annotations

import base64
from typing import cast

import pytest

from app.definition import ACTIONS
from handlers import broadcast, default, protocol
from tests.frame_schemas import frame_problems
from tests.handlers.callback_server import GONE, CallbackServer
from tests.handlers.conftest import FakeLambdaContext, load_event, log_lines, with_connection

SENDER = "L0SM9cOFvHcCIhw="
REQUEST_ID = "CEoHTFL6oAMFbPQ="

UNROUTABLE = {
    "not-json": ("hello there", False, "not JSON"),
    "no-action": ('{"message": "hi"}', False, 'no "action" field'),
    "unknown-action": ('{"action": "shout", "message": "hi"}', False, 'unknown action "shout"'),
    "non-string-action": ('{"action": 7}', False, "unknown action 7"),
    "json-array": ('["sendmessage"]', False, "JSON object, got an array"),
    "empty": ("", False, "empty"),
    "binary": (base64.b64encode(b"\x89PNG\r\n\x1a\n").decode(), True, "binary"),
}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(default, "RETRY", broadcast.Retry(sleep=lambda seconds: None))


@pytest.mark.parametrize(("body", "base64_encoded", "explanation"), UNROUTABLE.values(), ids=UNROUTABLE.keys())
def test_unroutable_message_gets_an_error_frame(
    *,
    aws_credentials: None,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
    body: str,
    base64_encoded: bool,
    explanation: str,
) -> None:
    event = load_event("default", body=body, isBase64Encoded=base64_encoded)

    assert default.handler(event, lambda_context) == {"statusCode": 200}
    assert not frame_problems(callback_server.received(SENDER)[0]), "the error frame must match its schema"

    assert {post.connection_id for post in callback_server.posts} == {SENDER}, "only the sender may be answered"
    (frame,) = callback_server.frames(SENDER)
    assert frame == {
        "type": "error",
        "error": frame["error"],
        "expected": protocol.ACTIONS[0].expected(16384),
        "acceptedActions": frame["acceptedActions"],
        "requestId": REQUEST_ID,
    }, "the error frame must have exactly the contract's shape"
    assert sorted(cast("list[str]", frame["acceptedActions"])) == sorted(ACTIONS), (
        "acceptedActions must name every action route"
    )
    assert explanation in str(frame["error"]), f"the error must say what was wrong: {frame['error']!r}"
    (line,) = log_lines(capsys.readouterr().out)
    assert line["route"] == "$default" and line["reply"] == "delivered", f"the log must record the reply: {line}"


def test_long_unknown_action_is_cut_short_in_the_reply(
    aws_credentials: None, callback_server: CallbackServer, lambda_context: FakeLambdaContext
) -> None:
    event = load_event("default", body='{"action": "' + "x" * 5000 + '"}')
    default.handler(event, lambda_context)
    (frame,) = callback_server.frames(SENDER)
    assert len(str(frame["error"])) < 100, "a client-sized action must not be echoed back whole"


def test_the_log_gives_a_reason_code_never_the_action_name(
    aws_credentials: None,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    default.handler(load_event("default", body='{"action": "secret-plans"}'), lambda_context)
    output = capsys.readouterr().out
    (line,) = log_lines(output)
    assert line["rejected"] == "unknown-action", f"the log must give the reason code: {line}"
    assert "secret-plans" not in output, "client text must never reach the log"


def test_sender_gone_is_not_an_error(
    aws_credentials: None,
    callback_server: CallbackServer,
    lambda_context: FakeLambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    callback_server.script("gone-already=", GONE)
    event = with_connection(load_event("default"), "gone-already=")
    assert default.handler(event, lambda_context) == {"statusCode": 200}, "a sender that left is not a failure"
    (line,) = log_lines(capsys.readouterr().out)
    assert line["reply"] == "gone", f"the log must say the reply found the sender gone: {line}"


def test_missing_endpoint_gives_500(
    aws_credentials: None, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    assert default.handler(load_event("default"), lambda_context) == {"statusCode": 500}
    (line,) = log_lines(capsys.readouterr().out)
    assert "ENDPOINT_URL" in line["detail"], f"the log must name the missing variable: {line}"
