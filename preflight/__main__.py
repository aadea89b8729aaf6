"""`python -m preflight --stack NAME`: check the account before `pulumi up` (see the package docstring)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from preflight.aws import AwsReader
from preflight.checks import run_checks
from preflight.stack import REPOSITORY, StackError, load_stack

READY, BLOCKED, USAGE = 0, 1, 2


def main(argv: Sequence[str] | None = None, reader: type[AwsReader] = AwsReader, repository: Path = REPOSITORY) -> int:
    """Print one line per check; return 0 when ready, 1 with blockers, 2 on a usage or config error."""
    parser = argparse.ArgumentParser(prog="python -m preflight", description=__doc__)
    parser.add_argument("--stack", required=True, help="the stack to check (Pulumi.<stack>.yaml)")
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_:
        return USAGE if exit_.code else READY
    try:
        stack = load_stack(arguments.stack, repository)
    except StackError as error:
        print(f"preflight: {error}", file=sys.stderr)
        return USAGE
    results = run_checks(stack, reader(stack.region))
    for result in results:
        print(result.line())
    blockers = [result for result in results if result.status == "blocker"]
    print(f"{stack.name}: {len(blockers)} blocker(s)" if blockers else f"{stack.name}: ready for pulumi up")
    return BLOCKED if blockers else READY


if __name__ == "__main__":
    sys.exit(main())
