"""Broadcast fan-out: CPU per post of `handlers.broadcast` against a stock boto3 client, and broadcast times at scale.

A local endpoint (its own process, asyncio, 127.0.0.1) answers every POST like `@connections` after a fixed delay,
and optionally enforces a token-bucket quota with 429, as the account throttle does. Measured in one run:

1. CPU per post: the same audience through a stock boto3 client in a 64-thread pool (`post_to_connection`, the
   way the handlers posted before) and through `handlers.broadcast`; this process's CPU time over the posts.
2. Broadcast time for each audience size through a quota (default 10,000/s, burst 5,000, 10 ms per post) with the
   handlers' pacer capped at `--cap` posts/s: seconds, the quota floor N / quota, and the ratio; once from one
   process (one invocation) and once from `--invocations` processes sharing the cap, each with a slice of the
   audience, as parallel invocations of a scale-out would (on this machine's cores, not Lambda's).

Usage: `python bench/fanout.py [--cpu-posts 3000] [--sizes 1000 10000 100000] [--delay-ms 10] [--quota 10000]
[--invocations 1 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Queue
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers import broadcast  # after the path fix, so the script runs from any directory
from handlers.callback_client import CallbackClient

CPU_TARGET_SECONDS = 0.0005
PAYLOAD = (
    b'{"type":"message","id":"0123456789abcdef0123456789abcdef","message":"hello","from":"alice",'
    b'"connectionId":"L0SM9cOFvHcCIhw=","sentAt":"2026-11-26T00:35:05.123Z"}'
)
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
THROTTLED = (
    b"HTTP/1.1 429 Too Many Requests\r\nx-amzn-ErrorType: LimitExceededException\r\n"
    b"Content-Type: application/json\r\nContent-Length: 28\r\n\r\n"
    b'{"message":"Limit Exceeded"}'
)


class Quota:
    """The account throttle: a token bucket shared by every connection to the endpoint."""

    def __init__(self, per_second: float, burst: float) -> None:
        self.per_second, self.burst = per_second, burst
        self.tokens, self.updated = burst, time.monotonic()

    def take(self) -> bool:
        if self.per_second <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class DelayedCallbackProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: each request answered 200 after the delay (429 at once when over the quota)."""

    def __init__(self, delay_seconds: float, quota: Quota) -> None:
        self.delay_seconds, self.quota = delay_seconds, quota
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            found = CONTENT_LENGTH.search(self.buffer[:end])
            length = int(found.group(1)) if found else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            if self.quota.take():
                asyncio.get_running_loop().call_later(
                    self.delay_seconds, self._answer, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                )
            else:
                self._answer(THROTTLED)

    def _answer(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


def serve(delay_seconds: float, quota: tuple[float, float], ready: Connection) -> None:
    """Run the endpoint until terminated; sends its port through `ready`."""

    async def main() -> None:
        bucket = Quota(*quota)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: DelayedCallbackProtocol(delay_seconds, bucket), "127.0.0.1", 0, backlog=1024
        )
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class Endpoint:
    """The endpoint process, as a context manager giving its URL."""

    def __init__(self, delay_seconds: float, quota: tuple[float, float] = (0, 0)) -> None:
        receiver, sender = multiprocessing.Pipe(duplex=False)
        self.process = multiprocessing.Process(target=serve, args=(delay_seconds, quota, sender), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{receiver.recv()}/bench"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join()


def stock_cpu_per_post(url: str, ids: list[str]) -> float:
    """A stock boto3 client (one attempt, 64 connections) posting to every id from 64 threads."""
    config = Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=64)
    client = boto3.client("apigatewaymanagementapi", endpoint_url=url, config=config)
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda cid: client.post_to_connection(ConnectionId=cid, Data=PAYLOAD), ids[:64]))  # warm
        cpu = time.process_time()
        list(pool.map(lambda cid: client.post_to_connection(ConnectionId=cid, Data=PAYLOAD), ids))
        return (time.process_time() - cpu) / len(ids)


def ours(
    url: str, ids: list[str], workers: int, pacer: broadcast.Pacer | None = None, *, warm: bool = True
) -> tuple[float, float]:
    """`handlers.broadcast` to every id: wall seconds and CPU seconds per post (a warm container: pool open)."""
    session = boto3.session.Session()
    credentials = session.get_credentials()
    assert credentials is not None
    client = CallbackClient(url, "us-east-1", credentials)
    try:
        if warm:
            broadcast.broadcast(
                [ids[:workers]], PAYLOAD, client, lambda _: None, retry=broadcast.Retry(), workers=workers
            )
        pages = [ids[start : start + 1000] for start in range(0, len(ids), 1000)]
        started, cpu = time.perf_counter(), time.process_time()
        result = broadcast.broadcast(
            pages,
            PAYLOAD,
            client,
            lambda _: None,
            retry=broadcast.Retry(),
            workers=workers,
            pacer=pacer,
            time_budget_seconds=600,
        )
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    finally:
        client.close()
    if result.delivered != len(ids):
        raise SystemExit(f"delivered {result.delivered} of {len(ids)}: {dict(result.errors)}")
    return elapsed, cpu_used / len(ids)


