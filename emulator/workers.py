"""The Lambda side of the emulator: worker processes per function, warm between invocations.

A pool grows when invocations overlap, so a broadcast posting back to the gateway never waits behind itself; a
worker that times out or dies is replaced by a cold one, as on Lambda (docs/emulator.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from emulator import lambda_runtime
from emulator.config import FunctionSpec

RUNTIME_SCRIPT = Path(__file__).resolve().parent / "lambda_runtime.py"
INIT_TIMEOUT_SECONDS = 10.0
"""Lambda gives a function's init (module import) 10 s."""
STOP_GRACE_SECONDS = 2.0
PROTOCOL_LINE_LIMIT = 8 * 1024 * 1024
"""Largest protocol line (an event or a result); Lambda's own response limit is 6 MB."""

FORK_SERVER_PREFIX = "fork-server"
FORK_SERVER_SUPPORTED = all(
    (hasattr(os, "pidfd_open"), hasattr(signal, "pidfd_send_signal"), hasattr(socket, "SOCK_SEQPACKET"))
)
"""Linux: pidfds let the emulator signal and watch processes it did not start itself."""
RUNTIME_ENVIRONMENT = {"TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"}
"""What Lambda's runtime sets in every function's environment besides the function's own variables."""

Log = Callable[[str, str], None]
"""Writes one line to the terminal under a prefix (the function's or route's name)."""


