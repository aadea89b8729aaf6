"""Fixtures for the handler tests: DynamoDB through moto, the callback API through a real local HTTP server.

The tables are built from `app.definition.TABLES`, the same definitions the Pulumi program uses; the
handlers' own lazily created clients are reset around every test, so each test starts a fresh container.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from moto import mock_aws

from app.definition import TABLES
from emulator.dynamodb import make_moto_atomic
from handlers import clients, environment
from handlers.connections import ConnectionsTable
from handlers.history import HistoryTable
from handlers.rooms import Rooms
from tests.aws_sessions import new_default_session
from tests.frame_schemas import frame_problems
from tests.handlers.callback_server import CallbackServer

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

EVENTS = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """The event in `tests/events/<name>.json`, with top-level keys replaced by `changes` (e.g. `body=...`)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    event.update(copy.deepcopy(changes))
    return event


def with_connection(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    """A copy of `event` as if it came from another connection."""
    changed = copy.deepcopy(event)
    changed["requestContext"]["connectionId"] = connection_id
    return changed


@dataclass
class FakeLambdaContext:
    """The attributes of Lambda's context object that the handlers read."""

    function_name: str = "send-message"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
    memory_limit_in_mb: int = 256

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def new_container() -> None:
    """What a new Lambda container starts with: no clients yet, and a boto3 session that reads credentials afresh."""
    clients.dynamodb.cache_clear()
    clients.callback_api.cache_clear()
    clients._session.cache_clear()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Throwaway credentials and a region, so nothing can reach a real AWS account; a new container around each test
    (a session cached under another test's credentials would sign with them: test order must not matter)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        environment.MAX_MESSAGE_BYTES,
        environment.BROADCAST_MAX_POSTS_PER_SECOND,
        environment.MESSAGE_RATE_PER_SECOND,
        environment.MESSAGE_BURST,
    ):
        monkeypatch.delenv(name, raising=False)
    new_container()
    yield
    new_container()


@pytest.fixture
def dynamodb(
    aws_credentials: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[DynamoDBClient]:
    """The handlers' own DynamoDB client, inside moto, with every table created and its variable set."""
    with mock_aws():
        new_default_session()
        undo_atomic = make_moto_atomic()
        request.addfinalizer(undo_atomic)
        clients.dynamodb.cache_clear()
        clients.callback_api.cache_clear()
        client = clients.dynamodb()
        for variable, definition in TABLES.items():
            name = f"{definition.logical_name}-test"
            client.create_table(**definition.create_table_request(name))
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": definition.ttl_attribute},
            )
            monkeypatch.setenv(variable, name)
        yield client
        clients.dynamodb.cache_clear()
        clients.callback_api.cache_clear()


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> ConnectionsTable:
    return ConnectionsTable(dynamodb, "connections-test")


@pytest.fixture
def rooms(dynamodb: DynamoDBClient) -> Rooms:
    return Rooms(dynamodb, "connections-test", "rooms-test")


@pytest.fixture
def history(dynamodb: DynamoDBClient) -> HistoryTable:
    return HistoryTable(dynamodb, "history-test")


@pytest.fixture
def callback_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[CallbackServer]:
    """The local callback API, with `ENDPOINT_URL` pointing at it."""
    with CallbackServer(stage="dev") as server:
        monkeypatch.setenv(environment.ENDPOINT_URL, server.url)
        yield server


@pytest.fixture
def frames_match_schemas(callback_server: CallbackServer) -> Iterator[None]:
    """After the test, every frame the handlers posted must match its type's schema in `schemas/`.

    The route handlers' test modules use it for every test (`pytestmark`), so each frame any test provokes is checked.
    """
    yield
    invalid = {post.data: problems for post in callback_server.posts if (problems := frame_problems(post.data))}
    assert not invalid, f"frames that do not match schemas/: {invalid}"


def rows(dynamodb: DynamoDBClient) -> dict[str, dict[str, Any]]:
    """Every row of the test table, keyed by connection id, attribute values unwrapped (`{"S": "x"}` -> "x")."""
    found: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName="connections-test"):
        for item in page["Items"]:
            values = {name: next(iter(value.values())) for name, value in item.items()}
            found[str(values["ConnectionId"])] = values
    return found


def log_lines(output: str) -> list[dict[str, Any]]:
    """The JSON log lines a handler printed."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
