"""The pinned wheels a function's zip ships: downloaded once per architecture from PyPI, verified, cached.

A function that lists `libraries` (the authorizer: PyJWT and cryptography) has a lock file,
`app/requirements/<name>.txt`, pinning every distribution with the sha256 of its wheel for each Lambda architecture.
`wheel_directory` returns a directory holding exactly those wheels for the stack's architecture and Python version,
filling `build/wheels/<name>/<python>-<architecture>/` on first use with

    pip download --require-hashes --no-deps --only-binary=:all: --implementation cp --python-version 3.13
                 --platform manylinux_2_34_<arch> --platform manylinux_2_28_<arch> --platform manylinux2014_<arch>

so what lands in the zip is byte-for-byte the pinned release (pip refuses any other hash). Standard library only, like
`infra.archive`, which unpacks the wheels into the zip deterministically.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from app.definition import Function

SOURCE_ROOT = Path(__file__).resolve().parent.parent
LOCK_DIRECTORY = SOURCE_ROOT / "app" / "requirements"
CACHE = SOURCE_ROOT / "build" / "wheels"
"""Ignored by git; CI fills it on its first program run."""

MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}
"""Lambda's architecture names and the machine names in manylinux platform tags."""

MANYLINUX = ("manylinux_2_34", "manylinux_2_28", "manylinux2014")
"""Lambda's Python 3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): wheels for these glibc levels all load."""

COMPLETE_MARKER = ".complete"
"""Written after a verified download; holds the lock file's text, so a changed lock refetches."""

Runner = Callable[[Sequence[str]], None]


class WheelError(RuntimeError):
    """The pinned wheels cannot be had: pip failed (offline, a hash mismatch) or the lock file is unusable."""


def lock_file(function: Function) -> Path:
    """`app/requirements/<function name>.txt`."""
    return LOCK_DIRECTORY / f"{function.name}.txt"


def pinned(lock: Path) -> list[tuple[str, str]]:
    """The `(distribution, version)` pairs a lock file pins (`name==version --hash=...` lines)."""
    pairs = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)(\s+--hash=sha256:[0-9a-f]{64})+", text)
        if match is None:
            raise WheelError(f"{lock}: every line must be `name==version --hash=sha256:...`, got {text!r}")
        pairs.append((match[1], match[2]))
    return pairs


def python_versions(lock: Path) -> tuple[str, ...]:
    """The Python versions whose wheels a lock file's hashes cover (its `# python-versions: 3.13` line)."""
    match = re.search(r"^#\s*python-versions:\s*(.+)$", lock.read_text(encoding="utf-8"), re.MULTILINE)
    if match is None:
        raise WheelError(f"{lock} has no `# python-versions:` line naming the Pythons its hashes cover")
    return tuple(version.strip() for version in match[1].split(","))


def python_version(runtime: str) -> str:
    """`python3.13` -> `3.13`."""
    match = re.fullmatch(r"python(\d+\.\d+)", runtime)
    if match is None:
        raise WheelError(f"cannot tell the Python version of the runtime {runtime!r}")
    return match[1]


def download_command(lock: Path, target: Path, architecture: str, version: str) -> list[str]:
    """The pip command that fetches exactly the lock file's wheels for one architecture and Python version."""
    machine = MACHINES[architecture]
    platforms = [argument for tag in MANYLINUX for argument in ("--platform", f"{tag}_{machine}")]
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        version,
        *platforms,
        "--dest",
        str(target),
        "--requirement",
        str(lock),
    ]


def _run(command: Sequence[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    if result.returncode != 0:
        raise WheelError(f"pip download failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def wheel_directory(
    function: Function, runtime: str, architecture: str, cache: Path | None = None, run: Runner = _run
) -> Path:
    """A directory holding the function's pinned wheels for this runtime and architecture, downloading when needed."""
    lock = lock_file(function)
    if not lock.is_file():
        raise WheelError(f"function {function.name} ships {', '.join(function.libraries)} but {lock} is missing")
    if architecture not in MACHINES:
        raise WheelError(f"no wheels for architecture {architecture!r}; Lambda has {', '.join(MACHINES)}")
    version = python_version(runtime)
    if version not in python_versions(lock):
        raise WheelError(
            f"{lock} pins wheels for Python {', '.join(python_versions(lock))}, but the stack runs {runtime}: set "
            f"lambdaRuntime to python{python_versions(lock)[0]}, or add that Python's wheel hashes (docs/hardening.md)"
        )
    directory = (cache if cache is not None else CACHE) / function.name / f"{version}-{architecture}"
    expected = lock.read_text(encoding="utf-8")
    marker = directory / COMPLETE_MARKER
    if marker.is_file() and marker.read_text(encoding="utf-8") == expected:
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    # Downloaded beside the cache and moved in whole, so a concurrent build never sees half a set.
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        run(download_command(lock, staging, architecture, version))
        _check_complete(staging, pinned(lock), lock)
        (staging / COMPLETE_MARKER).write_text(expected, encoding="utf-8")
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def _check_complete(directory: Path, pins: list[tuple[str, str]], lock: Path) -> None:
    """One wheel per pinned distribution and nothing else (pip has already checked every hash)."""
    found = {_distribution(path.name) for path in directory.glob("*.whl")}
    wanted = {(_normalize(name), version) for name, version in pins}
    if found != wanted:
        raise WheelError(f"pip fetched {sorted(found)} for {lock}, which pins {sorted(wanted)}")


def wheels(directory: Path) -> list[Path]:
    """The wheels of a directory `wheel_directory` returned (or a test built), sorted by name."""
    return sorted(directory.glob("*.whl"))


def sha256(path: Path) -> str:
    """The hex sha256 of a file, as in a lock file's `--hash`."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _distribution(filename: str) -> tuple[str, str]:
    name, version = filename.split("-")[:2]
    return _normalize(name), version


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()
