"""A big room's broadcast fans out through the local cloud exactly as deployed: the real send-message hands parts of
the room to asynchronous invocations of itself through the emulator's Lambda API, and every member gets it once."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from websockets.sync.client import ClientConnection

from app.settings import StackSettings
from emulator.config import routes_from_definition
from tests.emulator.conftest import STAGE, CloudThread, cloud_options, wait_for

MEMBERS = 24
SHARD_SIZE = 4


@pytest.fixture(scope="module")
def small_shards_cloud() -> Iterator[CloudThread]:
    settings = StackSettings(stage_name=STAGE, broadcast_shard_size=SHARD_SIZE)
    running = CloudThread(
        cloud_options(settings=settings, routes=routes_from_definition(), function_timeout_seconds=20)
    )
    running.start()
    yield running
    running.stop()


def messages(client: ClientConnection, text: str, quiet_seconds: float) -> int:
    """How many `message` frames carrying `text` the client has, reading until none comes for `quiet_seconds`."""
    count = 0
    while True:
        try:
            frame = json.loads(client.recv(timeout=quiet_seconds))
        except TimeoutError:
            return count
        if frame.get("type") == "message" and frame.get("message") == text:
            count += 1


def test_a_room_bigger_than_a_shard_is_posted_by_several_invocations_once_each(
    small_shards_cloud: CloudThread,
) -> None:
    clients = [small_shards_cloud.connect(f"name=member{number}") for number in range(MEMBERS)]
    try:
        clients[0].send(json.dumps({"action": "sendmessage", "message": "to everyone"}))
        handed_over = int(
            wait_for(
                lambda: re.search(r'"route":"sendmessage".*"shardsHandedOver":(\d+)', small_shards_cloud.log_text()),
                20,
                "the sendmessage invocation never logged its tally",
            )[1]
        )
        assert handed_over >= 1, "the room is bigger than a shard: parts go to other invocations"
        wait_for(
            lambda: len(re.findall(r"Invoke Event: ok", small_shards_cloud.log_text())) >= handed_over,
            20,
            "the handed-over parts did not all run",
        )
        received = [messages(client, "to everyone", quiet_seconds=0.3) for client in clients]
    finally:
        for client in clients:
            client.close()
    assert received == [1] * MEMBERS, f"every member of the room once, the sender included: {received}"
