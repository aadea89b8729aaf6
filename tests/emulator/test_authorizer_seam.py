"""The seam issue 7 plugs its Lambda REQUEST authorizer into: it runs before `$connect` and its context travels."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from aiohttp import web
from websockets.exceptions import InvalidStatus

from emulator import events
from tests.emulator.conftest import CloudThread, cloud_options, receive_json


async def query_authorizer(request: web.Request, peer: events.Peer) -> Mapping[str, Any] | None:
    """Denies `?deny`, asks for identity on `?anonymous`, else names the caller."""
    if "deny" in request.query:
        raise web.HTTPForbidden()
    if "anonymous" in request.query:
        raise web.HTTPUnauthorized()
    return {"principalId": "user-1", "name": "zed"}


@pytest.fixture(scope="module")
def guarded_cloud() -> Iterator[CloudThread]:
    running = CloudThread(cloud_options(prewarm=False), authorizer=query_authorizer)
    running.start()
    yield running
    running.stop()


@pytest.mark.parametrize(("query", "status"), [("deny=1", 403), ("anonymous=1", 401)])
def test_a_refusing_authorizer_refuses_the_handshake_before_connect_runs(
    guarded_cloud: CloudThread, query: str, status: int
) -> None:
    connects_before = guarded_cloud.log_text().count("[$connect]")
    with pytest.raises(InvalidStatus) as refused:
        guarded_cloud.connect(query)
    assert refused.value.response.status_code == status, f"?{query} must be refused with {status}"
    assert guarded_cloud.log_text().count("[$connect]") == connects_before, "$connect must not run when refused"


def test_the_authorizer_context_reaches_every_event(guarded_cloud: CloudThread) -> None:
    with guarded_cloud.connect() as client:
        client.send(json.dumps({"action": "echo"}))
        message = receive_json(client)["event"]
    connection_id = message["requestContext"]["connectionId"]
    expected = {"principalId": "user-1", "name": "zed"}
    assert message["requestContext"]["authorizer"] == expected, "MESSAGE events carry the authorizer context"
    [connect] = guarded_cloud.recorded("$connect", connection_id)
    assert connect["requestContext"]["authorizer"] == expected, "$connect carries the authorizer context"
    [disconnect] = guarded_cloud.recorded_eventually("$disconnect", connection_id)
    assert disconnect["requestContext"]["authorizer"] == expected, "$disconnect carries it too"
