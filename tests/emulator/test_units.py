"""The emulator's pure parts: route selection, the frame inspector, id and time formats, stack config loading."""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from app import definition
from app.settings import StackSettings
from emulator import __main__ as emulator_main
from emulator import events
from emulator.cloud import LocalCloud
from emulator.config import (
    EmulatorConfigError,
    EmulatorOptions,
    load_stack_config,
    route_selection_path,
    routes_from_definition,
)
from emulator.dynamodb import LocalTable, make_moto_atomic
from emulator.frames import FrameInspector
from emulator.gateway import select_route
from handlers import aws_facts
from handlers.aws_facts import CLOSE_MESSAGE_TOO_BIG
from tests.emulator.conftest import CONNECTION_ID

KEYS = ("$connect", "$disconnect", "$default", "sendmessage", "echo")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"action": "sendmessage"}', "sendmessage"),
        ('{"action": "echo", "message": "x"}', "echo"),
        ('{"action": "unknown"}', "$default"),
        ('{"message": "no action"}', "$default"),
        ('{"action": null}', "$default"),
        ('{"action": 5}', "$default"),
        ('["action", "sendmessage"]', "$default"),
        ("not json at all", "$default"),
        ("", "$default"),
        ('{"action": "$connect"}', "$default"),
        ('{"action": "SENDMESSAGE"}', "$default"),
        ("[" * 100_000, "$default"),
        ('{"action": "sendmessage", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "$default"),
    ],
    ids=lambda value: value if len(value) < 60 else f"{value[:20]}...({len(value)} characters)",
)
def test_route_selection_on_action(body: str, expected: str) -> None:
    assert select_route(body, ("action",), KEYS) == expected, f"body {body!r} routed wrongly"


def test_route_selection_follows_nested_paths_and_stringifies_values() -> None:
    path = route_selection_path("$request.body.meta.kind")
    assert path == ("meta", "kind"), "nested selection expression parsed wrongly"
    assert select_route('{"meta": {"kind": "echo"}}', path, KEYS) == "echo", "nested value not used"
    assert select_route('{"meta": "echo"}', path, KEYS) == "$default", "non-object in the path must fall back"
    assert select_route('{"n": 5}', ("n",), ("5", "$default")) == "5", "numbers are stringified before matching"
    assert select_route('{"n": true}', ("n",), ("true", "$default")) == "true", "booleans stringify as JSON does"


def test_no_match_without_default_route_selects_nothing() -> None:
    assert select_route('{"action": "nope"}', ("action",), ("$connect", "echo")) is None, (
        "with no $default route an unmatched message must select no route"
    )


def test_selection_expression_must_be_on_the_body() -> None:
    with pytest.raises(EmulatorConfigError, match=r"request\.body"):
        route_selection_path("$request.header.action")


def frame(opcode: int, payload_length: int, *, fin: bool = True) -> bytes:
    """A masked client frame with a payload of `payload_length` bytes."""
    first = (0x80 if fin else 0) | opcode
    if payload_length < 126:
        header = bytes([first, 0x80 | payload_length])
    elif payload_length < 1 << 16:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", payload_length)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", payload_length)
    return header + os.urandom(4) + b"a" * payload_length


class Recorder:
    """Collects the inspector's callbacks."""

    def __init__(self) -> None:
        self.violations: list[tuple[int, str]] = []
        self.frames = 0

    def inspector(self) -> FrameInspector:
        def on_violation(code: int, reason: str) -> None:
            self.violations.append((code, reason))

        def on_frame() -> None:
            self.frames += 1

        return FrameInspector(32 * 1024, 128 * 1024, on_violation, on_frame)


