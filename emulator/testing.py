"""Run the real emulator (`python -m emulator`) as a subprocess from tests: `with running_emulator() as emulator:`.

Leaving the block sends SIGINT, as Ctrl-C does, and waits for the emulator to exit.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from emulator.config import PROJECT_ROOT

READY_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 45.0
READY_LINE = re.compile(r"^Ready: (ws://(?P<host>[^:/]+):(?P<port>\d+)/(?P<stage>\S+))")
CALLBACK_LINE = re.compile(r"^\s*Callback URL\s+(?P<url>\S+)")


class EmulatorFailedError(RuntimeError):
    """The emulator exited or never became ready; the message carries its output."""


class RunningEmulator:
    """A `python -m emulator` subprocess that printed its ready line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = 0
        self.stage = ""
        self._callback_url = ""
        self.returncode: int | None = None

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._lock:
                self._lines.append(line.rstrip("\n"))
            callback = CALLBACK_LINE.match(line)
            if callback and not self._callback_url:
                self._callback_url = callback["url"]
            match = READY_LINE.match(line)
            if match and not self._ready.is_set():
                self.port = int(match["port"])
                self.stage = match["stage"]
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> None:
        """Block until the ready line, or fail with the emulator's output."""
        if not self._ready.wait(READY_TIMEOUT_SECONDS) or not self.port:
            self.stop()
            raise EmulatorFailedError(f"the emulator did not become ready; output:\n{self.output_text()}")

    def output(self) -> list[str]:
        """The emulator's terminal lines so far (stdout and stderr)."""
        with self._lock:
            return list(self._lines)

    def output_text(self) -> str:
        """`output()` as one string."""
        return "\n".join(self.output())

    @property
    def ws_url(self) -> str:
        """WebSocket URL of the stage."""
        return f"ws://127.0.0.1:{self.port}/{self.stage}"

    @property
    def callback_url(self) -> str:
        """Callback (`@connections`) API base, as `ENDPOINT_URL` holds it (with the run's secret in the path)."""
        return self._callback_url

    @property
    def http_url(self) -> str:
        """The chat page."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        """The emulator's process id (its workers are its children)."""
        return self._process.pid

    def signal(self, signum: int) -> None:
        """Send a signal to the emulator (SIGTERM, as a process manager would)."""
        self._process.send_signal(signum)

    def stop(self) -> int:
        """SIGINT (Ctrl-C), then wait for the exit; killed if it takes too long. Returns the exit code."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._reader.join(timeout=5)
        self.returncode = self._process.returncode
        return self.returncode


@contextmanager
def running_emulator(port: int = 0, stack: str = "dev", extra_args: Sequence[str] = ()) -> Iterator[RunningEmulator]:
    """Start `python -m emulator --host 127.0.0.1 --port PORT --stack STACK [extra_args]`; yield once ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", str(port), "--stack", stack, *extra_args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    emulator = RunningEmulator(process)
    try:
        emulator.wait_ready()
        yield emulator
    finally:
        emulator.stop()
