"""The fork server: workers forked from one interpreter that imported boto3, each still a fresh Lambda init."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emulator.__main__ import options_from_arguments, parse_arguments
from emulator.config import FunctionSpec
from emulator.workers import ForkServer, FunctionPool, Invocation
from tests.emulator.conftest import TEST_ROUTES, CloudThread, cloud_options, receive_json

PROBE = """
import os, random, sys, time

IMPORTED_AT = time.time()


def report(event, context):
    import boto3
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "boto3": boto3.__file__,
        "random": random.random(),
        "cwd": os.getcwd(),
        "environment": dict(os.environ),
        "argv": sys.argv,
        "path0": sys.path[0],
    }


def leave(event, context):
    sys.stdout.flush()
    os._exit(event["code"])


def nap(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}
"""


FUNCTION_ENVIRONMENT = {"TZ": ":UTC", "PROBE": "1"}
"""Less than the fork server's own environment (`RUNTIME_ENVIRONMENT`), so a leak from it shows."""


def probe_root(tmp_path: Path, *, ship_boto3: bool = False) -> Path:
    root = tmp_path / "task"
    root.mkdir()
    (root / "probe.py").write_text(PROBE)
    if ship_boto3:
        (root / "boto3").mkdir()
        (root / "boto3" / "__init__.py").write_text("SHIPPED = True\n")
    return root


