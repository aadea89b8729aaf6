"""Cold start: each function's deployment zip (size) and the import of its handler in a fresh interpreter (time).

Each zip is built (deflated) by `infra.archive.build_archive`, exactly as deployed, and extracted to a scratch
directory; the handler is imported from there, so a module missing from the zip fails here as it would on Lambda.
Python runs with `-B` and a fresh directory per run, so the handler's modules are compiled on every import, as on
Lambda, whose read-only code directory keeps no `__pycache__`. The baseline is a bare `import boto3`, timed in the
same fresh interpreter just before the handler (whose own import then adds only what boto3 did not already load), so
both halves of each ratio see the same machine load; each figure is the median over several interpreters.

The authorizer's zip also ships PyJWT and cryptography (pinned wheels, `infra/wheels.py`): its size is given for
both architectures, from the real zip. Its compiled wheels are for Python 3.13 on Lambda's Linux, which this
interpreter may not be, so its import is timed with the zip's `handlers` and this interpreter's own PyJWT and
cryptography (the bench says when their versions differ from the pins), followed by its first HS256 and first RS256
verification (the JWKS parsed from memory). Targets apply to the stdlib-only functions.
Usage: `python bench/coldstart.py [--runs 9]`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cryptography
import jwt

from app.definition import AUTHORIZER, FUNCTIONS, Function  # after the path fix, so it runs from any directory
from emulator.issuer import SigningKey
from handlers import tokens
from infra import wheels
from infra.archive import build_archive

ZIP_TARGET_BYTES = 10 * 1024
IMPORT_TARGET_RATIO = 1.2
TIMER = (
    "import time; started = time.perf_counter(); import boto3; boto3_done = time.perf_counter(); import {module}; "
    "print(boto3_done - started, time.perf_counter() - started)"
)


FIRST_TOKENS = (
    "import time, json; from handlers import tokens; started = time.perf_counter(); "
    "tokens.verify_with_secret(b's' * 32, {hs256!r}, tokens.Expectations()); hs256 = time.perf_counter(); "
    "keys = tokens.KeySet('https://issuer.example', 'https://issuer.example/keys', fetch=lambda url: {jwks!r}); "
    "tokens.verify_with_keys(keys, {rs256!r}, tokens.Expectations('https://issuer.example', 'chat')); "
    "print(hs256 - started, time.perf_counter() - hs256)"
)
"""After the import: the first HS256 verification, then the first RS256 one (parsing the JWKS included)."""


def first_token_seconds(directory: Path) -> tuple[float, float]:
    """Seconds a fresh container spends on its first HS256 and its first RS256 token, after importing."""
    key = SigningKey.generate("RS256", kid="bench")
    hs256 = tokens.mint_token(b"s" * 32, name="bench", ttl_seconds=600)
    rs256 = tokens.mint_token(
        key.private_key, name="bench", ttl_seconds=600, algorithm="RS256", issuer="https://issuer.example",
        audience="chat", kid="bench",
    )  # fmt: skip
    jwks = json.dumps({"keys": [key.public_jwk]}).encode()
    completed = subprocess.run(
        [sys.executable, "-B", "-c", FIRST_TOKENS.format(hs256=hs256, rs256=rs256, jwks=jwks)],
        cwd=directory,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    first_hs256, first_rs256 = completed.stdout.split()
    return float(first_hs256), float(first_rs256)


def import_seconds(module: str, directory: Path) -> tuple[float, float]:
    """In a new interpreter run in `directory` (first on sys.path): seconds for `import boto3`, and for that plus
    `import module`, which is what importing the handler alone costs in a fresh interpreter."""
    completed = subprocess.run(
        [sys.executable, "-B", "-c", TIMER.format(module=module)],
        cwd=directory,
        env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=True,
    )
    boto3_seconds, total_seconds = completed.stdout.split()
    return float(boto3_seconds), float(total_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=9, help="fresh interpreters per measurement (median taken)")
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coldstart-") as scratch:
        archives: dict[Function, bytes] = {function: build_archive(function) for function in FUNCTIONS}
        baseline: list[float] = []
        timings: dict[Function, list[tuple[float, float]]] = {function: [] for function in FUNCTIONS}
        authorizer = authorizer_archives()
        first_tokens: list[tuple[float, float]] = []
        if authorizer:
            timings[AUTHORIZER] = []
        for run in range(arguments.runs):
            for function, archive in archives.items():
                directory = Path(scratch, f"{function.name}-{run}")  # fresh each run: nothing compiled is reused
                zipfile.ZipFile(io.BytesIO(archive)).extractall(directory)
                boto3_seconds, total_seconds = import_seconds(function.handler.rsplit(".", 1)[0], directory)
                baseline.append(boto3_seconds)
                timings[function].append((boto3_seconds, total_seconds))
            if authorizer:
                directory = Path(scratch, f"{AUTHORIZER.name}-{run}")
                with zipfile.ZipFile(io.BytesIO(authorizer["arm64"])) as opened:
                    opened.extractall(directory, [name for name in opened.namelist() if name.startswith("handlers/")])
                timings[AUTHORIZER].append(import_seconds("handlers.authorizer", directory))
                first_tokens.append(first_token_seconds(directory))

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"Python {sys.version.split()[0]}; median of {arguments.runs} fresh interpreters per function; load {load}")
    print(f"baseline: import boto3 {statistics.median(baseline) * 1000:.1f} ms (median over all interpreters)")
    print(f"{'function':<14} {'zip':>8} {'unpacked':>9} {'members':>8} {'import':>9} {'ratio':>6}  targets")
    for function, archive in archives.items():
        handler_ms = statistics.median(total for _, total in timings[function]) * 1000
        ratio = statistics.median(total / boto3 for boto3, total in timings[function])
        size_verdict = "met" if len(archive) < ZIP_TARGET_BYTES else "MISSED"
        ratio_verdict = "met" if ratio <= IMPORT_TARGET_RATIO else "MISSED"
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            members, unpacked = len(opened.infolist()), sum(info.file_size for info in opened.infolist())
        print(
            f"{function.name:<14} {len(archive):>7}B {unpacked:>8}B {members:>8} {handler_ms:>7.1f}ms "
            f"{ratio:>5.2f}x  zip < {ZIP_TARGET_BYTES} B: {size_verdict}; import <= {IMPORT_TARGET_RATIO}x: "
            f"{ratio_verdict}"
        )
    report_authorizer(authorizer, timings.get(AUTHORIZER, []), archives)
    if first_tokens:
        first_hs256 = statistics.median(hs256 for hs256, _ in first_tokens) * 1000
        first_rs256 = statistics.median(rs256 for _, rs256 in first_tokens) * 1000
        imported = statistics.median(total for _, total in timings[AUTHORIZER]) * 1000
        print(
            f"authorizer first token after the import: HS256 {first_hs256:.1f} ms, RS256 with its JWKS "
            f"{first_rs256:.1f} ms ({first_rs256 / imported:.1%} of the import)"
        )


def authorizer_archives() -> dict[str, bytes]:
    """The authorizer's real zip per architecture, or nothing when its pinned wheels cannot be downloaded here."""
    try:
        return {
            architecture: build_archive(
                AUTHORIZER, wheels=wheels.wheel_directory(AUTHORIZER, "python3.13", architecture)
            )
            for architecture in wheels.MACHINES
        }
    except wheels.WheelError as error:
        print(f"authorizer: skipped, its pinned wheels cannot be downloaded here ({error})")
        return {}