def invocation(
    url: str, ids: list[str], cap: float, *, workers: int, start: Event, results: Queue[tuple[float, float, int]]
) -> None:
    """One simulated invocation of a scale-out: its share of the audience and of the cap, started with the others."""
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    pacer = broadcast.Pacer(cap)
    results.put((0.0, 0.0, -1))  # ready: imported and forked, as a warm container is
    start.wait()
    elapsed, cpu = ours(url, ids, workers, pacer, warm=False)
    results.put((elapsed, cpu, pacer.throttles))


def scaled_out(url: str, ids: list[str], workers: int, cap: float, invocations: int) -> tuple[float, float, int]:
    """Wall seconds until `invocations` processes, each posting to its slice, are all done; CPU/post; 429s."""
    start = multiprocessing.Event()
    results: Queue[tuple[float, float, int]] = multiprocessing.Queue()
    slices = [ids[number::invocations] for number in range(invocations)]
    processes = [
        multiprocessing.Process(
            target=invocation,
            args=(url, part, cap / invocations),
            kwargs={"workers": workers, "start": start, "results": results},
        )
        for part in slices
    ]
    for process in processes:
        process.start()
    for _ in processes:
        results.get()  # every process ready before the clock starts
    started = time.perf_counter()
    start.set()
    outcomes = [results.get() for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()
    cpu = sum(outcome[1] * len(part) for outcome, part in zip(outcomes, slices, strict=True)) / len(ids)
    return elapsed, cpu, sum(outcome[2] for outcome in outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cpu-posts", type=int, default=3000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--delay-ms", type=float, default=10.0)
    parser.add_argument("--quota", type=float, default=10000.0, help="account throttle, requests/s")
    parser.add_argument("--burst", type=float, default=5000.0, help="account throttle burst")
    parser.add_argument("--cap", type=float, default=9000.0, help="the pacer's cap (broadcastMaxPostsPerSecond)")
    parser.add_argument("--workers", type=int, default=broadcast.WORKERS)
    parser.add_argument(
        "--invocations", type=int, nargs="+", default=[1, 2], help="parallel invocations sharing the cap"
    )
    arguments = parser.parse_args()
    # Throwaway credentials: requests are signed, and they only ever go to 127.0.0.1.
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} CPUs; load average {load}; Python {sys.version.split()[0]}; {arguments.workers} workers")

    ids = [f"conn-{number:06d}=" for number in range(arguments.cpu_posts)]
    with Endpoint(arguments.delay_ms / 1000) as url:
        stock = stock_cpu_per_post(url, ids)
        _, lean = ours(url, ids, arguments.workers)
    print(
        f"CPU per post, {len(ids)} posts at {arguments.delay_ms:.0f} ms: "
        f"stock boto3 (64 threads) {stock * 1e6:.0f} us, "
        f"handlers.broadcast {lean * 1e6:.0f} us: {stock / lean:.1f}x less; target <= "
        f"{CPU_TARGET_SECONDS * 1e6:.0f} us: {'met' if lean <= CPU_TARGET_SECONDS else 'MISSED'}"
    )

    quota = (arguments.quota, arguments.burst)
    print(
        f"broadcast through a quota of {arguments.quota:.0f}/s (burst {arguments.burst:.0f}), {arguments.delay_ms:.0f} "
        f"ms per post, pacer cap {arguments.cap:.0f}/s, one invocation:"
    )
    for size in arguments.sizes:
        ids = [f"conn-{number:06d}=" for number in range(size)]
        single = 0.0
        for count in arguments.invocations:
            with Endpoint(arguments.delay_ms / 1000, quota) as url:
                elapsed, cpu, throttles = scaled_out(url, ids, arguments.workers, arguments.cap, count)
            single = single or elapsed
            floor = size / arguments.quota
            print(
                f"  {size:>7} connections, {count} invocation(s): {elapsed:6.2f} s, quota floor {floor:5.2f} s, "
                f"{elapsed / floor:4.1f}x the floor, {single / elapsed:3.1f}x the first; "
                f"CPU {cpu * 1e6:.0f} us/post; 429s {throttles}"
            )
    print("load average now " + ", ".join(f"{value:.2f}" for value in os.getloadavg()))


if __name__ == "__main__":
    main()
