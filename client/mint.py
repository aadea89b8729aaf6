"""`python -m client token --name NAME [--ttl 1h] [--secret-env VARIABLE]`: a JWT for a stack with `auth: jwt`.

Signed with the stack's shared secret, or else the emulator's local issuer key (docs/client.md); only the token goes
to stdout, so `TOKEN=$(python -m client token --name alice)` works.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

from app.definition import DEV_TOKEN_SECRET_VARIABLE
from emulator.config import EmulatorConfigError, load_stack_config
from emulator.issuer import KEY_FILE, load_saved
from handlers import tokens

TTL_UNITS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}
TTL_PATTERN = re.compile(r"(?P<count>[0-9]+)(?P<unit>[smhd]?)")
VARIABLE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_TTL = "1h"


class TokenCommandError(ValueError):
    """The token cannot be minted: the message says why (never the secret) and what to do."""


def ttl_seconds(text: str) -> int:
    """`90`, `90s`, `15m`, `1h` or `7d` in seconds, within the tokens' 1 s to 30 days."""
    match = TTL_PATTERN.fullmatch(text.strip())
    if match is None:
        raise TokenCommandError(
            f"--ttl must be a whole number with an optional unit s, m, h or d (like 90s, 15m, 1h, 7d), got {text!r}"
        )
    seconds = int(match["count"]) * TTL_UNITS[match["unit"] or "s"]
    if not 1 <= seconds <= tokens.MAX_TTL_SECONDS:
        raise TokenCommandError(
            f"--ttl must be from 1s to 30d (tokens cannot be revoked, so they expire), got {text!r}"
        )
    return seconds


def secret_from(environ: Mapping[str, str], variable: str) -> bytes:
    """The signing secret from the environment variable `variable`, checked as the authorizer checks it."""
    if not VARIABLE_PATTERN.fullmatch(variable):
        raise TokenCommandError(f"--secret-env must name an environment variable, got {variable!r}")
    text = environ.get(variable, "")
    if not text:
        raise TokenCommandError(
            f"{variable} is not set: export the secret the authorizer checks tokens with (for a deployed stack, "
            f"`pulumi config get jwtSecret`)"
        )
    try:
        return tokens.signing_secret(text)
    except ValueError as error:  # its message gives the length, never the secret
        raise TokenCommandError(f"{variable}: {error}") from None


def mint(
    environ: Mapping[str, str],
    name: str,
    ttl: str,
    *,
    variable: str | None = None,
    key_file: Path = KEY_FILE,
    audience: str | None = None,
) -> str:
    """A token for `name` expiring after `ttl`: HS256 with the secret in `variable` (default `CHAT_TOKEN_SECRET`)
    when it is set or named explicitly, else RS256 with the local issuer's key in `key_file`."""
    problem = tokens.display_name_problem(name)
    if problem is not None:
        raise TokenCommandError(f"--name: {problem}")
    seconds = ttl_seconds(ttl)
    if variable is not None or environ.get(DEV_TOKEN_SECRET_VARIABLE):
        secret = secret_from(environ, variable or DEV_TOKEN_SECRET_VARIABLE)
        return tokens.mint_token(secret, name=name, ttl_seconds=seconds, audience=audience)
    try:
        issuer = load_saved(key_file)
    except OSError:
        raise TokenCommandError(
            f"{DEV_TOKEN_SECRET_VARIABLE} is not set and {key_file} does not exist: start the emulator with auth jwt "
            f"(it serves a local issuer and saves its key there), or export the stack's HS256 secret"
        ) from None
    except ValueError as error:
        raise TokenCommandError(str(error)) from None
    return issuer.mint(name, seconds)


def parser() -> argparse.ArgumentParser:
    """The `token` subcommand's command line."""
    command = argparse.ArgumentParser(
        prog="python -m client token",
        description="Mint a JWT for a chat whose $connect is guarded by the authorizer (stack config auth: jwt, or "
        "the emulator with --auth jwt): HS256 with a shared secret, else the emulator's local issuer. Prints only "
        "the token.",
        epilog="example:  TOKEN=$(python -m client token --name alice --ttl 8h)\n"
        '          python -m client ws://127.0.0.1:3001/dev --token "$TOKEN"',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "--name",
        required=True,
        help="the display name the token carries (it wins over ?name=); 1 to 32 printable characters",
    )
    command.add_argument(
        "--ttl",
        default=DEFAULT_TTL,
        metavar="DURATION",
        help=f"lifetime, like 90s, 15m, 1h or 7d, at most 30d (default {DEFAULT_TTL})",
    )
    command.add_argument(
        "--secret-env",
        metavar="VARIABLE",
        help=f"environment variable holding the HS256 secret (default {DEV_TOKEN_SECRET_VARIABLE}; when that is "
        "unset, the local issuer's key signs instead)",
    )
    command.add_argument(
        "--issuer-key",
        type=Path,
        default=KEY_FILE,
        metavar="FILE",
        help="the local issuer's key file the emulator writes (default build/local-issuer.json)",
    )
    command.add_argument(
        "--audience", help="the aud claim of an HS256 token (default: the stack's jwtAudience, if it sets one)"
    )
    command.add_argument(
        "--stack", default="dev", help="the stack whose Pulumi.<stack>.yaml gives jwtAudience (default dev)"
    )
    return command


def stack_audience(stack: str) -> str | None:
    """The `jwtAudience` of `Pulumi.<stack>.yaml`, validated as the program does; None when the stack sets none."""
    try:
        return load_stack_config(stack).settings.jwt_audience
    except EmulatorConfigError as error:
        raise TokenCommandError(f"--stack {stack}: {error}") from None


def run(arguments: list[str]) -> int:
    """Print a token and return 0; a bad argument or secret exits 2 through argparse, with the reason."""
    command = parser()
    options = command.parse_args(arguments)
    try:
        token = mint(
            os.environ,
            options.name,
            options.ttl,
            variable=options.secret_env,
            key_file=options.issuer_key,
            audience=options.audience or stack_audience(options.stack),
        )
    except TokenCommandError as error:
        command.error(str(error))
    print(token, flush=True)
    return 0
