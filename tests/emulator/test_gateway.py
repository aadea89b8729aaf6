"""The gateway against API Gateway's documented behaviour, with real WebSocket clients and test handlers."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from emulator.config import RouteSpec as Route
from handlers.aws_facts import FRAME_LIMIT_BYTES, MESSAGE_LIMIT_BYTES
from tests.emulator.conftest import (
    CONNECTION_ID,
    ECHO,
    RECORD,
    STAGE,
    CloudThread,
    cloud_options,
    receive_json,
    wait_for,
)

REQUEST_TIME = re.compile(r"^\d{2}/(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}:\d{2}:\d{2}:\d{2} \+0000$")


def own_id(client: ClientConnection) -> str:
    """The client's connection id, learned from an echo."""
    client.send(json.dumps({"action": "echo"}))
    connection_id: str = receive_json(client)["event"]["requestContext"]["connectionId"]
    return connection_id


def close_code(client: ClientConnection, timeout: float = 10) -> int | None:
    """Wait for the server to close the connection; the close code it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            client.recv(timeout=timeout)
    return client.close_code


def test_plain_get_on_the_websocket_url_gets_426(cloud: CloudThread) -> None:
    url = cloud.cloud.ws_url.replace("ws://", "http://")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 426, "a plain GET on the WebSocket URL must get 426 Upgrade Required"


def test_websocket_on_another_stage_is_forbidden(cloud: CloudThread) -> None:
    with pytest.raises(InvalidStatus) as refused:
        cloud.connect_to(cloud.cloud.ws_url.replace(f"/{STAGE}", "/elsewhere"))
    assert refused.value.response.status_code in (403, 404), "another stage must not accept WebSockets"


@pytest.mark.parametrize(
    ("query", "status"), [("status=403", 403), ("status=401", 401), ("crash=1", 502), ("hold=5", 502)]
)
def test_connect_decides_the_handshake(cloud: CloudThread, query: str, status: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        cloud.connect(query)
    assert refused.value.response.status_code == status, f"$connect with ?{query} must refuse with {status}"


def test_connect_event_matches_api_gateway(cloud: CloudThread) -> None:
    with cloud.connect(
        "name=a&name=b&room=main", additional_headers={"X-Test": "one"}, user_agent_header="conformance/1"
    ) as client:
        connection_id = own_id(client)
    assert CONNECTION_ID.fullmatch(connection_id), f"connection id {connection_id!r} not shaped like AWS's"
    [event] = cloud.recorded("$connect", connection_id)
    context = event["requestContext"]
    assert context["routeKey"] == "$connect" and context["eventType"] == "CONNECT", "route key and event type"
    assert context["connectionId"] == connection_id, "connection id"
    assert context["stage"] == STAGE, "stage"
    assert re.fullmatch(r"[a-z0-9]{10}", context["apiId"]), "api id shape"
    assert context["domainName"] == f"127.0.0.1:{cloud.cloud.port}", "domain name"
    assert CONNECTION_ID.fullmatch(context["requestId"]), "request id shape"
    assert context["extendedRequestId"] == context["requestId"], "extended request id"
    assert context["messageDirection"] == "IN", "message direction"
    assert isinstance(context["connectedAt"], int) and context["connectedAt"] > 1_600_000_000_000, (
        "connectedAt must be epoch milliseconds"
    )
    assert context["requestTimeEpoch"] == context["connectedAt"], "the connect request happens at connection time"
    assert REQUEST_TIME.fullmatch(context["requestTime"]), f"requestTime format: {context['requestTime']!r}"
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "conformance/1"}, "identity"
    assert "messageId" not in context and "authorizer" not in context, "no messageId or authorizer on $connect"
    assert event["headers"]["X-Test"] == "one", "client headers reach $connect"
    assert event["multiValueHeaders"]["X-Test"] == ["one"], "multi-value headers"
    for added in ("X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Amzn-Trace-Id", "Host"):
        assert added in event["headers"], f"header {added} missing"
    assert event["queryStringParameters"] == {"name": "b", "room": "main"}, "single-value query keeps the last"
    assert event["multiValueQueryStringParameters"] == {"name": ["a", "b"], "room": ["main"]}, "multi-value query"
    assert event["isBase64Encoded"] is False and "body" not in event, "no body on $connect"


def test_connect_without_query_string_has_no_query_keys(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        connection_id = own_id(client)
    [event] = cloud.recorded("$connect", connection_id)
    assert "queryStringParameters" not in event, "queryStringParameters must be absent without a query string"
    assert "multiValueQueryStringParameters" not in event, "multiValueQueryStringParameters must be absent too"


def test_message_event_matches_api_gateway(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        body = json.dumps({"action": "echo", "text": "héllo"})
        client.send(body)
        event = receive_json(client)["event"]
        client.send(body)
        second = receive_json(client)["event"]
    context = event["requestContext"]
    assert event["body"] == body and event["isBase64Encoded"] is False, "body is the frame's text"
    assert context["routeKey"] == "echo" and context["eventType"] == "MESSAGE", "route key and event type"
    assert CONNECTION_ID.fullmatch(context["messageId"]), "messageId shape"
    assert context["messageId"] != second["requestContext"]["messageId"], "every message has its own messageId"
    assert context["requestId"] != second["requestContext"]["requestId"], "every message has its own requestId"
    assert context["requestTimeEpoch"] >= context["connectedAt"], "request time after connection time"
    assert REQUEST_TIME.fullmatch(context["requestTime"]), "requestTime format"
    assert "headers" not in event and "queryStringParameters" not in event, "headers and query only on $connect"
    expected_keys = {
        "routeKey",
        "eventType",
        "extendedRequestId",
        "requestTime",
        "messageDirection",
        "stage",
        "connectedAt",
        "requestTimeEpoch",
        "identity",
        "requestId",
        "domainName",
        "connectionId",
        "apiId",
        "messageId",
    }
    assert set(context) == expected_keys, f"requestContext keys differ: {set(context) ^ expected_keys}"


@pytest.mark.parametrize(
    ("body", "route"),
    [
        (json.dumps({"action": "echo"}), "echo"),
        (json.dumps({"action": "nothing-like-it"}), "$default"),
        (json.dumps({"text": "no action"}), "$default"),
        ("plain text", "$default"),
    ],
)
def test_messages_are_routed_on_the_action(cloud: CloudThread, body: str, route: str) -> None:
    with cloud.connect() as client:
        client.send(body)
        event = receive_json(client)["event"]
    assert event["requestContext"]["routeKey"] == route, f"{body!r} must go to {route}"


@pytest.mark.parametrize("action", ["crash", "hang", "exit", "unserializable"])
def test_a_failing_handler_gets_the_internal_server_error_frame_and_the_connection_stays(
    cloud: CloudThread, action: str
) -> None:
    with cloud.connect() as client:
        connection_id = own_id(client)
        client.send(json.dumps({"action": action}))
        frame = receive_json(client)
        assert set(frame) == {"message", "connectionId", "requestId"}, f"unexpected failure frame {frame}"
        assert frame["message"] == "Internal server error", "API Gateway's failure message"
        assert frame["connectionId"] == connection_id, "the failure frame names the connection"
        assert CONNECTION_ID.fullmatch(frame["requestId"]), "the failure frame carries the request id"
        assert own_id(client) == connection_id, f"the connection must stay usable after {action}"


def test_a_client_close_runs_disconnect_once_with_its_code_and_reason(cloud: CloudThread) -> None:
    client = cloud.connect()
    connection_id = own_id(client)
    client.close(code=4001, reason="bye now")
    [event] = cloud.recorded_eventually("$disconnect", connection_id)
    context = event["requestContext"]
    assert context["eventType"] == "DISCONNECT" and context["routeKey"] == "$disconnect", "event type"
    assert context["disconnectStatusCode"] == 4001, "the client's close code"
    assert context["disconnectReason"] == "bye now", "the client's close reason"
    assert "messageId" not in context and "body" not in event, "no message fields on $disconnect"
    assert len(cloud.recorded("$disconnect", connection_id)) == 1, "$disconnect must run exactly once"


def test_a_vanished_client_runs_disconnect_with_1006(cloud: CloudThread) -> None:
    client = cloud.connect()
    connection_id = own_id(client)
    # Drop the TCP connection with no close frame, as a killed process or lost network does.
    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    client.socket.close()
    [event] = cloud.recorded_eventually("$disconnect", connection_id)
    assert event["requestContext"]["disconnectStatusCode"] == 1006, "abnormal closure code for a vanished client"


def test_frames_up_to_32_kb_and_messages_up_to_128_kb_pass(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        client.send("x" * FRAME_LIMIT_BYTES)
        assert receive_json(client)["bodyBytes"] == FRAME_LIMIT_BYTES, "a 32 KB frame must pass whole"
        chunks = ["y" * FRAME_LIMIT_BYTES] * (MESSAGE_LIMIT_BYTES // FRAME_LIMIT_BYTES)
        client.send(chunks)  # one message in four 32 KB frames
        assert receive_json(client)["bodyBytes"] == MESSAGE_LIMIT_BYTES, "a 128 KB fragmented message must pass"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("x" * (FRAME_LIMIT_BYTES + 1), 1009),
        (["y" * 30000] * 4 + ["z" * (MESSAGE_LIMIT_BYTES - 120000 + 1)], 1009),
        (b"\x00\x01binary", 1003),
    ],
)
def test_oversized_frames_messages_and_binary_close_the_connection(cloud: CloudThread, payload: Any, code: int) -> None:
    client = cloud.connect()
    connection_id = own_id(client)
    with contextlib.suppress(ConnectionClosed):  # the close may arrive while the last fragments are still going out
        client.send(payload)
    assert close_code(client) == code, f"expected close {code}"
    [event] = cloud.recorded_eventually("$disconnect", connection_id)
    assert event["requestContext"]["disconnectStatusCode"] == code, "$disconnect reports the gateway's close code"


def test_invocations_are_logged_with_route_connection_status_and_duration(cloud: CloudThread) -> None:
    with cloud.connect() as client:
        connection_id = own_id(client)
        client.send(json.dumps({"action": "crash"}))
        receive_json(client)
    cloud.recorded_eventually("$disconnect", connection_id)
    logs = cloud.log_text()
    assert f"[gateway] connected {connection_id}" in logs, "connection not logged"
    assert re.search(rf"\[gateway\] disconnected {re.escape(connection_id)}: 1000", logs), "disconnection not logged"
    assert re.search(rf"\[\$connect\] {re.escape(connection_id)} -> record status 200 in \d+\.\d ms", logs), (
        "the $connect invocation line is missing"
    )
    assert re.search(rf"\[echo\] {re.escape(connection_id)} -> echo status 200 in \d+\.\d ms", logs), (
        "the echo invocation line is missing"
    )
    assert re.search(
        rf"\[crash\] {re.escape(connection_id)} -> crash failed \(RuntimeError: crashed on purpose\)", logs
    ), "a failed invocation must be logged with its error"
    assert "[echo] echo invocation" in logs, "handler output must reach the log under the function's name"
    assert "[crash] Traceback (most recent call last):" in logs, "a crash's traceback must be logged"


def connect_quietly(cloud: CloudThread) -> tuple[ClientConnection, str]:
    """Connect and learn the id from the gateway's log: no message, so nothing counts as activity."""
    before = re.findall(r"\[gateway\] connected (\S+)", cloud.log_text())
    client = cloud.connect()
    connection_id: str = wait_for(
        lambda: [
            found for found in re.findall(r"\[gateway\] connected (\S+)", cloud.log_text()) if found not in before
        ],
        10,
        "the connection was not logged",
    )[0]
    return client, connection_id


