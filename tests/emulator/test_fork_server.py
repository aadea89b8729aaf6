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

import pytest

import emulator.workers
from emulator.__main__ import options_from_arguments, parse_arguments
from emulator.config import FunctionSpec
from emulator.workers import FORK_SERVER_SUPPORTED, ForkServer, FunctionPool, Invocation
from tests.emulator.conftest import TEST_ROUTES, CloudThread, cloud_options, receive_json

needs_fork = pytest.mark.skipif(not FORK_SERVER_SUPPORTED, reason="the fork server needs pidfds (Linux)")

PROBE = """
import locale, logging, os, random, signal, sys, threading, time

SIGNALS = ("SIGINT", "SIGTERM", "SIGCHLD", "SIGPIPE", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGXFSZ")


def report(event, context):
    import boto3
    return {"pid": os.getpid(), "ppid": os.getppid(), "boto3": boto3.__file__, "random": random.random()}


def fingerprint(event, context):
    '''Everything of its process a handler could look at that must not depend on how the worker started.'''
    umask = os.umask(0o022)
    os.umask(umask)
    root = logging.getLogger()
    return {
        "environment": dict(os.environ),
        "fds": sorted(os.listdir("/proc/self/fd")),
        "signals": {name: str(signal.getsignal(getattr(signal, name))) for name in SIGNALS},
        "blocked": sorted(int(number) for number in signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "wakeupFd": signal.set_wakeup_fd(-1),
        "stdio": [[s.encoding, s.errors, s.line_buffering] for s in (sys.stdin, sys.stdout, sys.stderr)],
        "path": sys.path,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "umask": umask,
        "threads": threading.active_count(),
        "rootLogger": [root.level, [type(handler).__name__ for handler in root.handlers]],
        "tz": list(time.tzname),
        "locale": list(locale.getlocale()),
        "flags": str(sys.flags),
        "filesystemEncoding": sys.getfilesystemencoding(),
    }


def leave(event, context):
    sys.stdout.flush()
    os._exit(event["code"])


def nap(event, context):
    time.sleep(event["seconds"])
    return {"pid": os.getpid()}
"""

FUNCTION_ENVIRONMENT = {"TZ": "EST5", "PROBE": "1"}
"""Less than the fork server's own environment (`RUNTIME_ENVIRONMENT`), and another zone, so a leak from it shows."""
FORKED = "(forked, boto3 already imported)"


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

    def __init__(self, root: Path, *, fork: bool = True) -> None:
        self.root = root
        self.lines: list[str] = []
        self.server = ForkServer(self.log)
        self.fork = fork
        self.pools: list[FunctionPool] = []

    def log(self, prefix: str, message: str) -> None:
        self.lines.append(f"[{prefix}] {message}")

    def cold_starts(self) -> list[str]:
        return [line for line in self.lines if "cold start: worker" in line]

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


def run(root: Path, scenario: Callable[[Pools], Awaitable[Any]], *, fork: bool = True) -> tuple[Any, Pools]:
    async def main() -> Any:
        pools = Pools(root, fork=fork)
        if fork:
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


