"""The command line: a clear error for a missing stack, fault-injection flags, and the chat page."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from emulator.config import PROJECT_ROOT
from emulator.testing import RunningEmulator, running_emulator
from tests.emulator.conftest import CloudThread, cloud_options

CALLBACK_DELAY_SECONDS = 0.3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--stack", "no-such-stack"), "Pulumi.no-such-stack.yaml does not exist"),
        (("--callback-throttle", "1.5"), "callback throttle fraction must be from 0 to 1"),
        (("--idle-timeout", "0"), "idle timeout must be positive"),
        (("--dynamodb-endpoint", "http://127.0.0.1:9"), "cannot create the tables at http://127.0.0.1:9"),
        (("--dynamodb-endpoint", "not a url"), "cannot create the tables at not a url"),
    ],
)
def test_bad_configuration_fails_with_one_clear_line(arguments: tuple[str, ...], message: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "emulator", "--port", "0", *arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 2, f"{arguments} must exit 2, got {finished.returncode}"
    assert message in finished.stderr, f"unclear error for {arguments}: {finished.stderr!r}"
    assert "Traceback" not in finished.stderr, "a configuration error must not print a traceback"


def test_another_dynamodb_endpoint_gets_the_table_and_loses_it_at_exit() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        running = CloudThread(cloud_options(dynamodb_endpoint=endpoint, prewarm=False))
        running.start()
        try:
            table = running.cloud.table
            assert table.endpoint == endpoint and table.server is None, "the given endpoint must be used"
            description = table.client().describe_table(TableName=table.name)["Table"]
            assert description["KeySchema"] == [{"AttributeName": "ConnectionId", "KeyType": "HASH"}], "hash key"
            ttl = table.client().describe_time_to_live(TableName=table.name)["TimeToLiveDescription"]
            assert ttl.get("AttributeName") == "ExpiresAt", "TTL attribute from the definition"
        finally:
            running.stop()
        assert table.name not in table.client().list_tables()["TableNames"], "the table must be deleted at exit"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def throttled() -> Iterator[RunningEmulator]:
    # No function runs in this module: workers would start only to be stopped.
    arguments = ("--callback-throttle", "1", "--callback-delay", str(CALLBACK_DELAY_SECONDS), "--no-prewarm")
    with running_emulator(extra_args=arguments) as running:
        yield running


def test_callback_fault_injection_delays_and_throttles(throttled: RunningEmulator) -> None:
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=throttled.callback_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    started = time.monotonic()
    with pytest.raises(api.exceptions.LimitExceededException) as throttle:
        api.get_connection(ConnectionId="AAAAAAAAAAAAAAA=")
    assert throttle.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429, "throttled requests get 429"
    assert time.monotonic() - started >= CALLBACK_DELAY_SECONDS, "every callback request must be delayed"


@pytest.fixture(scope="module")
def page_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CloudThread]:
    web_root = tmp_path_factory.mktemp("web")
    (web_root / "index.html").write_text("<!doctype html><title>chat</title>")
    (web_root / "chat.js").write_text("console.log('chat')")
    (web_root.parent / "secret.txt").write_text("not for the browser")
    running = CloudThread(cloud_options(web_root=web_root, prewarm=False))
    running.start()
    yield running
    running.stop()


def get(cloud: CloudThread, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", cloud.cloud.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_chat_page_is_served_from_web(page_cloud: CloudThread) -> None:
    web_root = page_cloud.cloud.options.web_root
    assert isinstance(web_root, Path)
    assert get(page_cloud, "/") == (200, (web_root / "index.html").read_bytes()), "GET / must be web/index.html"
    assert get(page_cloud, "/chat.js") == (200, b"console.log('chat')"), "files of web/ by name"
    assert get(page_cloud, "/static/chat.js") == (200, b"console.log('chat')"), "files of web/ under /static/"
    assert get(page_cloud, "/missing.css")[0] == 404, "a missing file is 404"
    assert get(page_cloud, "/%2e%2e/secret.txt")[0] == 404, "nothing outside web/ may be served"


def test_a_taken_port_fails_with_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "emulator", "--port", str(port)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert finished.returncode == 1, f"a taken port must exit 1, got {finished.returncode}"
    assert "cannot start" in finished.stderr and "in use" in finished.stderr, f"unclear: {finished.stderr!r}"
    assert "Traceback" not in finished.stderr, "no traceback for a taken port"