def feed_in_chunks(inspector: FrameInspector, data: bytes, size: int) -> bytes:
    return b"".join(inspector.feed(data[start : start + size]) for start in range(0, len(data), size))


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_frames_within_limits_pass_untouched_however_the_bytes_arrive(chunk: int) -> None:
    recorder = Recorder()
    stream = frame(0x1, 32 * 1024) + frame(0x9, 3) + frame(0x1, 32 * 1024, fin=False) + frame(0x0, 32 * 1024, fin=False)
    stream += frame(0x0, 32 * 1024, fin=False) + frame(0x0, 32 * 1024) + frame(0x1, 0)
    forwarded = feed_in_chunks(recorder.inspector(), stream, chunk)
    assert forwarded == stream, f"a stream within the limits was altered (chunks of {chunk})"
    assert recorder.violations == [], "no violation expected within the limits"
    assert recorder.frames == 7, "every frame counts as activity"


def test_a_frame_over_32_kb_is_dropped_and_reported_1009() -> None:
    recorder = Recorder()
    inspector = recorder.inspector()
    close = frame(0x8, 2)
    forwarded = feed_in_chunks(inspector, frame(0x1, 32 * 1024 + 1) + frame(0x1, 5) + close, 1000)
    assert recorder.violations and recorder.violations[0][0] == CLOSE_MESSAGE_TOO_BIG, "oversized frame not reported"
    assert forwarded == close, "after a violation only control frames may pass"


def test_a_fragmented_message_over_128_kb_is_reported_1009() -> None:
    recorder = Recorder()
    stream = b"".join(frame(0x1 if index == 0 else 0x0, 30000, fin=False) for index in range(4))
    stream += frame(0x0, 128 * 1024 - 4 * 30000 + 1)
    recorder.inspector().feed(stream)
    assert [code for code, _ in recorder.violations] == [CLOSE_MESSAGE_TOO_BIG], (
        "a message of small frames totalling over 128 KB must be refused"
    )


def test_binary_frames_are_reported_1003() -> None:
    recorder = Recorder()
    recorder.inspector().feed(frame(0x2, 10))
    assert [code for code, _ in recorder.violations] == [1003], "binary frames must close with 1003"


def test_ids_look_like_api_gateway_ids() -> None:
    ids = {events.new_id() for _ in range(200)}
    assert len(ids) == 200, "ids must be unique"
    assert all(CONNECTION_ID.fullmatch(value) for value in ids), f"bad id shape in {sorted(ids)[:3]}"
    assert re.fullmatch(r"[a-z0-9]{10}", events.new_api_id()), "api ids are ten lower-case letters and digits"


def test_request_time_uses_api_gateway_format_in_utc() -> None:
    moment = datetime(2026, 3, 9, 7, 5, 4, 321000, tzinfo=timezone.utc)
    epoch_ms = int(moment.timestamp() * 1000)
    assert events.request_time(epoch_ms) == "09/Mar/2026:07:05:04 +0000", "requestTime format"
    assert events.iso_time(epoch_ms) == "2026-03-09T07:05:04.321Z", "ISO time for @connections GET"


def test_routes_come_from_the_app_definition() -> None:
    routes = routes_from_definition()
    assert [route.key for route in routes] == [route.key for route in definition.ROUTES], "route keys differ"
    assert [route.function.handler for route in routes] == [route.function.handler for route in definition.ROUTES], (
        "handler paths differ from the definition"
    )
    assert all(route.function.packages == (definition.HANDLERS_PACKAGE,) for route in routes), (
        "only the handlers package may be importable, as in the deployment zip"
    )


def test_stack_config_is_read_and_validated(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: websocket-chat\nconfig:\n  aws:region: eu-west-1\n")
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  websocket-chat:lambdaTimeoutSeconds: 7\n  websocket-chat:maxMessageBytes: '2048'\n"
    )
    stack = load_stack_config("staging", tmp_path)
    assert stack.settings.stage_name == "staging", "stage name defaults to the stack name"
    assert stack.settings.lambda_timeout_seconds == 7, "timeout from the stack file"
    assert stack.settings.max_message_bytes == 2048, "max message bytes from the stack file"
    assert stack.region == "eu-west-1", "region falls back to Pulumi.yaml's aws:region"


