"""The Lambda runtime inside one worker process: imports a handler once, then serves invocations one at a time.

Run as `python -I emulator/lambda_runtime.py TASK_ROOT HANDLER`, so only the zipped packages are importable, as
on Lambda. Protocol, one JSON document a line on a private copy of stdout: `ready` or `init_error` first, then per
`{"event", "awsRequestId", "timeoutMs"}` in, one `result` or `error` out, each with `maxMemoryMb`.

Run as `python -I emulator/lambda_runtime.py --fork-server FD`, it imports boto3 once and forks a worker per request
on the Unix socket FD instead (docs/emulator.md): `emulator.workers.ForkServer` speaks its protocol.
"""

from __future__ import annotations

import array
import gc
import importlib
import json
import logging
import os
import resource
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

Handler = Callable[[Any, Any], Any]


class LambdaContext:
    """The `context` argument, with the attributes and method of the AWS Python runtime's context object."""

    def __init__(self, aws_request_id: str, timeout_ms: int) -> None:
        name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        region = os.environ.get("AWS_REGION", "us-east-1")
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:{region}:123456789012:function:{name}"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = aws_request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the gateway kills this invocation."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _RequestIdFilter(logging.Filter):
    """Stamps every log record with the current invocation's request id, like Lambda's log handler."""

    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _take_protocol_channel() -> IO[str]:
    """Keep the real stdout for the protocol; send fd 1 (and `print`) to stderr."""
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return channel


def _configure_logging() -> _RequestIdFilter:
    """The root logger as the AWS runtime sets it up: one stderr handler, level left at WARNING."""
    request_ids = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s", "%Y-%m-%dT%H:%M:%S"
        )
    )
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    handler.addFilter(request_ids)
    logging.getLogger().addHandler(handler)
    return request_ids


def _load_handler(handler_path: str) -> Handler:
    module_name, _, function_name = handler_path.rpartition(".")
    if not module_name:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler_path}': not a module.function path")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise _InitError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}") from error
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise _InitError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler  # type: ignore[no-any-return]


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _max_memory_mb() -> float:
    """Peak resident memory of this worker, in MB.

    `VmHWM` starts afresh at exec; `ru_maxrss` would carry over a large parent's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _send(channel: IO[str], message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def _invoke(handler: Handler, request: dict[str, Any], request_ids: _RequestIdFilter) -> dict[str, Any]:
    request_id = str(request["awsRequestId"])
    request_ids.request_id = request_id
    context = LambdaContext(request_id, int(request["timeoutMs"]))
    try:
        result = handler(request["event"], context)
    except Exception as error:
        return _error(error)
    try:
        return {"type": "result", "result": json.loads(json.dumps(result))}
    except (TypeError, ValueError) as error:
        message = f"Unable to marshal response: {error}"
        print(f"[ERROR] Runtime.MarshalError: {message}", file=sys.stderr)
        return {"type": "error", "errorType": "Runtime.MarshalError", "errorMessage": message}


def _error(error: Exception) -> dict[str, Any]:
    print(f"[ERROR] {type(error).__name__}: {error}", file=sys.stderr)
    traceback.print_exc(file=sys.stderr)
    return {"type": "error", "errorType": type(error).__name__, "errorMessage": str(error)}


def main(argv: list[str]) -> int:
    """Serve invocations until stdin closes."""
    task_root, handler_path = argv[1], argv[2]
    # Ctrl-C reaches the process group, but the gateway still needs workers to run $disconnect.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    channel = _take_protocol_channel()
    sys.path.insert(0, task_root)
    request_ids = _configure_logging()
    try:
        handler = _load_handler(handler_path)
    except Exception as error:
        error_type = error.error_type if isinstance(error, _InitError) else "Runtime.InitError"
        print(f"[ERROR] {error_type}: {error}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        _send(channel, {"type": "init_error", "errorType": error_type, "errorMessage": str(error)})
        return 1
    _send(channel, {"type": "ready"})
    for line in sys.stdin:
        response = _invoke(handler, json.loads(line), request_ids)
        response["maxMemoryMb"] = _max_memory_mb()
        _send(channel, response)
    return 0


PRELOADED = ("boto3",)
"""What the fork server imports before forking: the runtime's SDK, which every worker would import anyway."""
MESSAGE_LIMIT = 256 * 1024
"""Largest message on the fork server's socket, either way (a request carries one function's environment)."""


