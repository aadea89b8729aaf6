"""Cold start: each function's deployment zip (size) and the import of its handler in a fresh interpreter (time).

Each zip is built (deflated) by `infra.archive.build_archive`, exactly as deployed, and extracted to a scratch
directory; the handler is imported from there, so a module missing from the zip fails here as it would on Lambda.
Python runs with `-B` and a fresh directory per run, so the handler's modules are compiled on every import, as on
Lambda, whose read-only code directory keeps no `__pycache__`. The baseline is a bare `import boto3`, timed in the
same fresh interpreter just before the handler (whose own import then adds only what boto3 did not already load), so
both halves of each ratio see the same machine load; each figure is the median over several interpreters.
Usage: `python bench/coldstart.py [--runs 9]`.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.definition import FUNCTIONS, Function  # after the path fix, so the script runs from any directory
from infra.archive import build_archive

ZIP_TARGET_BYTES = 10 * 1024
IMPORT_TARGET_RATIO = 1.2
TIMER = (
    "import time; started = time.perf_counter(); import boto3; boto3_done = time.perf_counter(); import {module}; "
    "print(boto3_done - started, time.perf_counter() - started)"
)


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
        for run in range(arguments.runs):
            for function, archive in archives.items():
                directory = Path(scratch, f"{function.name}-{run}")  # fresh each run: nothing compiled is reused
                zipfile.ZipFile(io.BytesIO(archive)).extractall(directory)
                boto3_seconds, total_seconds = import_seconds(function.handler.rsplit(".", 1)[0], directory)
                baseline.append(boto3_seconds)
                timings[function].append((boto3_seconds, total_seconds))

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


if __name__ == "__main__":
    main()