class WorkerProcess(Protocol):
    """What a worker needs of its process: `asyncio.subprocess.Process` or a `ForkedProcess`."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    @property
    def stderr(self) -> asyncio.StreamReader | None: ...

    def kill(self) -> None: ...

    async def wait(self) -> int: ...


@dataclass
class _Child:
    """A process the fork server started: its pid, a pidfd that signals only that process, its exit status."""

    pid: int
    pidfd: int
    exited: asyncio.Future[int]
    code: int | None = None

    def ended(self, code: int) -> None:
        if self.code is None:
            self.code = code
            os.close(self.pidfd)
            self.exited.set_result(code)

    def kill(self) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


@dataclass
class ForkedProcess:
    """A worker forked by the fork server, with asyncio streams on its pipes as `asyncio.subprocess` gives them."""

    child: _Child
    stdin: asyncio.StreamWriter
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def returncode(self) -> int | None:
        return self.child.code

    def kill(self) -> None:
        self.child.kill()

    async def wait(self) -> int:
        code = await asyncio.shield(self.child.exited)
        self.stdin.close()
        return code


@dataclass
class ForkServer:
    """One process that imported the runtime's boto3 once and forks each worker from it (docs/emulator.md).

    A worker then starts in milliseconds, not an interpreter start and a boto3 import later; when the fork server is
    unavailable, or a task root ships a module it preloaded, `spawn` returns None and the worker is exec'd instead.
    """

    log: Log
    _process: subprocess.Popen[bytes] | None = None
    _socket: socket.socket | None = None
    _ready: asyncio.Future[bool] | None = None
    _pending: dict[str, asyncio.Future[_Child | None]] = field(default_factory=dict)
    _children: dict[int, _Child] = field(default_factory=dict)
    _refused: set[str] = field(default_factory=set)
    _closing: bool = False
    reply_timeout: float = INIT_TIMEOUT_SECONDS
    """How long a start may wait for the fork server (its boto3 import, then the fork) before it is given up on."""

    def start(self) -> None:
        """Start the fork server; it becomes ready (boto3 imported) while the rest of the emulator starts."""
        if not FORK_SERVER_SUPPORTED:
            return
        loop = asyncio.get_running_loop()
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        except OSError as error:
            self.log(FORK_SERVER_PREFIX, f"cannot start ({error}): every worker starts a fresh interpreter")
            return
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(RUNTIME_SCRIPT), "--fork-server", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=RUNTIME_ENVIRONMENT,
                pass_fds=[theirs.fileno()],
            )
        except OSError as error:
            ours.close()
            self.log(FORK_SERVER_PREFIX, f"cannot start ({error}): every worker starts a fresh interpreter")
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._socket = ours
        self._ready = loop.create_future()
        loop.add_reader(ours.fileno(), self._receive)

    @property
    def pid(self) -> int | None:
        """The fork server's process id, if it started."""
        return self._process.pid if self._process is not None else None

    async def spawn(self, task_root: Path, handler: str, environment: Mapping[str, str]) -> ForkedProcess | None:
        """Fork a worker running `handler` from `task_root` in `environment`; None if it must be exec'd instead."""
        if self._ready is None:
            return None
        loop = asyncio.get_running_loop()
        request_id = uuid.uuid4().hex
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        stderr_read, stderr_write = os.pipe()
        theirs = [stdin_read, stdout_write, stderr_write]
        # File objects own our ends from here on: closing one twice is harmless, an fd closed twice is not.
        files = (
            os.fdopen(stdin_write, "wb", buffering=0),
            os.fdopen(stdout_read, "rb", buffering=0),
            os.fdopen(stderr_read, "rb", buffering=0),
        )
        request = {"id": request_id, "taskRoot": str(task_root), "handler": handler, "environment": dict(environment)}
        child = None
        try:
            async with asyncio.timeout(self.reply_timeout):
                if await asyncio.shield(self._ready) and self._socket is not None:
                    started: asyncio.Future[_Child | None] = loop.create_future()
                    self._pending[request_id] = started
                    lambda_runtime.send_message(self._socket, request, theirs)
                    child = await started
        except TimeoutError:  # before OSError, whose subclass it is
            self._unresponsive()
        except OSError:
            pass
        finally:
            _close_all(theirs)  # the fork server holds its own copies once they are sent
            self._pending.pop(request_id, None)  # a reply after this kills its child (`_resolve`)
            if child is None:
                for file in files:
                    file.close()
        if child is None:
            return None
        try:
            return await _attach(loop, child, *files)
        except BaseException:
            child.kill()
            raise

    def _unresponsive(self) -> None:
        """No reply in time: the fork server is stopped (its workers with it), and workers are exec'd from now on."""
        if self._process is not None and self._process.poll() is None:
            self.log(
                FORK_SERVER_PREFIX,
                f"no answer within {self.reply_timeout:g} s: stopped; every worker starts a fresh interpreter",
            )
            self._process.kill()

    def _receive(self) -> None:
        """Handle every message the fork server sent (`add_reader` callback)."""
        assert self._socket is not None
        while True:
            try:
                message, fds, _, _ = socket.recv_fds(self._socket, lambda_runtime.MESSAGE_LIMIT, 1)
            except BlockingIOError:
                return
            except OSError:
                message, fds = b"", []
            if not message:
                _close_all(fds)
                self._lost()
                return
            self._dispatch(json.loads(message), fds)

    def _dispatch(self, message: dict[str, Any], fds: list[int]) -> None:
        kind = message.get("type")
        if kind == "ready" and self._ready is not None and not self._ready.done():
            self._ready.set_result(True)
        elif kind == "started" and fds:
            child = _Child(int(message["pid"]), fds[0], asyncio.get_running_loop().create_future())
            self._children[child.pid] = child
            self._resolve(str(message["id"]), child)
        elif kind == "started":  # its pidfd did not arrive: it cannot be tracked, so it is left to its pipes' EOF
            self._resolve(str(message["id"]), None)
        elif kind == "refused":
            _close_all(fds)
            shadowed = ", ".join(message.get("shadowed") or [])
            why = f"the task root ships {shadowed}, which it preloaded" if shadowed else message.get("error", "")
            if why not in self._refused:
                self._refused.add(why)
                self.log(FORK_SERVER_PREFIX, f"{why}: that function's workers start a fresh interpreter")
            self._resolve(str(message["id"]), None)
        elif kind == "exited":
            child_ = self._children.pop(int(message["pid"]), None)
            if child_ is not None:
                child_.ended(int(message["code"]))

    def _resolve(self, request_id: str, child: _Child | None) -> None:
        future = self._pending.pop(request_id, None)
        if future is not None and not future.done():
            future.set_result(child)
        elif child is not None:  # its spawn was cancelled: nobody holds its pipes, so it is killed
            child.kill()

    def _lost(self) -> None:
        """The fork server is gone: its workers are killed (they could not be waited for), later ones are exec'd."""
        loop = asyncio.get_running_loop()
        assert self._socket is not None
        loop.remove_reader(self._socket.fileno())
        self._socket.close()
        self._socket = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(False)
            if not self._closing:
                self.log(FORK_SERVER_PREFIX, "exited before it was ready: every worker starts a fresh interpreter")
        self._ready = None
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self._pending.clear()
        children, self._children = list(self._children.values()), {}
        if children and not self._closing:
            self.log(FORK_SERVER_PREFIX, f"exited unexpectedly; its {len(children)} workers are stopped")
        for child in children:
            child.kill()
            loop.add_reader(child.pidfd, _on_gone, loop, child)

    async def close(self) -> None:
        """Stop the fork server (after the workers it started)."""
        self._closing = True
        if self._socket is not None:
            self._lost()
        if self._process is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(self._process.wait), STOP_GRACE_SECONDS)
            except TimeoutError:
                self._process.kill()
                await asyncio.to_thread(self._process.wait)


