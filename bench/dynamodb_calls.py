"""Benchmark: the DynamoDB calls of one `sendmessage` against the local cloud's moto server, in the same run.

Two moto servers run side by side in child processes, both with the emulator's DynamoDB call lock: the emulator's
own (`python -m emulator.dynamodb`, connections kept alive) and the baseline, moto's stock `ThreadedMotoServer`
(Werkzeug closes every connection after its answer). The handlers' own table classes make the calls of one
accepted message, through a client configured like `handlers.clients.dynamodb`: the token (a write that checks the
membership and returns the sender's row), the room's sequence number, the history row and the member Query. Rounds
alternate between the servers, so both see the same machine load. Printed per server: the median of each call and
of the whole message, the client's and the server's CPU per message; then the emulator's server as ratios of the
baseline.

`python bench/dynamodb_calls.py [--messages 300]`
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.definition import CONNECTIONS_TABLE, HISTORY_TABLE, ROOMS_TABLE
from bench.emulator import cpu_seconds
from emulator.dynamodb import THROWAWAY_CREDENTIALS, start_moto, stop_moto
from handlers import clients
from handlers.connections import ConnectionsTable
from handlers.history import HistoryTable
from handlers.rate_limit import RateLimit, RateLimiter
from handlers.rooms import Rooms

ROOM = "lobby"


@dataclass
class Server:
    """One moto server and what was measured against it."""

    name: str
    process: subprocess.Popen[str]
    endpoint: str
    calls: dict[str, list[float]] = field(default_factory=dict)
    messages_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0


def start_stock_moto() -> tuple[subprocess.Popen[str], str]:
    """moto's own `ThreadedMotoServer` in a child process, with the emulator's call lock (the baseline)."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-stock"], text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    return process, f"http://127.0.0.1:{process.stdout.readline().strip()}"


def serve_stock() -> None:
    """The baseline child: until stdin closes."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the child imports moto

    from emulator.dynamodb import make_moto_atomic  # noqa: PLC0415

    make_moto_atomic()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()
    server.stop()


def message_steps(endpoint: str) -> dict[str, Callable[[], object]]:
    """The calls of one accepted message, over fresh tables on `endpoint` holding two members of the room."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=THROWAWAY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=THROWAWAY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 3},
            max_pool_connections=clients.POOL_CONNECTIONS,
            connect_timeout=2,
            read_timeout=5,
        ),
    )
    for table in (CONNECTIONS_TABLE, ROOMS_TABLE, HISTORY_TABLE):
        client.create_table(**table.create_table_request(table.logical_name))
    connections = ConnectionsTable(client, CONNECTIONS_TABLE.logical_name)
    rooms = Rooms(client, CONNECTIONS_TABLE.logical_name, ROOMS_TABLE.logical_name)
    history = HistoryTable(client, HISTORY_TABLE.logical_name)
    limiter = RateLimiter(client, CONNECTIONS_TABLE.logical_name, RateLimit(per_second=1e6, burst=1000))
    for name in ("alice", "bob"):
        rooms.join(connections.add(name, int(time.time() * 1000), name), ROOM, time.time())
    sequence = iter(range(1, 10**9))
    return {
        "token and membership UpdateItem": lambda: limiter.take_as_member("alice", ROOM, time.time() * 1000),
        "sequence ADD": lambda: rooms.next_sequence(ROOM),
        "history PutItem": lambda: history.append(ROOM, next(sequence), b'{"type": "message"}', time.time()),
        "members Query": lambda: list(rooms.member_ids(ROOM, time.time())),
    }


def measure(server: Server, steps: dict[str, Callable[[], object]], messages: int) -> None:
    """Run `messages` messages' calls against one server, adding to its figures."""
    cpu_before, server_before = time.process_time(), cpu_seconds(server.process.pid)
    for _ in range(messages):
        started = time.perf_counter()
        for name, step in steps.items():
            call_started = time.perf_counter()
            step()
            server.calls.setdefault(name, []).append((time.perf_counter() - call_started) * 1000)
        server.messages_ms.append((time.perf_counter() - started) * 1000)
    server.client_cpu_s += time.process_time() - cpu_before
    server.server_cpu_s += cpu_seconds(server.process.pid) - server_before


def report(server: Server) -> str:
    """One server's medians and CPU per message."""
    count = len(server.messages_ms)
    calls = ", ".join(f"{name} {statistics.median(times):.2f}" for name, times in server.calls.items())
    return (
        f"{server.name:<22} message median {statistics.median(server.messages_ms):6.2f} ms "
        f"(client CPU {server.client_cpu_s / count * 1000:.2f} ms, server CPU {server.server_cpu_s / count * 1000:.2f}"
        f" ms)\n{'':<22} per call (ms): {calls}"
    )


def main(argv: Sequence[str]) -> int:
    """Measure both servers, alternating, and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300, help="messages per server (default 300)")
    parser.add_argument("--serve-stock", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve_stock:
        serve_stock()
        return 0
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    print(f"load average before: {' '.join(f'{load:.1f}' for load in os.getloadavg())}", flush=True)
    with ExitStack() as stack:
        servers = []
        for name, start in (("baseline (stock moto)", start_stock_moto), ("emulator's moto", start_moto)):
            process, endpoint = start()
            stack.callback(stop_moto, process)
            servers.append(Server(name, process, endpoint))
        steps = [message_steps(server.endpoint) for server in servers]
        for server, server_steps in zip(servers, steps, strict=True):
            measure(server, server_steps, 10)  # warm-up: imports, first connections
            server.calls.clear()
            server.messages_ms.clear()
            server.client_cpu_s = server.server_cpu_s = 0.0
        for _ in range(0, arguments.messages, 10):
            for server, server_steps in zip(servers, steps, strict=True):
                measure(server, server_steps, 10)
    baseline, local = servers
    print(report(baseline))
    print(report(local))
    print(
        f"ratios (emulator's / baseline): message median "
        f"x{statistics.median(local.messages_ms) / statistics.median(baseline.messages_ms):.2f}, client CPU "
        f"x{local.client_cpu_s / baseline.client_cpu_s:.2f}, "
        f"server CPU x{local.server_cpu_s / baseline.server_cpu_s:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
