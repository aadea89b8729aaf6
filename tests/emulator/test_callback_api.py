"""The `@connections` callback API through boto3's own `apigatewaymanagementapi` client, as handlers use it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from handlers.aws_facts import CALLBACK_PAYLOAD_LIMIT_BYTES as MESSAGE_LIMIT_BYTES
from tests.emulator.conftest import STAGE, CloudThread, cloud_options, receive_json, wait_for


def own_id(client: ClientConnection) -> str:
    client.send(json.dumps({"action": "echo"}))
    connection_id: str = receive_json(client)["event"]["requestContext"]["connectionId"]
    return connection_id


def test_post_reaches_the_client(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    with cloud.connect() as client:
        connection_id = own_id(client)
        response = api.post_to_connection(ConnectionId=connection_id, Data="héllo from the server".encode())
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 200, "POST answers 200"
        assert client.recv(timeout=10) == "héllo from the server", "the posted data must arrive as a text frame"


def test_post_of_128_kb_passes_and_one_byte_more_is_413(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    with cloud.connect(max_size=4 * MESSAGE_LIMIT_BYTES) as client:
        connection_id = own_id(client)
        api.post_to_connection(ConnectionId=connection_id, Data=b"a" * MESSAGE_LIMIT_BYTES)
        assert len(client.recv(timeout=10)) == MESSAGE_LIMIT_BYTES, "a 128 KB post must arrive whole"
        with pytest.raises(api.exceptions.PayloadTooLargeException):
            api.post_to_connection(ConnectionId=connection_id, Data=b"a" * (MESSAGE_LIMIT_BYTES + 1))


def test_get_describes_the_connection(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    with cloud.connect(user_agent_header="describe-me/2") as client:
        connection_id = own_id(client)
        described = api.get_connection(ConnectionId=connection_id)
    assert described["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "describe-me/2"}, "identity"
    assert described["ConnectedAt"] <= described["LastActiveAt"], "connectedAt then lastActiveAt, as datetimes"
    assert described["ConnectedAt"].tzinfo is not None, "times are ISO 8601 in UTC"


def test_delete_closes_the_client_and_runs_disconnect(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    client = cloud.connect()
    connection_id = own_id(client)
    response = api.delete_connection(ConnectionId=connection_id)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 204, "DELETE answers 204"
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=10)
    [event] = cloud.recorded_eventually("$disconnect", connection_id)
    assert event["requestContext"]["disconnectStatusCode"] == 1000, "DELETE closes normally"
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"too late")


@pytest.mark.parametrize("call", ["post_to_connection", "get_connection", "delete_connection"])
def test_an_unknown_connection_is_gone(cloud: CloudThread, call: str) -> None:
    api = cloud.callback_client()
    arguments: dict[str, Any] = {"ConnectionId": "AAAAAAAAAAAAAAA="}
    if call == "post_to_connection":
        arguments["Data"] = b"anyone?"
    with pytest.raises(api.exceptions.GoneException) as gone:
        getattr(api, call)(**arguments)
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410, "410 Gone"


def test_a_closed_connection_is_gone(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    with cloud.connect() as client:
        connection_id = own_id(client)
    cloud.recorded_eventually("$disconnect", connection_id)
    with pytest.raises(api.exceptions.GoneException):
        api.post_to_connection(ConnectionId=connection_id, Data=b"hello?")


@pytest.fixture(scope="module")
def patient_cloud() -> Iterator[CloudThread]:
    """A long function timeout, so a test can hold a connection inside `$connect` as long as it needs."""
    running = CloudThread(cloud_options(function_timeout_seconds=30.0, prewarm=False))
    running.start()
    yield running
    running.stop()


def test_a_connection_still_in_connect_is_gone_until_the_upgrade_completes(patient_cloud: CloudThread) -> None:
    api = patient_cloud.callback_client()
    release = f"release-{uuid.uuid4().hex}"
    clients: list[ClientConnection] = []
    opener = threading.Thread(target=lambda: clients.append(patient_cloud.connect(f"until={release}")))
    opener.start()
    try:
        events = wait_for(
            lambda: [
                event
                for event in patient_cloud.recorded_all("$connect")
                if (event.get("queryStringParameters") or {}).get("until") == release
            ],
            20,
            "$connect never started",
        )
        connection_id = events[0]["requestContext"]["connectionId"]
        with pytest.raises(api.exceptions.GoneException):
            api.post_to_connection(ConnectionId=connection_id, Data=b"early")
        with pytest.raises(api.exceptions.GoneException):
            api.get_connection(ConnectionId=connection_id)
        table = patient_cloud.cloud.table
        table.client().put_item(TableName=table.name, Item={"ConnectionId": {"S": release}})
        opener.join(timeout=20)
        assert clients, "the held $connect must finally accept"
        api.post_to_connection(ConnectionId=connection_id, Data=b"now")
        assert clients[0].recv(timeout=10) == "now", "after the upgrade the connection accepts posts"
    finally:
        opener.join(timeout=20)
        for client in clients:
            client.close()


def test_another_stage_is_forbidden(cloud: CloudThread) -> None:
    api = cloud.callback_client(cloud.cloud.callback_url.replace(f"/{STAGE}", "/other"))
    with cloud.connect() as client:
        connection_id = own_id(client)
        with pytest.raises(api.exceptions.ForbiddenException) as forbidden:
            api.post_to_connection(ConnectionId=connection_id, Data=b"wrong stage")
    assert forbidden.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, "403 for another stage"


def test_ids_needing_url_encoding_reach_their_connection(cloud: CloudThread) -> None:
    api = cloud.callback_client()
    opened: list[ClientConnection] = []
    try:
        for _ in range(60):  # about one id in three holds a `+` or `/`
            client = cloud.connect()
            opened.append(client)
            connection_id = own_id(client)
            if "/" in connection_id or "+" in connection_id:
                break
        else:
            pytest.fail("no connection id with + or / in 60 connections: ids are not base64-shaped")
        api.post_to_connection(ConnectionId=connection_id, Data=b"encoded")
        assert opened[-1].recv(timeout=10) == "encoded", f"post to {connection_id!r} went astray"
        assert api.get_connection(ConnectionId=connection_id)["Identity"]["SourceIp"] == "127.0.0.1", "GET by id"
    finally:
        for client in opened:
            client.close()