@pytest.fixture(scope="module")
def strict_cloud() -> Iterator[CloudThread]:
    """No `$default` route, short idle timeout and maximum duration."""
    running = CloudThread(
        cloud_options(
            routes=(Route("$connect", RECORD), Route("$disconnect", RECORD), Route("echo", ECHO)),
            idle_timeout_seconds=1.0,
            max_duration_seconds=3.0,
        )
    )
    running.start()
    yield running
    running.stop()


def test_no_matching_route_and_no_default_gets_an_error_frame(strict_cloud: CloudThread) -> None:
    client, connection_id = connect_quietly(strict_cloud)
    with client:
        client.send(json.dumps({"action": "nothing"}))
        frame = receive_json(client)
    assert frame["message"] == "Forbidden", f"unexpected no-route frame {frame}"
    assert frame["connectionId"] == connection_id and CONNECTION_ID.fullmatch(frame["requestId"]), (
        "the no-route frame names the connection and request"
    )
    assert "[$default]" not in strict_cloud.log_text(), "nothing may be invoked without a route"


def test_an_idle_connection_is_closed_with_1001(strict_cloud: CloudThread) -> None:
    client, connection_id = connect_quietly(strict_cloud)
    assert close_code(client) == 1001, "an idle connection must be closed with 1001"
    [event] = strict_cloud.recorded_eventually("$disconnect", connection_id)
    assert event["requestContext"]["disconnectStatusCode"] == 1001, "$disconnect reports the idle close"
    assert event["requestContext"]["disconnectReason"] == "Idle timeout", "idle reason"


def test_a_busy_connection_is_still_closed_at_the_maximum_duration(strict_cloud: CloudThread) -> None:
    client, connection_id = connect_quietly(strict_cloud)
    deadline = time.monotonic() + 30
    with pytest.raises(ConnectionClosed):
        while time.monotonic() < deadline:  # pings keep it from idling, so only the duration limit can close it
            client.ping()
            with contextlib.suppress(TimeoutError):
                client.recv(timeout=0.2)
    assert client.close_code == 1001, "the maximum duration must close with 1001"
    [event] = strict_cloud.recorded_eventually("$disconnect", connection_id)
    assert event["requestContext"]["disconnectReason"] == "Connection duration exceeded", "duration reason"
