"""The local cloud is the developer's alone by default: callback secret, Host and Origin checks, safe log lines."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from websockets.exceptions import InvalidStatus
from websockets.frames import CloseCode
from websockets.sync.client import ClientConnection

from emulator.cloud import LocalCloud, print_log
from emulator.security import RequestGuard, is_loopback, printable
from tests.emulator.conftest import STAGE, CloudThread, cloud_options, receive_json, wait_for

EVIL_PAGE = "http://evil.example"


def own_id(client: ClientConnection) -> str:
    client.send(json.dumps({"action": "echo"}))
    connection_id: str = receive_json(client)["event"]["requestContext"]["connectionId"]
    return connection_id


def raw_request(cloud: CloudThread, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request with exactly these headers (`Host` included, which urllib and websockets set themselves)."""
    connection = http.client.HTTPConnection("127.0.0.1", cloud.cloud.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(b"data" if method == "POST" else None)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.mark.parametrize("method", ["POST", "GET", "DELETE"])
def test_the_callback_api_without_the_runs_secret_is_forbidden(cloud: CloudThread, method: str) -> None:
    secret = urlsplit(cloud.cloud.callback_url).path.split("/")[2]
    with cloud.connect() as client:
        connection_id = own_id(client)
        for path in (
            f"/{STAGE}/@connections/{connection_id}",
            f"/@callback/{'x' * len(secret)}/{STAGE}/@connections/{connection_id}",
        ):
            status, _ = raw_request(
                cloud, method, path.replace("=", "%3D"), {"Content-Length": "4"} if method == "POST" else {}
            )
            assert status == 403, f"{method} {path} without the secret must be 403, got {status}"
        client.send(json.dumps({"action": "echo"}))
        assert "event" in receive_json(client), "nothing reached the client but its own echo, and it is still open"


def test_the_secret_is_per_run() -> None:
    first, second = LocalCloud(cloud_options()), LocalCloud(cloud_options())
    assert first.callback_url != second.callback_url, "two runs must not share the callback secret"


def test_a_page_of_another_origin_cannot_open_a_websocket(cloud: CloudThread) -> None:
    connects_before = len(cloud.recorded_all("$connect"))
    with pytest.raises(InvalidStatus) as refused:
        cloud.connect(origin=EVIL_PAGE)
    assert refused.value.response.status_code == 403, "a foreign page's handshake must be refused with 403"
    assert len(cloud.recorded_all("$connect")) == connects_before, "$connect must not run for a foreign page"
    wait_for(lambda: "evil.example" in cloud.log_text(), 5, "the refusal must be logged with the origin")


def test_the_emulators_own_page_and_non_browser_clients_connect(cloud: CloudThread) -> None:
    own_page = f"http://127.0.0.1:{cloud.cloud.port}"
    for client in (cloud.connect(origin=own_page), cloud.connect()):
        with client:
            assert own_id(client), "the emulator's own page, and a client without Origin, must connect"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:3001", "127.0.0.1.evil.example"])
@pytest.mark.parametrize(("path", "headers"), [("/", {}), (f"/{STAGE}", UPGRADE)], ids=["page", "websocket"])
def test_a_request_naming_a_foreign_host_is_refused(
    cloud: CloudThread, host: str, path: str, headers: dict[str, str]
) -> None:
    # DNS rebinding: a page on evil.example re-points its name at 127.0.0.1, but the browser still sends its Host.
    status, _ = raw_request(cloud, "GET", path, {"Host": host, **headers})
    assert status == 403, f"Host {host} must be refused on {path}, got {status}"


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_ip_addresses_and_localhost_are_answered(cloud: CloudThread, host: str) -> None:
    status, body = raw_request(cloud, "GET", "/", {"Host": host.format(port=cloud.cloud.port)})
    assert status in (200, 404), f"Host {host} must be answered, got {status}"
    assert b"Forbidden" not in body, f"Host {host} must not be refused"


@pytest.fixture(scope="module")
def permissive_cloud() -> Iterator[CloudThread]:
    running = CloudThread(
        cloud_options(prewarm=False, allowed_hosts=("chat.test",), allowed_origins=("http://page.test:8080",))
    )
    running.start()
    yield running
    running.stop()


def test_flags_allow_a_host_name_and_a_page_origin(permissive_cloud: CloudThread) -> None:
    status, _ = raw_request(permissive_cloud, "GET", f"/{STAGE}", {"Host": "chat.test", **UPGRADE})
    assert status == 101, f"an allowed host name must get the handshake, got {status}"
    with permissive_cloud.connect(origin="http://page.test:8080") as client:
        assert own_id(client), "an allowed origin must connect"
    with pytest.raises(InvalidStatus):
        permissive_cloud.connect(origin="http://page.test:8081")


def test_a_close_reason_cannot_forge_log_lines(cloud: CloudThread) -> None:
    forged = "bye\n12:00:00.000 [gateway] connected AAAAAAAAAAAAAAA= from 10.0.0.1\x1b[2K"
    client = cloud.connect()
    connection_id = own_id(client)
    client.close(CloseCode.NORMAL_CLOSURE, forged)
    line = wait_for(
        lambda: next((entry for entry in cloud.logs if f"disconnected {connection_id}" in entry), None),
        10,
        "no disconnect line",
    )
    assert "\n" not in line and "\x1b" not in line, f"client text must be escaped in the log: {line!r}"
    assert "bye\\n12:00:00.000" in line, f"the reason must still be readable: {line!r}"


def test_the_terminal_log_escapes_every_message(capsys: pytest.CaptureFixture[str]) -> None:
    print_log("send-message", "one\ntwo\r\x1b[31mred\u202eeulav\ttab")
    output = capsys.readouterr().out
    assert output.count("\n") == 1, f"one message must stay one terminal line: {output!r}"
    assert "one\\ntwo\\r\\x1b[31mred\\u202eeulav\ttab" in output, f"escaped as Python would: {output!r}"


def test_printable_leaves_ordinary_text_alone() -> None:
    assert printable("héllo wörld 👋") == "héllo wörld 👋", "printable text must not change"
    assert printable("a\u2028b") == "a\\u2028b", "line separators are escaped"


def test_loopback_and_machine_names() -> None:
    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost")), "loopback"
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.5", "example.com")), "not loopback"
    name = socket.gethostname()
    assert not RequestGuard("127.0.0.1").host_allowed(f"{name}.rebound.example"), "a foreign name is refused"
    assert RequestGuard("0.0.0.0").host_allowed(name), "off loopback the machine's own name is answered"


def test_off_loopback_the_terminal_says_so_and_shows_the_real_address() -> None:
    running = CloudThread(cloud_options(prewarm=False, host="0.0.0.0"))
    running.start()
    try:
        lines = running.cloud.ready_lines()
    finally:
        running.stop()
    port = running.cloud.port
    assert f"  Listening on   0.0.0.0:{port}" in lines, f"the bound address must be printed: {lines}"
    warnings = [line for line in lines if "WARNING" in line]
    assert warnings and "not loopback" in warnings[0], f"binding off loopback must warn: {lines}"
    assert "127.0.0.1" in running.cloud.callback_url, "the workers still reach the callback API on loopback"
