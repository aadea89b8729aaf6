"""`python -m client token --name NAME [--ttl 1h] [--secret-env VARIABLE]`: a signed token for a stack with auth.

The token is minted with `handlers.tokens.mint_token`, the code the authorizer verifies with, from the secret in
`CHAT_TOKEN_SECRET` (or the variable `--secret-env` names): the emulator prints one for its run, and a deployed
stack's is `pulumi config get authTokenSecret`. Only the token goes to stdout, so `TOKEN=$(python -m client token
--name alice)` works; every problem is one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping

from app.definition import DEV_TOKEN_SECRET_VARIABLE
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
            f"{variable} is not set: export the secret the authorizer checks tokens with (the emulator prints one "
            f"when it starts with auth on; for a deployed stack, `pulumi config get authTokenSecret`)"
        )
    try:
        return tokens.signing_secret(text)
    except ValueError as error:  # its message gives the length, never the secret
        raise TokenCommandError(f"{variable}: {error}") from None


def mint(environ: Mapping[str, str], name: str, ttl: str, variable: str = DEV_TOKEN_SECRET_VARIABLE) -> str:
    """A token for `name` that expires after `ttl`, signed with the secret in `variable`."""
    problem = tokens.display_name_problem(name)
    if problem is not None:
        raise TokenCommandError(f"--name: {problem}")
    seconds = ttl_seconds(ttl)
    return tokens.mint_token(secret_from(environ, variable), name, seconds)


def parser() -> argparse.ArgumentParser:
    """The `token` subcommand's command line."""
    command = argparse.ArgumentParser(
        prog="python -m client token",
        description="Mint a token for a chat whose $connect is guarded by the token authorizer (stack config auth: "
        "token, or the emulator with --auth token). Prints only the token.",
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
        default=DEV_TOKEN_SECRET_VARIABLE,
        metavar="VARIABLE",
        help=f"environment variable holding the signing secret (default {DEV_TOKEN_SECRET_VARIABLE})",
    )
    return command


def run(arguments: list[str]) -> int:
    """Print a token and return 0; a bad argument or secret exits 2 through argparse, with the reason."""
    command = parser()
    options = command.parse_args(arguments)
    try:
        token = mint(os.environ, options.name, options.ttl, options.secret_env)
    except TokenCommandError as error:
        command.error(str(error))
    print(token, flush=True)
    return 0
