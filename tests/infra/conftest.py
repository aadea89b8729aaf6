"""Shared program runs: a `ProgramRun` is immutable, so tests that only read one may share it."""

from __future__ import annotations

import pytest

from tests.infra.mocks import ProgramRun, run_program


@pytest.fixture(scope="session")
def dev_run() -> ProgramRun:
    """The program under the dev stack's config."""
    return run_program("dev")


@pytest.fixture(scope="session")
def prod_run() -> ProgramRun:
    """The program under the prod stack's config."""
    return run_program("prod")
