"""A big room's broadcast fans out through the local cloud exactly as deployed: the real send-message hands parts of
the room to asynchronous invocations of itself through the emulator's Lambda API, and every member gets it once."""

from __future__ import annotations

import json
import re
import time
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
    # No presence: 24 joins announced to everyone already there is not what this test is about.
    settings = StackSettings(stage_name=STAGE, broadcast_shard_size=SHARD_SIZE, presence_max_members=0)
    running = CloudThread(
        cloud_options(settings=settings, routes=routes_from_definition(), function_timeout_seconds=20)
    )
    running.start()
    yield running
    running.stop()


def copies(client: ClientConnection, text: str, timeout: float) -> int:
    """How many `message` frames carrying `text` the client has received: the first waited for up to `timeout`
    seconds, then only those already there."""
    count = 0
    while True:
        try:
            frame = json.loads(client.recv(timeout=0 if count else timeout))
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
        # Every part has run, so every post has been sent: a second copy would arrive within moments.
        time.sleep(0.5)
        received = [copies(client, "to everyone", timeout=10) for client in clients]
    finally:
        for client in clients:
            client.close()
    assert received == [1] * MEMBERS, f"every member of the room once, the sender included: {received}"
