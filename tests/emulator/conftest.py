"""Fixtures for the emulator's tests: a local cloud running in a background thread, serving test handlers.

The in-process API (`LocalCloud` with `EmulatorOptions`) is what lets tests swap in handlers that crash, hang or
exit; the CLI (through `emulator.testing.running_emulator`) is tested with the real app in test_cli.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from websockets.sync.client import ClientConnection, connect

from app.settings import StackSettings
from emulator.cloud import LocalCloud
from emulator.config import PROJECT_ROOT, EmulatorOptions, FunctionSpec, RouteSpec
from emulator.dynamodb import start_moto, stop_moto
from emulator.gateway import Authorizer
from handlers import environment
from handlers.aws_facts import CONNECTION_ID_PATTERN
from tests.emulator.lambdas import RECORD_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

STAGE = "test"
FUNCTION_TIMEOUT_SECONDS = 2.5


def function_spec(name: str, handler: str, *names: str, aws: bool = True) -> FunctionSpec:
    """A function served by `tests/emulator/lambdas.py`; the task root holds the `tests` package only.

    `names` are the variables it reads (by default the table's and the callback API's); `aws=False` gives it none,
    so its workers skip boto3 (the functions that crash, hang or exit, whose workers the tests replace often)."""
    return FunctionSpec(
        name=name,
        handler=f"tests.emulator.lambdas.{handler}",
        code_root=PROJECT_ROOT,
        packages=("tests",),
        environment=names or ((environment.TABLE_NAME, environment.ENDPOINT_URL) if aws else ()),
    )


RECORD = function_spec("record", "record", environment.TABLE_NAME)
ECHO = function_spec("echo", "echo", environment.TABLE_NAME, environment.ENDPOINT_URL, environment.MAX_MESSAGE_BYTES)
TEST_ROUTES = (
    RouteSpec("$connect", RECORD),
    RouteSpec("$disconnect", RECORD),
    RouteSpec("$default", ECHO),
    RouteSpec("echo", ECHO),
    RouteSpec("broadcastecho", dataclasses.replace(ECHO, name="echo-fanout", fans_out=True)),
    RouteSpec("rendezvous", function_spec("rendezvous", "rendezvous")),
    RouteSpec("crash", function_spec("crash", "crash", aws=False)),
    RouteSpec("hang", function_spec("hang", "hang", aws=False)),
    RouteSpec("exit", function_spec("exit-process", "exit_process", aws=False)),
    RouteSpec("unserializable", function_spec("unserializable", "unserializable", aws=False)),
    RouteSpec("hog", function_spec("hog", "hog", aws=False)),
    RouteSpec("invoked", function_spec("invoked", "invoked", environment.TABLE_NAME)),
)


class CloudThread:
    """A `LocalCloud` on its own event loop in a daemon thread, with its log lines kept for assertions."""

    def __init__(self, options: EmulatorOptions, authorizer: Authorizer | None = None) -> None:
        self.logs: list[str] = []
        self._lock = threading.Lock()
        self.cloud = LocalCloud(options, log=self._log, authorizer=authorizer)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def _log(self, prefix: str, message: str) -> None:
        with self._lock:
            self.logs.append(f"[{prefix}] {message}")

    def log_text(self) -> str:
        """Everything logged so far."""
        with self._lock:
            return "\n".join(self.logs)

    def start(self) -> None:
        """Start the thread and the cloud; returns when it is ready."""
        self._thread.start()
        self.run(self.cloud.start())

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the cloud's loop and wait for its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=60)

    def stop(self) -> None:
        """Stop the cloud, then the loop and thread."""
        try:
            self.run(self.cloud.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def connect(self, query: str = "", **kwargs: Any) -> ClientConnection:
        """A real WebSocket client (no proxy, no compression, which API Gateway does not offer either)."""
        return self.connect_to(self.cloud.ws_url + (f"?{query}" if query else ""), **kwargs)

    def connect_to(self, url: str, **kwargs: Any) -> ClientConnection:
        """A WebSocket client for any URL."""
        client: ClientConnection = connect(
            url, proxy=None, compression=None, open_timeout=10, close_timeout=5, legacy=True, **kwargs
        )
        return client

    def callback_client(self, endpoint: str | None = None) -> ApiGatewayManagementApiClient:
        """boto3's `apigatewaymanagementapi` client pointed at the local callback API, no retries."""
        return boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint or self.cloud.callback_url,
            region_name=self.cloud.options.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def recorded(self, route_key: str, connection_id: str) -> list[dict[str, Any]]:
        """Events `record` stored for this route and connection."""
        return self.recorded_all(f"{route_key}#{connection_id}#")

    def recorded_all(self, prefix: str) -> list[dict[str, Any]]:
        """Events `record` stored under keys starting with `prefix` (`$connect`, `$connect#ID#`...)."""
        paginator = self.cloud.table.client().get_paginator("scan")
        return [
            json.loads(item["Event"]["S"])
            for page in paginator.paginate(TableName=self.cloud.table.name)
            for item in page["Items"]
            if item["ConnectionId"]["S"].startswith(RECORD_PREFIX + prefix)
        ]

    def recorded_eventually(self, route_key: str, connection_id: str, timeout: float = 10) -> list[dict[str, Any]]:
        """`recorded`, polling until at least one event is there (`$disconnect` runs after the close)."""
        found: list[dict[str, Any]] = wait_for(
            lambda: self.recorded(route_key, connection_id),
            timeout,
            f"no {route_key} event recorded for {connection_id}",
        )
        return found