def report_authorizer(
    archives: dict[str, bytes], timing: list[tuple[float, float]], others: dict[Function, bytes]
) -> None:
    """Sizes per architecture against the largest stdlib-only zip, and the import against the boto3 baseline."""
    if not archives:
        return
    pins = dict(wheels.pinned(wheels.lock_file(AUTHORIZER)))
    here = {"pyjwt": jwt.__version__, "cryptography": cryptography.__version__}
    differs = [f"{name} {version} (pinned {pins[name]})" for name, version in here.items() if pins.get(name) != version]
    largest = max(len(archive) for archive in others.values())
    for architecture, archive in archives.items():
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            unpacked = sum(info.file_size for info in opened.infolist())
        print(
            f"authorizer ({architecture}) zip {len(archive)} B ({len(archive) / largest:.0f}x the largest stdlib-only "
            f"zip), unpacked {unpacked} B (Lambda allows 250 MB unpacked)"
        )
    handler_ms = statistics.median(total for _, total in timing) * 1000
    ratio = statistics.median(total / boto3 for boto3, total in timing)
    versions = f"this interpreter's {', '.join(differs)}" if differs else "the pinned versions"
    print(f"authorizer import (boto3, PyJWT, cryptography; {versions}): {handler_ms:.1f} ms, {ratio:.2f}x boto3 alone")


if __name__ == "__main__":
    main()
