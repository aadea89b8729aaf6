"""`python -m emulator [--host 127.0.0.1] [--port 3001] [--stack dev]`: the chat on this machine, no AWS account.

Prints the WebSocket URL, the callback URL and a line per route when ready; Ctrl-C (SIGINT) or SIGTERM closes
every client with 1001, runs `$disconnect` for each, stops the workers and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from app import definition
from app.settings import AUTH_MODES
from emulator.cloud import LocalCloud
from emulator.config import (
    PROJECT_ROOT,
    EmulatorConfigError,
    EmulatorOptions,
    function_spec,
    invoked_from_definition,
    load_stack_config,
    routes_from_definition,
)
from emulator.issuer import KEY_FILE
from handlers.aws_facts import IDLE_TIMEOUT_SECONDS, MAX_CONNECTION_SECONDS


class EmulatorStartError(RuntimeError):
    """The port is taken, a worker cannot be spawned, or the like."""


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; every flag has a default, so `python -m emulator` alone runs the dev stack."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    _add_stack_arguments(parser)
    _add_runtime_arguments(parser)
    _add_access_and_fault_arguments(parser)
    return parser.parse_args(argv)


def _add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """Where to listen, which stack's config to run, and where its auth and table live."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=3001,
        help="port for WebSocket, callback API and page; 0 picks a free one (default 3001)",
    )
    parser.add_argument(
        "--stack", default="dev", help="stack whose Pulumi.<stack>.yaml configures the run (default dev)"
    )
    parser.add_argument(
        "--auth",
        choices=AUTH_MODES,
        help="override the stack's auth setting: jwt runs the $connect authorizer, trusting the stack's jwtIssuer, "
        f"else HS256 with ${definition.DEV_TOKEN_SECRET_VARIABLE}, else a local issuer",
    )
    parser.add_argument(
        "--issuer-key",
        type=Path,
        default=KEY_FILE,
        metavar="FILE",
        help="where the local issuer keeps its key for `python -m client token` (default build/local-issuer.json)",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        metavar="URL",
        help="a DynamoDB-compatible endpoint to use instead of the embedded moto server",
    )


def _add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """How connections and functions behave: API Gateway's and Lambda's limits."""
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"close idle connections with 1001 after this long (default {IDLE_TIMEOUT_SECONDS}, as API Gateway)",
    )
    parser.add_argument(
        "--max-duration",
        type=float,
        default=MAX_CONNECTION_SECONDS,
        metavar="SECONDS",
        help=f"close connections with 1001 after this long (default {MAX_CONNECTION_SECONDS}, as API Gateway)",
    )
    parser.add_argument(
        "--function-timeout",
        type=float,
        metavar="SECONDS",
        help="override the stack's lambdaTimeoutSeconds (for tests)",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=8,
        metavar="N",
        help="most concurrent workers per function (default 8; reservedConcurrency lowers it)",
    )


def _add_access_and_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """Who may reach the local cloud, whether it reloads on save, and faults injected into the callback API."""
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (IP addresses and localhost always work); repeatable",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept WebSocket handshakes from pages at this origin (http://host:port, or null); repeatable",
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        help="do not watch handlers/ and app/definition.py for saved changes (reloading is on by default)",
    )
    parser.add_argument(
        "--no-prewarm",
        action="store_true",
        help="start each function's first worker at its first invocation, not at start (a quicker start for a short "
        "run, a slower first request)",
    )
    parser.add_argument(
        "--no-fork-server",
        action="store_true",
        help="start every worker as a fresh interpreter instead of forking it from one that imported boto3 (slower; "
        "cold-start lines then include boto3's import, as a Lambda init does)",
    )
    parser.add_argument(
        "--callback-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="fault injection: delay every @connections request by this long",
    )
    parser.add_argument(
        "--callback-throttle",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="fault injection: answer this fraction (0-1) of @connections requests with 429",
    )


def options_from_arguments(arguments: argparse.Namespace) -> EmulatorOptions:
    """Options for the real app: routes from `app.definition`, settings from the stack's config file."""
    stack = load_stack_config(arguments.stack)
    settings = dataclasses.replace(stack.settings, auth=arguments.auth) if arguments.auth else stack.settings
    token_auth = settings.auth == "jwt"
    secret = os.environ.get(definition.DEV_TOKEN_SECRET_VARIABLE) or None
    return EmulatorOptions(
        stack=arguments.stack,
        settings=settings,
        region=stack.region,
        routes=routes_from_definition(),
        invoked=invoked_from_definition(),
        host=arguments.host,
        port=arguments.port,
        dynamodb_endpoint=arguments.dynamodb_endpoint,
        idle_timeout_seconds=arguments.idle_timeout,
        max_duration_seconds=arguments.max_duration,
        function_timeout_seconds=arguments.function_timeout,
        max_workers_per_function=arguments.max_workers,
        callback_delay_seconds=arguments.callback_delay,
        callback_throttle_fraction=arguments.callback_throttle,
        allowed_hosts=tuple(arguments.allow_host),
        allowed_origins=tuple(arguments.allow_origin),
        reload=not arguments.no_reload,
        prewarm=not arguments.no_prewarm,
        fork_workers=not arguments.no_fork_server,
        definition_file=PROJECT_ROOT / "app" / "definition.py",
        authorizer=function_spec(definition.AUTHORIZER) if token_auth else None,
        # A blank variable counts as unset: the emulator then serves its own issuer and shows how to mint for it.
        token_secret=secret if settings.jwt_mode == "secret" else None,
        issuer_key_file=arguments.issuer_key,
    )


async def serve(options: EmulatorOptions) -> None:
    """Run until SIGINT or SIGTERM, then shut down in order."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    cloud = LocalCloud(options)
    try:
        await cloud.start()
    except OSError as error:
        raise EmulatorStartError(f"cannot start: {error}") from error
    try:
        print("\n".join(cloud.ready_lines()), flush=True)
        await stop.wait()
        print("Stopping: closing every connection with 1001 and running $disconnect for each...", flush=True)
    finally:
        await cloud.stop()
    print("Stopped.", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; configuration errors print one line and exit 2."""
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        options = options_from_arguments(arguments)
        asyncio.run(serve(options))
    except EmulatorConfigError as error:
        print(f"emulator: {error}", file=sys.stderr)
        return 2
    except EmulatorStartError as error:
        print(f"emulator: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