def wait_for(probe: Callable[[], Any], timeout: float, failure: str) -> Any:
    """Poll `probe` until it returns something truthy; fail with `failure` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(failure)
        time.sleep(0.05)


def receive_json(client: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    """The next frame, parsed."""
    frame = client.recv(timeout=timeout)
    document = json.loads(frame)
    assert isinstance(document, dict), f"expected a JSON object frame, got {frame!r}"
    return document


_shared_moto: list[subprocess.Popen[str]] = []
_shared_endpoint: list[str] = []


def shared_dynamodb() -> str:
    """The endpoint of one embedded moto server (`python -m emulator.dynamodb`, as the CLI starts) for every test
    cloud of this process, started on first use: each cloud creates its own randomly named tables there and deletes
    them when it stops. A server per cloud cost more than most of the tests using it."""
    if not _shared_endpoint:
        process, endpoint = start_moto()
        _shared_moto.append(process)
        _shared_endpoint.append(endpoint)
    return _shared_endpoint[0]


@pytest.fixture(scope="session", autouse=True)
def _stop_shared_dynamodb() -> Iterator[None]:
    yield
    while _shared_moto:
        stop_moto(_shared_moto.pop())
    _shared_endpoint.clear()


def cloud_options(**overrides: Any) -> EmulatorOptions:
    """Options for a test cloud: any free port, short timeouts, the test routes, the shared DynamoDB."""
    base = EmulatorOptions(
        stack=STAGE,
        settings=StackSettings(stage_name=STAGE),
        routes=TEST_ROUTES,
        port=0,
        function_timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
        idle_timeout_seconds=30,
        max_workers_per_function=4,
        dynamodb_endpoint=overrides.pop("dynamodb_endpoint") if "dynamodb_endpoint" in overrides else shared_dynamodb(),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="package")
def cloud() -> Iterator[CloudThread]:
    """One cloud with the test routes, shared by the conformance tests (each uses its own connections)."""
    running = CloudThread(cloud_options())
    running.start()
    yield running
    running.stop()


CONNECTION_ID = CONNECTION_ID_PATTERN
"""API Gateway's id shape (`handlers.aws_facts`, pinned by tests/test_aws_facts.py)."""