class Pools:
    """A fork server and pools on a scratch task root, as `LocalCloud` makes them, with the log they write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lines: list[str] = []
        self.server = ForkServer(self.log)
        self.pools: list[FunctionPool] = []

    def log(self, prefix: str, message: str) -> None:
        self.lines.append(f"[{prefix}] {message}")

    def pool(self, handler: str, *, max_workers: int = 2, timeout: float = 5.0) -> FunctionPool:
        spec = FunctionSpec(name=handler, handler=f"probe.{handler}", code_root=self.root, packages=(), environment=())
        environment = {**FUNCTION_ENVIRONMENT, "AWS_LAMBDA_FUNCTION_NAME": f"{handler}-1234567"}
        pool = FunctionPool(
            spec,
            self.root,
            environment,
            timeout=timeout,
            memory_mb=512,
            max_workers=max_workers,
            log=self.log,
            fork_server=self.server,
        )
        self.pools.append(pool)
        return pool


def run(root: Path, scenario: Callable[[Pools], Awaitable[Any]]) -> tuple[Any, Pools]:
    async def main() -> Any:
        pools = Pools(root)
        pools.server.start()
        try:
            return await scenario(pools), pools
        finally:
            await asyncio.gather(*(pool.close() for pool in pools.pools))
            await pools.server.close()

    # In a thread of its own: asyncio.run would leave this thread without the event loop later tests expect.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, main()).result()  # type: ignore[no-any-return]


def result(invocation: Invocation) -> dict[str, Any]:
    assert invocation.ok, f"invocation failed: {invocation.error_type}: {invocation.error_message}"
    assert isinstance(invocation.result, dict)
    return invocation.result


def test_workers_are_forked_from_one_server_yet_each_starts_as_a_fresh_worker(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> tuple[list[dict[str, Any]], int]:
        pool = pools.pool("report")
        first, second = await asyncio.gather(pool.invoke({}), pools.pool("report").invoke({}))
        assert pools.server.pid is not None
        return [result(first), result(second)], pools.server.pid

    (reports, server_pid), pools = run(root, scenario)
    assert {report["ppid"] for report in reports} == {server_pid}, "both workers must be the fork server's children"
    assert reports[0]["pid"] != reports[1]["pid"], "two pools need two workers"
    assert reports[0]["random"] != reports[1]["random"], "forked workers must not share the random module's state"
    for report in reports:
        environment = {name: value for name, value in report["environment"].items() if name != "LC_CTYPE"}
        assert environment == {**FUNCTION_ENVIRONMENT, "AWS_LAMBDA_FUNCTION_NAME": "report-1234567"}, (
            "a forked worker must have exactly its function's environment"
        )
        assert report["cwd"] == str(root) and report["path0"] == str(root), "cwd and sys.path[0] are the task root"
        assert report["argv"][1:] == [str(root), "probe.report"], "sys.argv as an exec'd worker has it"
        assert not report["boto3"].startswith(str(root)), "boto3 is the runtime's"
    assert sum("(forked, boto3 already imported)" in line for line in pools.lines) == 2, (
        f"both cold starts must say they were forked: {pools.lines}"
    )


def test_a_task_root_shipping_a_preloaded_module_gets_a_fresh_interpreter(tmp_path: Path) -> None:
    root = probe_root(tmp_path, ship_boto3=True)

    async def scenario(pools: Pools) -> dict[str, Any]:
        return result(await pools.pool("report").invoke({}))

    report, pools = run(root, scenario)
    assert report["boto3"] == str(root / "boto3" / "__init__.py"), "the zip's own boto3 must win, as on Lambda"
    assert any("ships boto3, which it preloaded" in line for line in pools.lines), (
        f"the fallback must be explained: {pools.lines}"
    )
    assert not any("forked" in line for line in pools.lines if "cold start" in line), "that worker was exec'd"


def test_exits_and_timeouts_of_forked_workers_are_reported_as_lambda_does(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> list[Invocation]:
        leave = pools.pool("leave")
        nap = pools.pool("nap", timeout=0.5)
        return [
            await leave.invoke({"code": 3}),
            await leave.invoke({"code": 0}),
            await nap.invoke({"seconds": 5}),
            await nap.invoke({"seconds": 0}),
        ]

    (exited, exited_cleanly, timed_out, after), _ = run(root, scenario)
    assert (exited.error_type, exited.error_message) == (
        "Runtime.ExitError",
        "Runtime exited with error: exit status 3",
    )
    assert exited_cleanly.error_message == "Runtime exited with error: exit status 0", "even a clean exit fails it"
    assert timed_out.error_type == "Sandbox.Timedout", f"the worker past its timeout is killed: {timed_out}"
    assert after.ok, "a fresh worker serves after the killed one"


def test_when_the_fork_server_dies_its_workers_stop_and_later_ones_start_fresh(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> tuple[dict[str, Any], dict[str, Any]]:
        pool = pools.pool("report")
        before = result(await pool.invoke({}))
        assert pools.server.pid is not None
        os.kill(pools.server.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(before["pid"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(before["pid"]), "a worker whose fork server died must be stopped"
        return before, result(await pool.invoke({}))

    (before, after), pools = run(root, scenario)
    assert after["pid"] != before["pid"], "a new worker must serve"
    assert after["ppid"] == os.getpid(), "with no fork server, the worker is exec'd by the emulator itself"
    assert any("exited unexpectedly; its 1 workers are stopped" in line for line in pools.lines), pools.lines


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is not running: it only waits for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_overlapping_invocations_fork_one_worker_each(tmp_path: Path) -> None:
    root = probe_root(tmp_path)
    count = 3

    async def scenario(pools: Pools) -> list[dict[str, Any]]:
        pool = pools.pool("nap", max_workers=count)
        return [
            result(outcome) for outcome in await asyncio.gather(*(pool.invoke({"seconds": 0.5}) for _ in range(count)))
        ]

    replies, _ = run(root, scenario)
    assert len({reply["pid"] for reply in replies}) == count, "overlapping invocations need a worker each"


def test_the_emulator_forks_its_workers_unless_told_not_to() -> None:
    assert options_from_arguments(parse_arguments([])).fork_workers, "forking is the default"
    assert not options_from_arguments(parse_arguments(["--no-fork-server"])).fork_workers, "--no-fork-server"
    echo = next(route for route in TEST_ROUTES if route.key == "echo")
    for fork_workers in (True, False):
        running = CloudThread(cloud_options(routes=(echo,), fork_workers=fork_workers))
        running.start()
        try:
            with running.connect() as client:
                client.send(json.dumps({"action": "echo"}))
                assert "invocations" in receive_json(client), "the worker must serve either way"
        finally:
            running.stop()
        starts = [line for line in running.logs if "cold start: worker" in line]
        assert starts and all(("(forked, boto3 already imported)" in line) == fork_workers for line in starts), (
            f"fork_workers={fork_workers}: {starts}"
        )