@needs_fork
def test_a_forked_worker_looks_to_its_handler_exactly_like_an_execd_one(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> dict[str, Any]:
        return result(await pools.pool("fingerprint").invoke({}))

    forked, forked_pools = run(root, scenario)
    execd, execd_pools = run(root, scenario, fork=False)
    assert [FORKED in line for line in forked_pools.cold_starts()] == [True], forked_pools.lines
    assert [FORKED in line for line in execd_pools.cold_starts()] == [False], execd_pools.lines
    differences = {key: (forked[key], execd[key]) for key in execd if forked.get(key) != execd[key]}
    assert not differences, f"forked (left) and exec'd (right) workers differ: {differences}"
    assert (
        forked["environment"].items()
        >= {**FUNCTION_ENVIRONMENT, "AWS_LAMBDA_FUNCTION_NAME": "fingerprint-1234567"}.items()
    )
    assert forked["cwd"] == str(root) and forked["path"][0] == str(root), "cwd and sys.path[0] are the task root"


@needs_fork
def test_workers_are_the_fork_servers_children_each_with_its_own_state(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> tuple[list[dict[str, Any]], int | None]:
        first, second = await asyncio.gather(pools.pool("report").invoke({}), pools.pool("report").invoke({}))
        return [result(first), result(second)], pools.server.pid

    (reports, server_pid), pools = run(root, scenario)
    assert {report["ppid"] for report in reports} == {server_pid}, "both workers must be the fork server's children"
    assert reports[0]["pid"] != reports[1]["pid"], "two pools need two workers"
    assert reports[0]["random"] != reports[1]["random"], "forked workers must not share the random module's state"
    assert all(FORKED in line for line in pools.cold_starts()) and len(pools.cold_starts()) == 2, pools.lines


@needs_fork
def test_a_task_root_shipping_a_preloaded_module_gets_a_fresh_interpreter(tmp_path: Path) -> None:
    root = probe_root(tmp_path, ship_boto3=True)

    async def scenario(pools: Pools) -> dict[str, Any]:
        return result(await pools.pool("report").invoke({}))

    report, pools = run(root, scenario)
    assert report["boto3"] == str(root / "boto3" / "__init__.py"), "the zip's own boto3 must win, as on Lambda"
    assert any("ships boto3, which it preloaded" in line for line in pools.lines), (
        f"the fallback must be explained: {pools.lines}"
    )
    assert pools.cold_starts() and not any(FORKED in line for line in pools.cold_starts()), "that worker was exec'd"


@needs_fork
def test_exits_signals_and_timeouts_of_forked_workers_are_reported_as_lambda_does(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> list[Invocation]:
        leave = pools.pool("leave")
        nap = pools.pool("nap", timeout=0.5)
        outcomes = [await leave.invoke({"code": 3}), await leave.invoke({"code": 0})]
        killed = asyncio.ensure_future(nap.invoke({"seconds": 5}))
        deadline = time.monotonic() + 10
        while not pools.cold_starts()[2:] and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        os.kill(int(pools.cold_starts()[2].split("worker ")[1].split()[0]), signal.SIGKILL)
        return [*outcomes, await killed, await nap.invoke({"seconds": 5}), await nap.invoke({"seconds": 0})]

    (exited, exited_cleanly, killed, timed_out, after), pools = run(root, scenario)
    assert (exited.error_type, exited.error_message) == (
        "Runtime.ExitError",
        "Runtime exited with error: exit status 3",
    )
    assert exited_cleanly.error_message == "Runtime exited with error: exit status 0", "even a clean exit fails it"
    assert killed.error_message == "Runtime exited with error: signal: 9", f"a killed worker: {killed}"
    assert timed_out.error_type == "Sandbox.Timedout", f"the worker past its timeout is killed: {timed_out}"
    assert after.ok, "a fresh worker serves after the killed one"
    assert pools.cold_starts() and all(FORKED in line for line in pools.cold_starts()), pools.lines


@needs_fork
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


@needs_fork
def test_a_fork_server_that_stops_answering_is_stopped_and_workers_are_execd(tmp_path: Path) -> None:
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> dict[str, Any]:
        pools.server.reply_timeout = 0.5
        pool = pools.pool("report")
        result(await pool.invoke({}))  # the server is ready: what follows tests a server that stops answering
        assert pools.server.pid is not None
        os.kill(pools.server.pid, signal.SIGSTOP)
        return result(await pools.pool("report").invoke({}))

    report, pools = run(root, scenario)
    assert report["ppid"] == os.getpid(), "the worker must be exec'd once the fork server does not answer"
    assert any("no answer within 0.5 s: stopped" in line for line in pools.lines), pools.lines


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is not running: it only waits for its parent)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@needs_fork
def test_overlapping_invocations_fork_one_worker_each(tmp_path: Path) -> None:
    root = probe_root(tmp_path)
    count = 3

    async def scenario(pools: Pools) -> list[dict[str, Any]]:
        pool = pools.pool("nap", max_workers=count)
        outcomes = await asyncio.gather(*(pool.invoke({"seconds": 0.5}) for _ in range(count)))
        return [result(outcome) for outcome in outcomes]

    replies, pools = run(root, scenario)
    assert len({reply["pid"] for reply in replies}) == count, "overlapping invocations need a worker each"
    assert len(pools.cold_starts()) == count and all(FORKED in line for line in pools.cold_starts()), pools.lines


def test_without_pidfds_there_is_no_fork_server_and_workers_are_execd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator.workers, "FORK_SERVER_SUPPORTED", False)
    root = probe_root(tmp_path)

    async def scenario(pools: Pools) -> tuple[dict[str, Any], int | None]:
        pools.server.start()
        return result(await pools.pool("report").invoke({})), pools.server.pid

    (report, server_pid), pools = run(root, scenario, fork=False)
    assert server_pid is None, "no fork server may start where it is not supported"
    assert report["ppid"] == os.getpid(), "the worker is exec'd by the emulator itself"
    assert not any("fork-server" in line for line in pools.lines), f"nothing to warn about: {pools.lines}"


def test_the_command_line_forks_workers_unless_told_not_to() -> None:
    assert options_from_arguments(parse_arguments([])).fork_workers, "forking is the default"
    assert not options_from_arguments(parse_arguments(["--no-fork-server"])).fork_workers, "--no-fork-server"


@needs_fork
def test_the_emulator_forks_its_workers_unless_told_not_to() -> None:
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
        assert starts and all((FORKED in line) == fork_workers for line in starts), f"{fork_workers}: {starts}"
