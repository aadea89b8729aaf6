"""Benchmark: the chat on the local emulator against a bare aiohttp broadcast server, measured in the same run.

50 clients each send 20 `sendmessage` messages; every message is broadcast to all 50 clients. Each client sends
its next message once its previous one came back to it (closed loop), so latency is send-to-receipt under load.
Printed for both servers: delivered / expected, latency p50 and p99, messages delivered per second; then the
emulator's figures as ratios of the floor, and where the emulator's time goes (from its own invocation log).

Before that, warm two-client latency: alice sends, bob receives, one message at a time after a warm-up; median and
p90 send-to-receipt for the emulator, the floor and, when `bench/serverless-offline/` has its node_modules
(`npm install` there), serverless-offline running the same chat with connections kept in a file, all running at
once and taking turns each round; the median of the emulator's `sendmessage` invocations in that run (the rest
is the gateway and the sockets); and the CPU each message cost the emulator's processes (gateway, moto, function
workers) and serverless-offline's, which the machine's load does not change as it does the latencies.

`python bench/emulator.py [--clients 50] [--messages 20] [--rounds 60] [--latency-only]`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.config import load_stack_config
from emulator.testing import running_emulator

STALL_SECONDS = 60.0
"""Give up when no frame arrives for this long (a lost message would otherwise hang the run)."""


@dataclass
class Result:
    """What one run measured."""

    name: str
    delivered: int
    expected: int
    latencies_ms: list[float]
    elapsed_s: float

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100)[98]

    @property
    def per_second(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s else 0.0

    def line(self) -> str:
        return (
            f"{self.name:<10} delivered {self.delivered}/{self.expected}  p50 {self.p50:8.1f} ms  "
            f"p99 {self.p99:8.1f} ms  {self.per_second:9.0f} msg/s  ({self.elapsed_s:.1f} s)"
        )


async def run_clients(name: str, url: str, clients: int, messages: int) -> Result:
    """Connect every client, run the closed loop, collect latencies of every delivery."""
    expected = clients * messages * clients
    latencies: list[float] = []
    last_frame = time.monotonic()
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(f"{url}?name=c{index}", max_msg_size=0) for index in range(clients)]
        own_echo = [asyncio.Event() for _ in range(clients)]

        async def receive(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal last_frame
            async for frame in ws:
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    break
                now = time.perf_counter_ns()
                last_frame = time.monotonic()
                document = json.loads(frame.data)
                if document.get("type") != "message":
                    continue
                sender, _, sent_ns = document["message"].partition(":")
                latencies.append((now - int(sent_ns)) / 1e6)
                if int(sender) == index:
                    own_echo[index].set()

        async def send(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            for _ in range(messages):
                own_echo[index].clear()
                await ws.send_str(json.dumps({"action": "sendmessage", "message": f"{index}:{time.perf_counter_ns()}"}))
                await own_echo[index].wait()

        receivers = [asyncio.create_task(receive(index, ws)) for index, ws in enumerate(sockets)]
        started = time.monotonic()
        senders = asyncio.gather(*(send(index, ws) for index, ws in enumerate(sockets)))
        while len(latencies) < expected and time.monotonic() - last_frame < STALL_SECONDS:
            if senders.done() and len(latencies) >= expected:
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - started
        senders.cancel()
        await asyncio.gather(senders, return_exceptions=True)
        for ws in sockets:
            await ws.close()
        for task in receivers:
            task.cancel()
    return Result(name, len(latencies), expected, latencies, elapsed)


async def two_client_latencies(
    urls: dict[str, str], rounds: int, warmup: int = 5, mark: Callable[[], None] = lambda: None
) -> dict[str, list[float]]:
    """Per server, milliseconds from alice's send to bob's receipt, one message in flight, after `warmup` rounds.

    The servers take turns within each round, so a change in the machine's load reaches all of them alike. Rounds
    are paced just under the dev stack's per-connection message rate, which the chat enforces. `mark` is called when
    the measured rounds start and when they end, before the clients leave.
    """
    pace = 1.2 / load_stack_config("dev").settings.message_rate_per_second
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    async with aiohttp.ClientSession() as session:
        pairs = {
            name: (await session.ws_connect(f"{url}?name=alice"), await session.ws_connect(f"{url}?name=bob"))
            for name, url in urls.items()
        }
        for round_number in range(warmup + rounds):
            if round_number == warmup:
                mark()
            started = time.monotonic()
            for turn, (name, (alice, bob)) in enumerate(pairs.items()):
                # Turns spread over the round, so one server's leftover work (logs, its own copy) has passed.
                await asyncio.sleep(max(0.0, started + turn * pace / len(pairs) - time.monotonic()))
                marker = f"{round_number}:{time.perf_counter_ns()}"
                sent = time.perf_counter_ns()
                await alice.send_str(json.dumps({"action": "sendmessage", "message": marker}))
                await _receive_marker(bob, marker)
                if round_number >= warmup:
                    latencies[name].append((time.perf_counter_ns() - sent) / 1e6)
                await _receive_marker(alice, marker)  # alice's own copy, so the next round starts with empty queues
            await asyncio.sleep(max(0.0, pace - (time.monotonic() - started)))
        mark()
        for alice, bob in pairs.values():
            await alice.close()
            await bob.close()
    return latencies


async def _receive_marker(ws: aiohttp.ClientWebSocketResponse, marker: str) -> None:
    while True:
        frame = await asyncio.wait_for(ws.receive(), STALL_SECONDS)
        if frame.type is not aiohttp.WSMsgType.TEXT:
            raise RuntimeError(f"the connection ended while waiting for {marker!r}: {frame.type}")
        if json.loads(frame.data).get("message") == marker:
            return


def cpu_line(cpu_ms: dict[str, float]) -> str:
    """The CPU each measured message cost: the emulator's parts and total, and the peer's when it ran."""
    parts = {part: cpu_ms[part] for part in ("gateway", "moto", "workers")}
    line = (
        f"CPU per message: emulator {sum(parts.values()):.2f} ms ("
        + ", ".join(f"{part} {value:.2f}" for part, value in parts.items())
        + ")"
    )
    if "serverless-offline" in cpu_ms:
        line += f", serverless-offline {cpu_ms['serverless-offline']:.2f} ms"
    return line


def latency_line(name: str, latencies: list[float]) -> str:
    """Median and p90 of one server's two-client latencies."""
    p90 = statistics.quantiles(latencies, n=10)[8] if len(latencies) > 1 else float("nan")
    return f"{name:<18} two clients, warm: median {statistics.median(latencies):6.2f} ms  p90 {p90:6.2f} ms"