def test_missing_or_invalid_stack_config_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  websocket-chat:lambdaMemoryMb: lots\n")
    with pytest.raises(EmulatorConfigError, match=r"Pulumi\.prod\.yaml does not exist.*dev"):
        load_stack_config("prod", tmp_path)
    with pytest.raises(EmulatorConfigError, match="lambdaMemoryMb"):
        load_stack_config("dev", tmp_path)
    (tmp_path / "Pulumi.broken.yaml").write_text("config: [unclosed\n")
    with pytest.raises(EmulatorConfigError, match="not valid YAML"):
        load_stack_config("broken", tmp_path)


def test_the_ready_lines_warn_when_the_stack_wants_an_authorizer_the_emulator_does_not_run() -> None:
    options = EmulatorOptions(
        stack="dev",
        settings=StackSettings(stage_name="dev", auth="jwt"),
        routes=routes_from_definition(),
        web_root=None,
    )
    cloud = LocalCloud(options)
    cloud._table = LocalTable(endpoint="http://127.0.0.1:1", name="connections-test", region="us-east-1", server=None)
    assert any("WARNING" in line and "auth=jwt" in line for line in cloud.ready_lines()), (
        "a stack with auth=jwt must not silently run open"
    )


def test_the_emulator_closes_connections_when_api_gateway_does() -> None:
    defaults = {field.name: field.default for field in dataclasses.fields(EmulatorOptions)}
    arguments = emulator_main.parse_arguments([])
    assert defaults["idle_timeout_seconds"] == arguments.idle_timeout == aws_facts.IDLE_TIMEOUT_SECONDS, (
        "the emulator's idle timeout, by default and on the command line, is API Gateway's"
    )
    assert defaults["max_duration_seconds"] == arguments.max_duration == aws_facts.MAX_CONNECTION_SECONDS, (
        "the emulator's connection duration, by default and on the command line, is API Gateway's"
    )


def test_moto_item_requests_do_not_interleave(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - moto only where a test needs it

    entered: list[str] = []
    release = threading.Event()

    def slow_update(self: object, caller: str) -> None:
        entered.append(caller)
        release.wait(timeout=10)

    monkeypatch.setattr(DynamoHandler, "update_item", slow_update)
    undo = make_moto_atomic()
    try:
        first = threading.Thread(target=DynamoHandler.update_item, args=(None, "first"))
        first.start()
        while not entered:
            time.sleep(0.01)
        second = threading.Thread(target=DynamoHandler.update_item, args=(None, "second"))
        second.start()
        second.join(timeout=0.5)
        assert entered == ["first"], "a second item request must wait while the first runs, as on DynamoDB"
        release.set()
        first.join(timeout=10)
        second.join(timeout=10)
        assert entered == ["first", "second"], f"the second request runs once the first is done: {entered}"
    finally:
        release.set()
        undo()
    assert vars(DynamoHandler)["update_item"] is slow_update, "undo puts moto's own handler back"


def test_an_atomic_counter_answers_each_caller_with_its_own_value(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto builds UPDATED_NEW from the live item after its backend returns; a write landing in between must not
    leak into the answer (CI once saw 80 concurrent ADDs answer 39 twice and 36 never)."""
    import boto3  # noqa: PLC0415 - moto only where a test needs it
    from moto import mock_aws  # noqa: PLC0415
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        undo = make_moto_atomic()
        backend_update = DynamoDBBackend.update_item

        def update_then_yield(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
            item = backend_update(self, *args, **kwargs)
            time.sleep(0.05)  # after the backend call, before the answer is built: where another write used to land
            return item

        monkeypatch.setattr(DynamoDBBackend, "update_item", update_then_yield)
        try:
            client = boto3.client("dynamodb")
            client.create_table(
                TableName="counter",
                KeySchema=[{"AttributeName": "Id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "Id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            answers: list[int] = []

            def add_one() -> None:
                response = client.update_item(
                    TableName="counter",
                    Key={"Id": {"S": "c"}},
                    UpdateExpression="ADD N :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                    ReturnValues="UPDATED_NEW",
                )
                answers.append(int(response["Attributes"]["N"]["N"]))

            threads = [threading.Thread(target=add_one) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
        finally:
            undo()
    assert sorted(answers) == [1, 2, 3, 4], f"each ADD answers the value it made: {answers}"
