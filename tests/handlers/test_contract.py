"""The handlers' copies of shared facts equal the app's (handlers cannot import `app/`: it is not in their zips)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

from app import definition, settings
from handlers import config, connections, display_name, environment, protocol, rooms, tokens
from handlers.aws_facts import FRAME_LIMIT_BYTES
from infra.archive import archive_members

HANDLERS = Path(__file__).resolve().parents[2] / "handlers"
EVENTS = Path(__file__).resolve().parents[1] / "events"


def test_every_route_action_is_declared_by_the_protocol() -> None:
    assert sorted(protocol.ACCEPTED_ACTIONS) == sorted(definition.ACTIONS), (
        "handlers/protocol.py's ACTIONS and app/definition.py's action routes must name the same actions"
    )
    assert len(set(protocol.ACCEPTED_ACTIONS)) == len(protocol.ACCEPTED_ACTIONS), "an action declared twice"


@pytest.mark.parametrize("route", definition.ROUTES, ids=lambda route: route.key)
def test_every_route_has_its_test_event(route: definition.Route) -> None:
    path = EVENTS / f"{route.logical_name}.json"
    assert path.is_file(), f"{route.key} needs an event for its tests: tests/events/{path.name}"
    event = json.loads(path.read_text(encoding="utf-8"))
    assert event["requestContext"]["routeKey"] == route.key, f"{path.name} must carry routeKey {route.key!r}"


def test_the_sendmessage_shape_is_the_documented_one() -> None:
    assert protocol.SEND_MESSAGE.expected(16384) == {
        "action": "sendmessage",
        "message": "<non-blank text, at most 16384 UTF-8 bytes>",
        "room": "<optional room name (1 to 64 characters of A-Z a-z 0-9 . _ -), default lobby>",
    }, "the shape error frames show for sendmessage (docs/handlers.md)"


def test_room_defaults_are_the_stack_defaults() -> None:
    defaults = settings.StackSettings(stage_name="dev")
    assert (defaults.max_rooms_per_connection, defaults.history_limit, defaults.history_retention_days) == (
        config.DEFAULT_MAX_ROOMS,
        config.DEFAULT_HISTORY_LIMIT,
        config.DEFAULT_HISTORY_RETENTION_DAYS,
    ), "the handlers' defaults must equal the stack's"
    assert rooms.MAX_ROOMS_PER_CONNECTION == config.DEFAULT_MAX_ROOMS
    assert defaults.presence_max_members == config.DEFAULT_PRESENCE_MAX_MEMBERS, "presence: handlers and stack agree"


@pytest.mark.parametrize(("value", "expected"), [("", 100), ("0", 0), ("1", 1), (" 250 ", 250)])
def test_the_presence_cap_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: int
) -> None:
    monkeypatch.setenv(environment.PRESENCE_MAX_MEMBERS, value)
    assert config.presence_max_members() == expected


@pytest.mark.parametrize("value", ["-1", "many", "1.5", "00x"])
def test_a_malformed_presence_cap_names_the_variable(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(environment.PRESENCE_MAX_MEMBERS, value)
    with pytest.raises(config.ConfigurationError, match="PRESENCE_MAX_MEMBERS"):
        config.presence_max_members()


def test_the_by_name_index_is_the_definitions() -> None:
    assert definition.BY_NAME_INDEX.name == connections.BY_NAME_INDEX, "whispers query the index the stack creates"


def test_default_message_limit_is_the_stack_default() -> None:
    stack_default = settings.StackSettings(stage_name="dev").max_message_bytes
    assert stack_default == config.DEFAULT_MAX_MESSAGE_BYTES, (
        "the handlers' default MAX_MESSAGE_BYTES must equal the maxMessageBytes default"
    )


def test_largest_allowed_message_fits_a_frame_when_plain() -> None:
    largest = FRAME_LIMIT_BYTES - 1024  # the top of maxMessageBytes' range
    (key,) = (key for key in settings.KEYS if key.name == "maxMessageBytes")
    assert key.parse(key.name, largest) == largest, "maxMessageBytes must accept the largest plain message"
    with pytest.raises(settings.SettingsError):
        key.parse(key.name, largest + 1)
    frame = protocol.message_frame(
        "x" * largest, "n" * display_name.MAX_DISPLAY_NAME_CHARS, "L0SM9cOFvHcCIhw=", 0, room="r" * 64, seq=2**53
    )
    assert len(frame) <= FRAME_LIMIT_BYTES - protocol.HISTORY_RESERVE_BYTES, (
        "the envelope's overhead must fit in the 1 KB settings reserve, leaving room for a history frame around it"
    )


def test_functions_that_build_error_frames_know_the_limit() -> None:
    builders = [function for function in definition.FUNCTIONS if "error_frame" in _attributes_used(function.module)]
    assert builders, "some route function must answer bad messages with protocol.error_frame"
    for function in builders:
        assert environment.MAX_MESSAGE_BYTES in function.environment, (
            f"{function.name} states the size limit in its error frames, so it needs MAX_MESSAGE_BYTES"
        )


def _attributes_used(module: str) -> set[str]:
    tree = ast.parse((HANDLERS / f"{module}.py").read_text(encoding="utf-8"))
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def test_tokens_and_connect_share_the_display_name_rule() -> None:
    assert tokens.display_name_problem is display_name.display_name_problem, "one display-name rule, not two"


def test_handlers_read_only_declared_environment_variables() -> None:
    declared = {name for function in definition.FUNCTIONS for name in function.environment}
    read = {
        node.attr
        for path in HANDLERS.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "environment"
    }
    known = {name for name in vars(environment) if name.isupper()}
    assert read <= known, f"handlers read environment names that handlers/environment.py lacks: {read - known}"
    assert read - set(definition.AUTHORIZER.environment) <= declared, (
        f"app.definition gives no function these variables the handlers read: {read - declared}"
    )


def test_handlers_import_only_the_standard_library_boto3_and_what_their_zip_ships() -> None:
    allowed_third_party = {
        "boto3",
        "botocore",
        "mypy_boto3_apigatewaymanagementapi",
        "mypy_boto3_dynamodb",
        "mypy_boto3_lambda",
        "mypy_boto3_ssm",
    }
    for function in (*definition.FUNCTIONS, definition.AUTHORIZER):
        shipped = set(function.libraries)
        imported: set[str] = set()
        for member in archive_members(function):
            for node in ast.walk(ast.parse((HANDLERS.parent / member).read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
        outside = imported - sys.stdlib_module_names - allowed_third_party - shipped - {"handlers"}
        assert not outside, f"{function.name} imports {outside}, neither standard library, boto3 nor in its zip"


def test_the_handlers_defaults_for_fan_out_and_rate_limit_are_the_stack_defaults() -> None:
    stack = settings.StackSettings(stage_name="dev")
    handlers_defaults = (
        config.DEFAULT_BROADCAST_MAX_POSTS_PER_SECOND,
        config.DEFAULT_MESSAGE_RATE_PER_SECOND,
        config.DEFAULT_MESSAGE_BURST,
    )
    stack_defaults = (stack.broadcast_max_posts_per_second, stack.message_rate_per_second, stack.message_burst)
    assert handlers_defaults == stack_defaults, "handlers.config's defaults must equal app.settings' defaults"


def test_settings_reach_send_message_as_its_environment() -> None:
    stack = settings.StackSettings(stage_name="dev", broadcast_max_posts_per_second=1234, message_burst=3)
    values = definition.settings_environment(stack)
    assert values[environment.BROADCAST_MAX_POSTS_PER_SECOND] == "1234", values
    assert values[environment.MESSAGE_BURST] == "3", values
    declared = {name for function in definition.FUNCTIONS for name in function.environment}
    assert set(values) <= declared, "every such variable must be read by some function"
    assert {
        environment.BROADCAST_MAX_POSTS_PER_SECOND,
        environment.MESSAGE_RATE_PER_SECOND,
        environment.MESSAGE_BURST,
        environment.MAX_MESSAGE_BYTES,
    } <= set(definition.SEND_MESSAGE.environment), "send-message reads the broadcast and rate settings"