IDLE_SAMPLE_SECONDS = 3.0
"""How long the servers' CPU is sampled with no traffic, before the two-client run."""
SERVERLESS_OFFLINE = Path(__file__).resolve().parent / "serverless-offline"
"""The peer: the same chat on serverless-offline (`npm install` in that directory first)."""


@dataclass(frozen=True)
class Peer:
    """The running peer: where its chat is and its process (the Lambda handlers run inside it)."""

    url: str
    pid: int


@contextlib.contextmanager
def serverless_offline() -> Iterator[Peer | None]:
    """serverless-offline serving the peer chat on free ports, or None when its node_modules are not installed."""
    command = SERVERLESS_OFFLINE / "node_modules" / ".bin" / "serverless"
    if not command.exists():
        yield None
        return
    ws_port, http_port, lambda_port = free_port(), free_port(), free_port()
    environment = {
        **os.environ,
        "WS_PORT": str(ws_port),
        "CONNECTIONS_FILE": str(SERVERLESS_OFFLINE / f".connections-{os.getpid()}.json"),
        "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off",
    }
    arguments = ["offline", "--host", "127.0.0.1", "--websocketPort", str(ws_port), "--httpPort", str(http_port)]
    process = subprocess.Popen(
        [str(command), *arguments, "--lambdaPort", str(lambda_port)],
        cwd=SERVERLESS_OFFLINE,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", ws_port), timeout=1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serverless-offline did not start")
            time.sleep(0.2)
        yield Peer(f"ws://127.0.0.1:{ws_port}", process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
        Path(environment["CONNECTIONS_FILE"]).unlink(missing_ok=True)


@dataclass
class LatencyRun:
    """What the two-client run measured: latencies per server, the emulator's invocations, CPU per message."""

    latencies: dict[str, list[float]]
    invocations: list[float]
    cpu_ms: dict[str, float]
    """CPU milliseconds per measured message, beyond what each spends idle: the emulator's processes by part, and
    serverless-offline's."""


def latency_results(rounds: int) -> LatencyRun:
    """Two-client latency of the floor, the emulator and, if installed, serverless-offline, measured together; the
    durations of the emulator's measured `sendmessage` invocations; and each one's CPU per measured message."""
    port = free_port()
    floor = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(port)])
    try:
        wait_for_port(port)
        with running_emulator(extra_args=("--no-reload",)) as emulator, serverless_offline() as peer:
            urls = {"floor": f"ws://127.0.0.1:{port}/dev", "emulator": emulator.ws_url}
            if peer is None:
                print(f"(serverless-offline not installed: run `npm ci` in {SERVERLESS_OFFLINE} to compare)")
            else:
                urls["serverless-offline"] = peer.url
            samples: list[dict[str, float]] = []

            def mark() -> None:
                sample = cpu_split(emulator.pid)
                if peer is not None:
                    sample["serverless-offline"] = tree_cpu_seconds(peer.pid)
                samples.append({**sample, "at": time.monotonic()})

            mark()
            time.sleep(IDLE_SAMPLE_SECONDS)  # what each one spends with no traffic, taken out of its figure below
            mark()
            results = asyncio.run(two_client_latencies(urls, rounds, mark=mark))
            invocations = sendmessage_durations(emulator.output_text())[-rounds:]
    finally:
        floor.terminate()
        floor.wait()
    idle_start, idle_end, start, end = samples
    idle_rate = {part: (idle_end[part] - idle_start[part]) / (idle_end["at"] - idle_start["at"]) for part in end}
    busy = {part: end[part] - start[part] - idle_rate[part] * (end["at"] - start["at"]) for part in end if part != "at"}
    return LatencyRun(results, invocations, {part: max(0.0, used) / rounds * 1000 for part, used in busy.items()})


