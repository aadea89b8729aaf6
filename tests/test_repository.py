"""The repository itself: nothing machine-local is tracked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPOSITORY / ".git").exists(), reason="not a git checkout")
def test_no_virtualenv_is_tracked() -> None:
    # A tracked `.venv` (a worktree's symlink to the shared one) replaces the real virtualenv on checkout.
    tracked = subprocess.run(
        ["git", "ls-files", "--", ".venv", ".venv-local", "policy/venv"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked == [], f"virtualenvs must never be committed: {tracked}"