def _on_gone(loop: asyncio.AbstractEventLoop, child: _Child) -> None:
    """A killed child of a fork server that died: its pidfd became readable, so it has exited."""
    loop.remove_reader(child.pidfd)
    child.ended(-signal.SIGKILL)


async def _attach(
    loop: asyncio.AbstractEventLoop, child: _Child, stdin: Any, stdout: Any, stderr: Any
) -> ForkedProcess:
    """asyncio streams on a forked child's pipes; on failure, every transport made so far is closed with its pipe."""
    transports: list[asyncio.BaseTransport] = []
    readers: list[asyncio.StreamReader] = []
    try:
        for pipe in (stdout, stderr):
            reader = asyncio.StreamReader(limit=PROTOCOL_LINE_LIMIT, loop=loop)
            transport, _ = await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader), pipe)
            transports.append(transport)
            readers.append(reader)
        writer, protocol = await loop.connect_write_pipe(
            lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), stdin
        )
        transports.append(writer)
    except BaseException:
        for made in transports:
            made.close()  # unregisters its fd before the file below closes it
        for pipe in (stdin, stdout, stderr):
            pipe.close()
        raise
    return ForkedProcess(child, asyncio.StreamWriter(writer, protocol, None, loop), readers[0], readers[1])


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


@dataclass(frozen=True)
class Invocation:
    """How one invocation ended."""

    ok: bool
    result: Any = None
    error_type: str = ""
    error_message: str = ""
    duration_ms: float = 0.0
    max_memory_mb: float = 0.0