def serve_floor(port: int) -> None:
    """The floor: one aiohttp process that broadcasts each message to every socket, no Lambda, no database."""
    connected: set[web.WebSocketResponse] = set()

    async def chat(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        connected.add(ws)
        try:
            async for message in ws:
                document = json.loads(message.data)
                frame = json.dumps({"type": "message", "message": document["message"], "from": "floor"})
                for peer in list(connected):
                    await peer.send_str(frame)
        finally:
            connected.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/dev", chat)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int) -> None:
    """Until something listens on the loopback port (at most 10 s)."""
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)


def floor_result(clients: int, messages: int) -> Result:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-floor", str(port)])
    try:
        wait_for_port(port)
        return asyncio.run(run_clients("floor", f"ws://127.0.0.1:{port}/dev", clients, messages))
    finally:
        server.terminate()
        server.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds so far of a process and all its descendants (their threads included)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                with contextlib.suppress(OSError):
                    total += tree_cpu_seconds(int(child))
    return total


def cpu_split(pid: int) -> dict[str, float]:
    """CPU seconds so far of the gateway process, the moto child and the live function workers (and fork server)."""
    split = {"gateway": cpu_seconds(pid), "moto": 0.0, "workers": 0.0}
    # Children are listed per thread: moto is started from a helper thread, the workers from the event loop's.
    children = {
        child for task in Path(f"/proc/{pid}/task").iterdir() for child in (task / "children").read_text().split()
    }
    for child in children:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            # Workers may be the fork server's children: each child is counted with its descendants.
            split["moto" if b"emulator.dynamodb" in command else "workers"] += tree_cpu_seconds(int(child))
    return split