def serve_forks(channel: socket.socket) -> int:
    """Fork a worker per request until the emulator hangs up; report each worker's exit status."""
    # Ctrl-C reaches the whole process group; the emulator still needs workers for `$disconnect`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = os.getpid()
    # What Python set at start-up when it coerced the C locale (PEP 538), as an exec'd worker's start-up would.
    coerced = os.environ.get("LC_CTYPE")
    try:
        os.close(os.pidfd_open(server))
    except OSError:
        return 1  # a kernel without pidfds: the emulator says so and execs every worker
    for name in PRELOADED:
        importlib.import_module(name)
    gc.freeze()  # the collector then never touches the preloaded objects, so workers share their pages longer
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(channel, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    try:
        send_message(channel, {"type": "ready"})
        while True:
            for key, _ in selector.select():
                if key.fileobj is wake_read:
                    os.read(wake_read, 4096)
                    _report_exits(channel)
                    continue
                message, fds, _, _ = socket.recv_fds(channel, MESSAGE_LIMIT, 3)
                if not message:
                    return 0
                request = json.loads(message)
                if _fork(channel, request, fds) == 0:
                    selector.close()
                    channel.close()
                    os.close(wake_read)
                    os.close(wake_write)
                    _become_worker(request, fds, coerced)
    except (BrokenPipeError, ConnectionResetError):
        if os.getpid() != server:
            raise  # a worker's own broken pipe fails it as it would an exec'd one
        return 0  # the emulator is gone


def _fork(channel: socket.socket, request: dict[str, Any], fds: list[int]) -> int | None:
    """Fork a worker for `request` (0 in the child), or refuse it; the parent replies either way."""
    shadowed = _shadowed(request["taskRoot"])
    refusal: dict[str, Any] = {"type": "refused", "id": request["id"], "shadowed": shadowed}
    pid = None
    if len(fds) != 3:
        refusal["error"] = f"the request carried {len(fds)} pipes, not 3"
    elif not shadowed:
        try:
            pid = os.fork()
        except OSError as error:
            refusal["error"] = f"cannot fork: {error}"
    if pid == 0:
        return 0
    for fd in fds:
        os.close(fd)
    if pid is None:
        send_message(channel, refusal)
        return None
    pidfd = os.pidfd_open(pid)
    try:
        send_message(channel, {"type": "started", "id": request["id"], "pid": pid}, [pidfd])
    finally:
        os.close(pidfd)
    return pid


def _shadowed(task_root: str) -> list[str]:
    """Top-level names in the task root that this process already imported: a fork would run the wrong copy."""
    try:
        entries = os.listdir(task_root)
    except OSError:
        return []
    names = {entry.split(".", 1)[0] for entry in entries}
    return sorted(name for name in names if name in sys.modules)


def send_message(channel: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """One message of the fork server's protocol, either way: a JSON document, with `fds` passed alongside."""
    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    channel.sendmsg([json.dumps(message).encode("utf-8")], ancillary)


def _report_exits(channel: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        send_message(channel, {"type": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _become_worker(request: dict[str, Any], fds: list[int], coerced: str | None) -> None:
    """In the forked child: take the pipes as stdin, stdout and stderr and the function's environment, then serve.

    `SystemExit` unwinds to the top, so the child shuts down as an exec'd worker would (atexit, threads).
    """
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["taskRoot"])
    os.environ.clear()
    os.environ.update(request["environment"])
    if coerced is not None and not {"LC_ALL", "LC_CTYPE"} & set(os.environ):
        os.environ["LC_CTYPE"] = coerced
    time.tzset()
    sys.argv = [__file__, request["taskRoot"], request["handler"]]
    raise SystemExit(main(sys.argv))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--fork-server"]:
        sys.exit(serve_forks(socket.socket(fileno=int(sys.argv[2]))))
    sys.exit(main(sys.argv))
