"""One broadcast to many real WebSocket clients: the local cloud against a bare aiohttp server, in the same run.

N clients connect (default 1,000); one of them sends a message, and the time until the last client has it is
measured (the sender gets its own copy too), and so is the time to connect them all (every `$connect` announces
presence to rooms of at most `presenceMaxMembers`). Each server gets one warm-up broadcast, then `--rounds`
measured ones; the median is printed for both, and the local cloud's as a multiple of the floor: a bare aiohttp
process that sends each message to every socket, no Lambda, no database, no callback API (`bench/emulator.py`'s
floor server).

`python bench/broadcast_local.py [--clients 1000] [--rounds 3] [--stack dev]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.emulator import free_port
from emulator.testing import running_emulator

TARGET_RATIO = 5.0
WAIT_SECONDS = 60.0
"""Give up on a round when the last client has not heard the message by then."""


async def connect_all(session: aiohttp.ClientSession, url: str, clients: int) -> list[aiohttp.ClientWebSocketResponse]:
    """Connect `clients` sockets, 20 at a time, without names (rooms refuse look-alike names in one room); a refused
    handshake (a `$connect` that failed under load) is retried."""

    async def connect() -> aiohttp.ClientWebSocketResponse:
        for attempt in range(5):
            try:
                return await session.ws_connect(url)
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.5 * (attempt + 1))
        return await session.ws_connect(url)

    sockets: list[aiohttp.ClientWebSocketResponse] = []
    for start in range(0, clients, 20):
        sockets += await asyncio.gather(*(connect() for _ in range(start, min(clients, start + 20))))
    return sockets


async def one_broadcast(sockets: list[aiohttp.ClientWebSocketResponse], text: str) -> float:
    """Seconds from the send until every socket has received the message `text`."""
    started = time.perf_counter()

    async def heard(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type is aiohttp.WSMsgType.TEXT and json.loads(frame.data).get("message") == text:
                return
        raise RuntimeError("a socket closed before the message arrived")

    listeners = [asyncio.create_task(heard(ws)) for ws in sockets]
    await sockets[0].send_str(json.dumps({"action": "sendmessage", "message": text}))
    await asyncio.wait_for(asyncio.gather(*listeners), WAIT_SECONDS)
    return time.perf_counter() - started


async def measure(url: str, clients: int, rounds: int) -> tuple[float, list[float]]:
    """Seconds to connect every client, then each measured broadcast's seconds."""
    # No connector limit (aiohttp's default 100 would hold every socket past the 100th) and no total timeout.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        started = time.perf_counter()
        sockets = await connect_all(session, url, clients)
        connected = time.perf_counter() - started
        await one_broadcast(sockets, "warm-up")
        times = [await one_broadcast(sockets, f"round {number}") for number in range(rounds)]
        for ws in sockets:
            await ws.close()
    return connected, times


def floor_times(clients: int, rounds: int) -> tuple[float, list[float]]:
    port = free_port()
    floor_script = Path(__file__).resolve().parent / "emulator.py"
    server = subprocess.Popen([sys.executable, str(floor_script), "--serve-floor", str(port)])
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        return asyncio.run(measure(f"ws://127.0.0.1:{port}/dev", clients, rounds))
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stack", default="dev", help="the stack whose settings the local cloud runs with")
    arguments = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    floor_connect, floor = floor_times(arguments.clients, arguments.rounds)
    with running_emulator(stack=arguments.stack, extra_args=("--function-timeout", "29")) as emulator:
        local_connect, local = asyncio.run(measure(emulator.ws_url, arguments.clients, arguments.rounds))
    floor_median, local_median = statistics.median(floor), statistics.median(local)
    ratio = local_median / floor_median
    print(f"one broadcast to {arguments.clients} real WebSocket clients, median of {arguments.rounds}:")
    print(f"  bare aiohttp floor {floor_median:.3f} s  (rounds: {', '.join(f'{t:.3f}' for t in floor)})")
    print(f"  local cloud        {local_median:.3f} s  (rounds: {', '.join(f'{t:.3f}' for t in local)})")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  local cloud / floor: {ratio:.1f}x; target <= {TARGET_RATIO:.0f}x: {verdict}")
    print(f"connecting all {arguments.clients}: floor {floor_connect:.2f} s, local cloud {local_connect:.2f} s")
    print(f"load average after: {' '.join(f'{load:.1f}' for load in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