def sendmessage_durations(output: str) -> list[float]:
    """The `sendmessage` invocations' durations, in order, from the emulator's own log lines."""
    return [
        float(value) for value in re.findall(r"\[sendmessage\] \S+ -> send-message status 200 in ([\d.]+) ms", output)
    ]


def where_the_time_goes(output: str, clients: int) -> list[str]:
    """Invocation durations from the emulator's own log lines."""
    durations = sendmessage_durations(output)
    connects = [float(value) for value in re.findall(r"\[\$connect\] \S+ -> connect status 200 in ([\d.]+) ms", output)]
    if not durations:
        return ["no sendmessage invocations were logged"]
    median = statistics.median(durations)
    return [
        f"sendmessage invocations: {len(durations)}, median {median:.1f} ms, p99 "
        f"{statistics.quantiles(durations, n=100)[98]:.1f} ms "
        f"(each one: four DynamoDB calls and {clients} POSTs to @connections, about {median / clients:.2f} ms per "
        f"recipient)",
        f"$connect invocations: median {statistics.median(connects):.1f} ms" if connects else "",
    ]


def main(argv: Sequence[str]) -> int:
    """Run both servers, print both results and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=60, help="measured two-client messages (default 60)")
    parser.add_argument("--latency-only", action="store_true", help="skip the 50-client load run")
    parser.add_argument("--serve-floor", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    if arguments.serve_floor:
        serve_floor(arguments.serve_floor)
        return 0
    print(f"load average before: {' '.join(f'{load:.1f}' for load in os.getloadavg())}", flush=True)
    run = latency_results(arguments.rounds)
    latencies, invocations = run.latencies, run.invocations
    for name, measured in latencies.items():
        print(latency_line(name, measured), flush=True)
    if invocations:
        print(f"emulator's sendmessage invocations in that run: median {statistics.median(invocations):.2f} ms")
    print(cpu_line(run.cpu_ms))
    emulator_median = statistics.median(latencies["emulator"])
    ratios = f"emulator / floor: x{emulator_median / statistics.median(latencies['floor']):.1f}"
    if "serverless-offline" in latencies:
        peer_median = statistics.median(latencies["serverless-offline"])
        ratios = f"emulator / serverless-offline: x{emulator_median / peer_median:.2f}, {ratios}"
    print(f"two-client median, {ratios}")
    print(f"load average after: {' '.join(f'{load:.1f}' for load in os.getloadavg())}", flush=True)
    if arguments.latency_only:
        return 0
    clients, messages = arguments.clients, arguments.messages
    print(f"{clients} clients x {messages} messages, each broadcast to all {clients}", flush=True)
    floor = floor_result(clients, messages)
    print(floor.line(), flush=True)
    with running_emulator(extra_args=("--function-timeout", "29")) as emulator:
        before = cpu_split(emulator.pid)
        local = asyncio.run(run_clients("emulator", emulator.ws_url, clients, messages))
        after = cpu_split(emulator.pid)
        output = emulator.output_text()
    print(local.line())
    if not (floor.delivered and local.delivered):
        print("nothing delivered: no ratios", file=sys.stderr)
        return 1
    print(
        f"ratios (emulator / floor): p50 x{local.p50 / floor.p50:.1f}, p99 x{local.p99 / floor.p99:.1f}, "
        f"throughput x{local.per_second / floor.per_second:.3f}"
    )
    used = {part: after[part] - before[part] for part in after}
    deliveries = max(local.delivered, 1)
    print(
        f"CPU during the run ({local.elapsed_s:.1f} s wall on {os.cpu_count()} cores): "
        + ", ".join(
            f"{part} {seconds:.1f} s ({seconds / deliveries * 1000:.2f} ms per delivery)"
            for part, seconds in used.items()
        )
    )
    for line in where_the_time_goes(output, clients):
        if line:
            print(line)
    complete = local.delivered == local.expected and floor.delivered == floor.expected
    if not complete:
        print("NOT every message was delivered", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
