"""Broadcast fan-out: `handlers.broadcast` against a one-at-a-time loop, through a callback API with a fixed delay.

For each delay (10 ms and 20 ms per post) and audience (1,000 and 10,000 connections), a local endpoint answers
every POST like `@connections` after the delay. The concurrent broadcast runs in full; the serial loop (the same
boto3 client, one `post_to_connection` after another) runs on a sample and is extrapolated to N, since 10,000
serial posts at 20 ms would take over 200 s. Both are measured in the same run, and the output says which numbers
are extrapolated. Each also reports this process's CPU time per post: the broadcast is CPU-bound in botocore, and
on Lambda (about 0.14 vCPU at 256 MB) that CPU, not the endpoint's delay, sets the time of a large broadcast.
`--stock-client` runs the same with a boto3 client that has the handlers' timeouts, pool and retries but none of
`handlers.clients`' per-post trimming, to show what the trimming saves.

The endpoint runs in its own process (asyncio, so it costs little CPU) on 127.0.0.1; nothing leaves the machine.
Usage: `python bench/fanout.py [--sample 200] [--sizes 1000 10000] [--delays-ms 10 20] [--stock-client]`.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers import broadcast, clients  # after the path fix, so the script runs from any directory

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient

TARGET_RATIO_AT_1000 = 25.0
INTEGRATION_TIMEOUT_SECONDS = 29.0
PAYLOAD = (
    b'{"type":"message","id":"0123456789abcdef0123456789abcdef","message":"hello","from":"alice",'
    b'"connectionId":"L0SM9cOFvHcCIhw=","sentAt":"2026-11-26T00:35:05.123Z"}'
)


class DelayedCallbackProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive: each complete request is answered `200` after the delay, in arrival order."""

    def __init__(self, delay_seconds: float) -> None:
        self.delay_seconds = delay_seconds
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            length = 0
            for line in self.buffer[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            loop = asyncio.get_running_loop()
            loop.call_later(self.delay_seconds, self._answer)

    def _answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


def serve(delay_seconds: float, ready: Connection) -> None:
    """Run the delayed endpoint until the process is terminated; sends its port through `ready`."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: DelayedCallbackProtocol(delay_seconds), "127.0.0.1", 0, backlog=1024)
        ready.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def stock_client(url: str) -> ApiGatewayManagementApiClient:
    """A callback client with the handlers' timeouts, pool and retries, and botocore's defaults for the rest."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=clients.POOL_CONNECTIONS,
        connect_timeout=2,
        read_timeout=5,
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=url, config=config)


def measure(callback_api: ApiGatewayManagementApiClient, size: int, sample: int) -> dict[str, float]:
    """One concurrent broadcast to `size` connections and a serial loop of `sample` posts, both through `callback_api`:
    the broadcast's seconds, the serial loop's seconds extrapolated to `size`, and each one's CPU seconds per post."""
    serial_started, serial_cpu = time.perf_counter(), time.process_time()
    for number in range(sample):
        callback_api.post_to_connection(ConnectionId=f"serial-{number}", Data=PAYLOAD)
    serial_seconds = (time.perf_counter() - serial_started) / sample * size
    serial_cpu_per_post = (time.process_time() - serial_cpu) / sample

    ids = [f"conn-{number:05d}" for number in range(size)]
    pages = [ids[start : start + 1000] for start in range(0, size, 1000)]  # Scan-sized pages
    started, cpu = time.perf_counter(), time.process_time()
    result = broadcast.broadcast(
        pages, PAYLOAD, callback_api, lambda _: None, retry=broadcast.Retry(), workers=clients.POOL_CONNECTIONS
    )
    concurrent_seconds = time.perf_counter() - started
    cpu_per_post = (time.process_time() - cpu) / size
    if result.delivered != size:
        raise SystemExit(f"the broadcast delivered {result.delivered} of {size}: {dict(result.errors)}")
    return {
        "broadcast": concurrent_seconds,
        "serial": serial_seconds,
        "broadcast_cpu": cpu_per_post,
        "serial_cpu": serial_cpu_per_post,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--delays-ms", type=float, nargs="+", default=[10.0, 20.0])
    parser.add_argument("--sample", type=int, default=200, help="serial posts measured per case, then extrapolated")
    parser.add_argument("--stock-client", action="store_true", help="botocore's defaults, not the handlers' client")
    arguments = parser.parse_args()
    # Throwaway credentials: the client signs requests, and they only ever go to 127.0.0.1.
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")

    client_name = "stock boto3 client" if arguments.stock_client else "handlers.clients.callback_api"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"fan-out: {clients.POOL_CONNECTIONS} workers; {client_name}; {os.cpu_count()} CPUs; load average {load}; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"serial loop: {arguments.sample} posts measured per case, extrapolated to N (marked ~)")
    print(
        f"{'N':>6} {'delay':>6} {'serial':>10} {'broadcast':>10} {'ratio':>7} {'per post':>9} "
        f"{'CPU/post serial':>16} {'broadcast':>10}  target"
    )
    ratios: list[float] = []
    for delay_ms in arguments.delays_ms:
        receiver, sender = multiprocessing.Pipe(duplex=False)
        endpoint = multiprocessing.Process(target=serve, args=(delay_ms / 1000, sender), daemon=True)
        endpoint.start()
        try:
            url = f"http://127.0.0.1:{receiver.recv()}/bench"
            clients.callback_api.cache_clear()
            callback_api = stock_client(url) if arguments.stock_client else clients.callback_api(url)
            for number in range(clients.POOL_CONNECTIONS):  # open the pool's connections, as in a warm container
                callback_api.post_to_connection(ConnectionId=f"warm-{number}", Data=PAYLOAD)
            for size in arguments.sizes:
                measured = measure(callback_api, size, min(arguments.sample, size))
                concurrent, serial = measured["broadcast"], measured["serial"]
                ratio = serial / concurrent
                ratios.append(ratio)
                if size == 1000:
                    verdict = f">= {TARGET_RATIO_AT_1000:.0f}x: {'met' if ratio >= TARGET_RATIO_AT_1000 else 'MISSED'}"
                else:
                    met = concurrent < INTEGRATION_TIMEOUT_SECONDS
                    verdict = f"< {INTEGRATION_TIMEOUT_SECONDS:.0f} s: {'met' if met else 'MISSED'}"
                print(
                    f"{size:>6} {delay_ms:>4.0f}ms {'~' + format(serial, '.1f') + ' s':>10} {concurrent:>8.2f} s "
                    f"{ratio:>6.1f}x {concurrent / size * 1000:>6.2f} ms {measured['serial_cpu'] * 1e6:>13.0f} us "
                    f"{measured['broadcast_cpu'] * 1e6:>7.0f} us  {verdict}"
                )
        finally:
            endpoint.terminate()
            endpoint.join()
    print(
        f"median speed-up over the serial loop: {statistics.median(ratios):.1f}x; load average now "
        + ", ".join(f"{value:.2f}" for value in os.getloadavg())
    )


if __name__ == "__main__":
    main()
