"""Shared program runs (`shared_run`): tests that only read a `ProgramRun` may share it."""

from __future__ import annotations

import pytest

from tests.infra.mocks import ProgramRun, shared_run


@pytest.fixture(scope="session")
def dev_run() -> ProgramRun:
    """The program under the dev stack's config."""
    return shared_run("dev")


@pytest.fixture(scope="session")
def prod_run() -> ProgramRun:
    """The program under the prod stack's config."""
    return shared_run("prod")
