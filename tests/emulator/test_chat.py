"""The chat end to end on `python -m emulator` with the REAL handlers: what a newcomer gets from `make local`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from app import definition
from emulator.config import PROJECT_ROOT
from emulator.testing import RunningEmulator, running_emulator
from handlers.rooms import member_entry
from tests.emulator.conftest import CONNECTION_ID, wait_for

KILLABLE_CLIENT = """
import sys
from websockets.sync.client import connect
client = connect(sys.argv[1], proxy=None, compression=None)
print("open", flush=True)
for frame in client:
    if '"type":"presence"' not in frame:
        print(frame, flush=True)
"""
"""A chat client in its own process, so the test can kill it: no close frame, no goodbye."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator(extra_args=("--function-timeout", "10")) as running:
        yield running


def join(emulator: RunningEmulator, name: str) -> ClientConnection:
    client: ClientConnection = connect(
        f"{emulator.ws_url}?name={name}", proxy=None, compression=None, open_timeout=15, legacy=True
    )
    return client


def table_of(emulator: RunningEmulator) -> tuple[Any, str]:
    """A DynamoDB client on the emulator's table, from its ready lines."""
    match = re.search(r"DynamoDB\s+(\S+)\s+table (\S+)", emulator.output_text())
    assert match, "the ready lines must name the DynamoDB endpoint and table"
    client = boto3.client(
        "dynamodb",
        endpoint_url=match[1],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    return client, match[2]


def rows(emulator: RunningEmulator) -> set[str]:
    client, table = table_of(emulator)
    return {item["ConnectionId"]["S"] for item in client.scan(TableName=table)["Items"]}


def chat_frame(client: ClientConnection) -> dict[str, Any]:
    """The next frame that is not a presence event (others joining and leaving the lobby)."""
    while True:
        frame: dict[str, Any] = json.loads(client.recv(timeout=15))
        if frame.get("type") != "presence":
            return frame


def rooms_table_of(emulator: RunningEmulator) -> str:
    match = re.search(r"ROOMS_TABLE_NAME (\S+)", emulator.output_text())
    assert match, "the ready lines must name the rooms table"
    return match[1]


def connected_ids(emulator: RunningEmulator) -> list[str]:
    return re.findall(r"\[gateway\] connected (\S+)", emulator.output_text())


def assert_broadcast(frame: dict[str, Any], message: str, sender: str, who: str) -> None:
    assert frame.get("type") == "message", f"{who} got {frame} instead of a broadcast"
    assert frame["message"] == message and frame["from"] == sender, f"{who} got the wrong broadcast: {frame}"
    assert re.fullmatch(r"[0-9a-f]{32}", frame["id"]), f"broadcast id must be uuid4 hex: {frame['id']}"
    assert CONNECTION_ID.fullmatch(frame["connectionId"]), "broadcast names the sender's connection id"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", frame["sentAt"]), "sentAt ISO with ms"


def test_ready_lines_name_the_urls_and_every_route(emulator: RunningEmulator) -> None:
    output = emulator.output_text()
    assert f"WebSocket URL  {emulator.ws_url}" in output, "the WebSocket URL must be printed"
    assert f"Callback URL   {emulator.callback_url}" in output, "the callback URL must be printed"
    assert f"Chat page      {emulator.http_url}?stage=dev" in output, "the page's address must name the stage"
    assert emulator.stage == "dev", "the dev stack's stage defaults to its name"
    for route in definition.ROUTES:
        assert re.search(
            rf"route {re.escape(route.key)}\s+-> {route.function.name} \({route.function.handler}\)", output
        ), f"no ready line for route {route.key}"


def test_three_clients_chat_and_a_killed_one_is_cleaned_up(emulator: RunningEmulator) -> None:
    alice, bob = join(emulator, "alice"), join(emulator, "bob")
    carol = subprocess.Popen(
        [sys.executable, "-c", KILLABLE_CLIENT, f"{emulator.ws_url}?name=carol"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert carol.stdout is not None and carol.stdout.readline().strip() == "open", "carol could not connect"
        carol_id = wait_for(
            lambda: len(connected_ids(emulator)) >= 3 and connected_ids(emulator)[-1],
            10,
            "carol's connection was not logged",
        )
        alice.send(json.dumps({"action": "sendmessage", "message": "hello all"}))
        for who, client in (("alice", alice), ("bob", bob)):
            assert_broadcast(chat_frame(client), "hello all", "alice", who)
        assert_broadcast(json.loads(carol.stdout.readline()), "hello all", "alice", "carol")

        carol.send_signal(signal.SIGKILL)  # no close frame: the process just dies
        carol.wait(timeout=10)
        alice.send(json.dumps({"action": "sendmessage", "message": "still here?"}))
        for who, client in (("alice", alice), ("bob", bob)):
            assert_broadcast(chat_frame(client), "still here?", "alice", who)
        wait_for(lambda: carol_id not in rows(emulator), 10, "carol's row is still in the table")
        wait_for(
            lambda: f"[$disconnect] {carol_id} -> disconnect" in emulator.output_text(),
            10,
            "$disconnect did not run for carol",
        )
        output = emulator.output_text()
        assert output.count(f"disconnected {carol_id}:") == 1, "$disconnect must run exactly once for carol"
        assert f"disconnected {carol_id}: 1006" in output, "a killed client disconnects with 1006"
    finally:
        carol.kill()
        carol.wait(timeout=10)
        alice.close()
        bob.close()


def test_a_stale_row_is_removed_by_the_next_broadcast(emulator: RunningEmulator) -> None:
    client, table = table_of(emulator)
    stale = "StaleConnId0AA="  # a connection whose $disconnect never ran (API Gateway's is best effort)
    client.put_item(
        TableName=table,
        Item={
            "ConnectionId": {"S": stale},
            "ConnectedAt": {"N": str(int(time.time() * 1000))},
            "ExpiresAt": {"N": str(int(time.time()) + 3600)},
            "Rooms": {"SS": ["lobby"]},
        },
    )
    client.put_item(
        TableName=rooms_table_of(emulator),
        Item={
            "Room": {"S": "lobby"},
            "Entry": {"S": member_entry(stale)},
            "ConnectionId": {"S": stale},
            "ExpiresAt": {"N": str(int(time.time()) + 3600)},
        },
    )
    alice, bob = join(emulator, "alice2"), join(emulator, "bob2")
    try:
        alice.send(json.dumps({"action": "sendmessage", "message": "anyone stale?"}))
        for who, receiver in (("alice", alice), ("bob", bob)):
            assert_broadcast(chat_frame(receiver), "anyone stale?", "alice2", who)
        wait_for(lambda: stale not in rows(emulator), 10, "the stale row survived a broadcast that got 410 for it")
    finally:
        alice.close()
        bob.close()


def test_an_unknown_action_gets_the_error_frame_from_default(emulator: RunningEmulator) -> None:
    with join(emulator, "dave") as client:
        client.send(json.dumps({"action": "dance"}))
        frame = chat_frame(client)
    assert frame.get("type") == "error", f"$default must answer with an error frame, got {frame}"
    assert sorted(frame["acceptedActions"]) == sorted(definition.ACTIONS), "the error frame lists the accepted actions"
    assert CONNECTION_ID.fullmatch(frame["requestId"]), "the error frame carries API Gateway's request id"


def test_ctrl_c_closes_every_client_with_1001_and_runs_disconnect_for_each() -> None:
    # Unwarmed: this run invokes three of the functions, and its $disconnects start their worker during shutdown.
    with running_emulator(extra_args=("--no-prewarm",)) as running:
        clients = [join(running, name) for name in ("erin", "frank")]
        ids = wait_for(lambda: len(connected_ids(running)) == 2 and connected_ids(running), 10, "clients not logged")
        assert running.stop() == 0, f"the emulator must exit 0 on SIGINT; output:\n{running.output_text()}"
    for client in clients:
        with pytest.raises(ConnectionClosed):
            chat_frame(client)  # presence frames (frank joining, erin leaving) may come first
        assert client.close_code == 1001, "shutdown must close clients with 1001"
    output = running.output_text()
    for connection_id in ids:
        assert f"disconnected {connection_id}: 1001" in output, "each client's close must be logged with 1001"
        assert re.search(rf"\[\$disconnect\] {re.escape(connection_id)} -> disconnect status 200", output), (
            f"$disconnect must run for {connection_id} before the emulator exits"
        )
    assert output.rstrip().endswith("Stopped."), "the emulator must finish its shutdown"
    assert "cold start" not in output.split("\nReady: ", 1)[0], "--no-prewarm started a worker before it was needed"
    assert "[disconnect] cold start" in output, "the first $disconnect started its worker"


def test_sigterm_shuts_down_cleanly_too() -> None:
    with running_emulator(extra_args=("--no-prewarm",)) as running:
        client = join(running, "gina")
        running.signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=15)
        assert client.close_code == 1001, "SIGTERM must close clients with 1001"
        assert running.stop() == 0, "the emulator must exit 0 on SIGTERM"


def test_ctrl_c_in_a_terminal_reaches_the_workers_too_and_shutdown_still_runs_disconnect() -> None:
    # A terminal's Ctrl-C signals the whole process group, workers included.
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", "0"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        ready = next((line for line in process.stdout if line.startswith("Ready: ")), "")
        url = ready.split()[1] if ready else pytest.fail("the emulator never printed its ready line")
        client = connect(f"{url}?name=ivy", proxy=None, compression=None, open_timeout=15, legacy=True)
        os.killpg(process.pid, signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, f"Ctrl-C must exit 0; output:\n{output}"
    assert "KeyboardInterrupt" not in output, f"workers must leave Ctrl-C to the gateway; output:\n{output}"
    assert re.search(r"\[\$disconnect\] \S+ -> disconnect status 200", output), (
        f"$disconnect must still run for the open client; output:\n{output}"
    )
    with pytest.raises(ConnectionClosed):
        client.recv(timeout=10)
    assert client.close_code == 1001, "the client must be closed with 1001"
