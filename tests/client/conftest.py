"""Fixtures for the client tests: a running emulator, a headless Chromium, and a folder for screenshots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from emulator.config import load_stack_config
from emulator.testing import RunningEmulator, running_emulator

CHROMIUM = Path("/usr/bin/chromium")
"""Debian's Chromium; Playwright cannot download its own browser here (see .ci/run)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPOSITORY = Path(__file__).resolve().parents[2]
ARTIFACTS = REPOSITORY / "test-artifacts"
"""Screenshots of the browser tests, to look at after a run (gitignored)."""


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    """One emulator for the module's tests; each test connects its own clients, so they do not interfere."""
    with running_emulator() as server:
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """A headless Chromium driven by Playwright, or a skip saying why there is none."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` (.ci/run does)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """The folder screenshots go to, created on first use."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def max_message_bytes() -> int:
    """The largest message the emulator accepts: the dev stack's setting, read as the emulator reads it."""
    return load_stack_config("dev").settings.max_message_bytes
