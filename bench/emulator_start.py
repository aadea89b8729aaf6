"""Emulator start-up: forked workers against exec'd ones, measured in the same run, taking turns each round.

Each round starts `python -m emulator --port 0 --no-reload` (one warm worker per function before the ready line), once
as it runs by default and once with `--no-fork-server` (every worker a fresh interpreter, the baseline), then stops it
with Ctrl-C. Printed for both: the median time to the ready line and the median CPU of the whole run (the emulator,
its moto server, its fork server and every worker, start to exit), then fork / exec as ratios. The test suite pays
this start dozens of times, so its CPU is the figure that matters on a 2-core machine.

`python bench/emulator_start.py [--rounds 5]`
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator.testing import running_emulator

VARIANTS = {"forked (default)": (), "exec'd (--no-fork-server)": ("--no-fork-server",)}


def children_cpu() -> float:
    """CPU seconds of every reaped descendant so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(extra: tuple[str, ...]) -> tuple[float, float]:
    """Seconds to the ready line and CPU seconds of the whole run, for one emulator start and stop."""
    cpu_before, started = children_cpu(), time.monotonic()
    with running_emulator(extra_args=("--no-reload", *extra)) as emulator:
        ready = time.monotonic() - started
    if emulator.returncode != 0:
        raise SystemExit(f"the emulator exited {emulator.returncode}:\n{emulator.output_text()}")
    return ready, children_cpu() - cpu_before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    one_run(())  # the first start warms the file cache for both
    for _ in range(rounds):
        for name, extra in VARIANTS.items():
            results[name].append(one_run(extra))
    medians = {
        name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in results.items()
    }
    print(f"Emulator start and stop, {rounds} rounds, medians:")
    for name, (ready, cpu) in medians.items():
        print(f"  {name:<28} ready in {ready:5.2f} s   CPU {cpu:5.2f} s")
    (fork_ready, fork_cpu), (exec_ready, exec_cpu) = medians.values()
    print(f"  forked / exec'd: ready x{fork_ready / exec_ready:.2f}, CPU x{fork_cpu / exec_cpu:.2f}")


if __name__ == "__main__":
    main()