class Worker:
    """One execution environment: a process that imported the handler once and keeps its module state."""

    def __init__(
        self,
        spec: FunctionSpec,
        task_root: Path,
        environment: Mapping[str, str],
        log: Log,
        fork_server: ForkServer | None = None,
    ) -> None:
        self._spec = spec
        self._task_root = task_root
        self._environment = dict(environment)
        self._log = log
        self._fork_server = fork_server
        self._process: WorkerProcess | None = None
        self._output: asyncio.Task[None] | None = None
        self.alive = False

    async def start(self) -> Invocation | None:
        """Start the process and run the init; returns the init failure, if any."""
        started = time.monotonic()
        if self._fork_server is not None:
            self._process = await self._fork_server.spawn(self._task_root, self._spec.handler, self._environment)
        try:
            self._process = self._process or await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                str(RUNTIME_SCRIPT),
                str(self._task_root),
                self._spec.handler,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment,
                cwd=self._task_root,
                limit=PROTOCOL_LINE_LIMIT,
            )
        except OSError as error:
            return Invocation(ok=False, error_type="Runtime.InitError", error_message=f"cannot start worker: {error}")
        self._output = asyncio.create_task(self._relay_output())
        self.alive = True
        try:
            first = await self._read(INIT_TIMEOUT_SECONDS)
        except TimeoutError:
            await self.kill()
            return Invocation(
                ok=False,
                error_type="Runtime.InitError",
                error_message=f"Init timed out after {INIT_TIMEOUT_SECONDS:.0f} seconds",
            )
        if first is None:
            return await self._exited(started)
        init_ms = (time.monotonic() - started) * 1000
        if first.get("type") != "ready":
            await self.kill()
            return Invocation(
                ok=False,
                error_type=str(first.get("errorType", "Runtime.InitError")),
                error_message=str(first.get("errorMessage", "")),
                duration_ms=init_ms,
            )
        # A forked worker's init leaves out the boto3 import a Lambda init would pay: the log says so.
        forked = " (forked, boto3 already imported)" if isinstance(self._process, ForkedProcess) else ""
        self._log(self._spec.name, f"cold start: worker {self._process.pid} ready, init {init_ms:.0f} ms{forked}")
        return None

    async def invoke(self, event: Mapping[str, Any], aws_request_id: str, timeout: float) -> Invocation:
        """Run the handler on `event`; kill the process when it exceeds `timeout` seconds."""
        assert self._process is not None and self._process.stdin is not None
        started = time.monotonic()
        request = {"event": event, "awsRequestId": aws_request_id, "timeoutMs": int(timeout * 1000)}
        try:
            self._process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            await self._process.stdin.drain()
            response = await self._read(timeout)
        except TimeoutError:
            await self.kill()
            message = f"Task timed out after {timeout:.2f} seconds"
            self._log(self._spec.name, f"{aws_request_id} {message}")
            return Invocation(
                ok=False,
                error_type="Sandbox.Timedout",
                error_message=message,
                duration_ms=(time.monotonic() - started) * 1000,
            )
        except (BrokenPipeError, ConnectionResetError):
            response = None
        except ValueError as error:
            # Unparseable protocol output: the worker cannot be trusted any more.
            await self.kill()
            return Invocation(
                ok=False,
                error_type="Runtime.InvalidResponse",
                error_message=str(error),
                duration_ms=(time.monotonic() - started) * 1000,
            )
        if response is None:
            return await self._exited(started)
        duration_ms = (time.monotonic() - started) * 1000
        memory = float(response.get("maxMemoryMb", 0.0))
        if response.get("type") == "result":
            return Invocation(ok=True, result=response.get("result"), duration_ms=duration_ms, max_memory_mb=memory)
        return Invocation(
            ok=False,
            error_type=str(response.get("errorType", "")),
            error_message=str(response.get("errorMessage", "")),
            duration_ms=duration_ms,
            max_memory_mb=memory,
        )

    async def _read(self, timeout: float) -> dict[str, Any] | None:
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self._process.stdout.readline()
        if not line:
            return None
        document = json.loads(line)
        return document if isinstance(document, dict) else None

    async def _exited(self, started: float) -> Invocation:
        """The process ended on its own (sys.exit, os._exit, a signal): report it as Lambda does."""
        assert self._process is not None
        code = await self._process.wait()
        self.alive = False
        if self._output is not None:
            await self._output
        status = f"signal: {-code}" if code < 0 else f"exit status {code}"
        message = f"Runtime exited with error: {status}"
        self._log(self._spec.name, message)
        return Invocation(
            ok=False,
            error_type="Runtime.ExitError",
            error_message=message,
            duration_ms=(time.monotonic() - started) * 1000,
        )

    async def _relay_output(self) -> None:
        """Copy the handler's output (stdout and stderr alike) to the terminal, line by line, under its name."""
        assert self._process is not None and self._process.stderr is not None
        stderr = self._process.stderr
        while True:
            try:
                line = await stderr.readline()
            except ValueError:
                # A line past the stream's limit: pass on what is buffered rather than stall the worker.
                line = await stderr.read(PROTOCOL_LINE_LIMIT)
            if not line:
                return
            self._log(self._spec.name, line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def running(self) -> bool:
        """The process is alive as far as anyone can tell."""
        return self.alive and self._process is not None and self._process.returncode is None

    async def kill(self) -> None:
        """Kill the process now (timeout or shutdown) and reap it."""
        self.alive = False
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()
        if self._output is not None:
            await self._output

    async def stop(self) -> None:
        """Let the process finish: close its input, then kill it if it lingers."""
        self.alive = False
        if self._process is None or self._process.returncode is not None:
            return
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await self._process.wait()
        except TimeoutError:
            pass
        await self.kill()


class FunctionPool:
    """The workers of one function: reuses warm ones, starts more when invocations overlap, up to `max_workers`."""

    def __init__(
        self,
        spec: FunctionSpec,
        task_root: Path,
        environment: Mapping[str, str],
        *,
        timeout: float,
        memory_mb: int,
        max_workers: int,
        log: Log,
        fork_server: ForkServer | None = None,
    ) -> None:
        self.spec = spec
        self._fork_server = fork_server
        self._task_root = task_root
        self._environment = environment
        self._timeout = timeout
        self._memory_mb = memory_mb
        self._log = log
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._max_workers = max_workers
        self._slots = asyncio.Semaphore(max_workers)
        self._closed = False
        self._retired = False

    @property
    def function_name(self) -> str:
        """The physical name the function's environment gives it (`AWS_LAMBDA_FUNCTION_NAME`)."""
        return self._environment.get("AWS_LAMBDA_FUNCTION_NAME", self.spec.name)

    def successor(self, task_root: Path) -> FunctionPool:
        """A pool for the same function on new code (`task_root`), as a new version would get; nothing shared."""
        environment = {**self._environment, "LAMBDA_TASK_ROOT": str(task_root)}
        return FunctionPool(
            self.spec,
            task_root,
            environment,
            timeout=self._timeout,
            memory_mb=self._memory_mb,
            max_workers=self._max_workers,
            log=self._log,
            fork_server=self._fork_server,
        )

    async def prewarm(self) -> Invocation | None:
        """Start one worker ahead of the first invocation; returns the init failure, if any."""
        async with self._slots:
            worker = Worker(self.spec, self._task_root, self._environment, self._log, self._fork_server)
            failure = await worker.start()
            if failure is None:
                self._idle.append(worker)
            return failure

    async def retire(self) -> None:
        """Serve no longer: idle workers stop now, busy ones when their invocation ends (a newer version took over)."""
        self._retired = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(worker.stop() for worker in idle))

    async def invoke(self, event: Mapping[str, Any]) -> Invocation:
        """One invocation on a warm worker, or a new one."""
        aws_request_id = str(uuid.uuid4())
        async with self._slots:
            if self._closed:
                return Invocation(
                    ok=False, error_type="Emulator.ShuttingDown", error_message="the emulator is stopping"
                )
            worker = None
            while self._idle and worker is None:
                candidate = self._idle.pop()
                if candidate.running:
                    worker = candidate
                else:  # killed from outside while idle: reap it and look further, as Lambda would
                    await candidate.kill()
            if worker is None:
                worker = Worker(self.spec, self._task_root, self._environment, self._log, self._fork_server)
                self._busy.add(worker)
                failure = await worker.start()
                if failure is not None:
                    self._busy.discard(worker)
                    return failure
            self._busy.add(worker)
            try:
                outcome = await worker.invoke(event, aws_request_id, self._timeout)
            finally:
                self._busy.discard(worker)
            if outcome.max_memory_mb > self._memory_mb:
                await worker.kill()
                self._log(
                    self.spec.name,
                    f"{aws_request_id} Runtime.OutOfMemory: used {outcome.max_memory_mb:.0f} MB "
                    f"of {self._memory_mb} MB",
                )
                outcome = Invocation(
                    ok=False,
                    error_type="Runtime.OutOfMemory",
                    error_message=f"Runtime exited with error: out of memory ({self._memory_mb} MB)",
                    duration_ms=outcome.duration_ms,
                    max_memory_mb=outcome.max_memory_mb,
                )
            if worker.alive and not self._closed and not self._retired:
                self._idle.append(worker)
            elif worker.alive:
                await worker.stop()
            return outcome

    async def close(self) -> None:
        """Stop every worker; busy ones are killed."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(worker.stop() for worker in idle), *(worker.kill() for worker in self._busy))


class TaskRoot:
    """A directory standing in for Lambda's `/var/task`: a copy of exactly the packages the zip holds.

    A copy, not links: it is taken when the version starts, so a file saved later (half-written, or broken) reaches
    only the next version, never the workers of this one.
    """

    def __init__(self, specs: Iterable[FunctionSpec]) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="emulator-task-"))
        self.paths: dict[str, Path] = {}
        for spec in specs:
            name = f"{spec.code_root.name}-{'-'.join(spec.packages)}"
            root = self._directory / name
            if not root.exists():
                root.mkdir()
                for package in spec.packages:
                    source = spec.code_root / package
                    if not source.exists():
                        raise FileNotFoundError(f"function {spec.name}: package {source} does not exist")
                    if source.is_dir():
                        shutil.copytree(source, root / package, ignore=shutil.ignore_patterns("__pycache__"))
                    else:
                        shutil.copy2(source, root / package)
            self.paths[spec.name] = root

    def remove(self) -> None:
        """Delete the copy."""
        shutil.rmtree(self._directory, ignore_errors=True)


def physical_name(logical_name: str) -> str:
    """A name like Pulumi's auto-naming gives (`send-message-4f2a9c1`), so code cannot rely on fixed names."""
    return f"{logical_name}-{os.urandom(4).hex()[:7]}"
