"""`python -m client URL` chats, `smoke URL` checks a stack, `token` mints a token, `publish` posts from a backend.

Exit status: 0 on success, 1 when the chat or a smoke step fails, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from app.definition import TOKEN_VARIABLE
from client import interactive, smoke
from client.urls import BadUrlError, chat_url
from handlers.display_name import display_name_problem

EXAMPLES = """examples:
  python -m client ws://127.0.0.1:3001/dev --name alice
  printf 'hello\\n' | python -m client ws://127.0.0.1:3001/dev --name bot
  python -m client smoke ws://127.0.0.1:3001/dev
  python -m client smoke "$(pulumi stack output wssUrl)"
  python -m client ws://127.0.0.1:3001/dev --token "$(python -m client token --name alice)"
  python -m client publish --function "$(pulumi stack output publishFunctionName)" --room ops --from bot "hi"
"""


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {value!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {value!r}")
    return seconds


def _chat_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="Chat over the WebSocket API: each line you type is sent to the current room;\n"
        "/join ROOM, /leave [ROOM], /who [ROOM], /history [ROOM] and /msg NAME TEXT do the rest.\n"
        "Messages print as '[HH:MM:SS] name: text', notices and errors go to stderr. Ctrl-D or Ctrl-C quits.\n"
        "'python -m client smoke URL' runs the smoke test instead; 'python -m client token --name NAME'\n"
        "mints a token for a stack with auth (see 'python -m client token --help').",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="the WebSocket URL with its stage, e.g. ws://127.0.0.1:3001/dev")
    parser.add_argument("--name", help="display name shown to others (sent as ?name=)")
    parser.add_argument("--room", default=None, help="the room to start in (sent as ?room=; default lobby)")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE) or None,
        help=f"token for an authorizer, if the stack has one (sent as the subprotocol bearer.TOKEN, never in the "
        f"URL); default ${TOKEN_VARIABLE}, which keeps it out of the process list",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='send each line verbatim (e.g. {"action": "nope"}) and print every frame verbatim',
    )
    parser.add_argument(
        "--wait",
        type=_positive_seconds,
        default=5.0,
        metavar="S",
        help="when input ends, wait up to S seconds for the answers to what was sent (default 5)",
    )
    return parser


def _smoke_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m client smoke",
        description="Smoke-test a running chat: two clients, a unique message must reach both, a blank message must "
        "get an error frame, $default must answer an unknown action. Exits 0 with a one-line summary, "
        "or 1 naming the failed step and how long it waited.",
    )
    parser.add_argument(
        "url",
        metavar="URL",
        help="the WebSocket URL with its stage, e.g. wss://ID.execute-api.REGION.amazonaws.com/dev",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="how long each step may wait, in seconds (default 10)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE) or None,
        help=f"token for an authorizer, if the stack has one (sent as the subprotocol bearer.TOKEN, never in the "
        f"URL); default ${TOKEN_VARIABLE}, which keeps it out of the process list",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chat or the smoke test; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Each subcommand imports what only it needs (the token's key files, publish's boto3): a chat starts sooner.
    if arguments[:1] == ["token"]:
        from client import mint  # noqa: PLC0415

        return mint.run(arguments[1:])
    if arguments[:1] == ["publish"]:
        from client import publish  # noqa: PLC0415

        return publish.run(
            arguments[1:],
            out=lambda line: print(line, flush=True),
            err=lambda line: print(line, file=sys.stderr, flush=True),
        )
    if arguments[:1] == ["smoke"]:
        parser = _smoke_parser()
        options = parser.parse_args(arguments[1:])
        try:
            chat_url(options.url)
        except BadUrlError as error:
            parser.error(str(error))
        return smoke.run(
            options.url,
            options.timeout,
            options.token,
            out=lambda line: print(line, flush=True),
            err=lambda line: print(line, file=sys.stderr, flush=True),
        )
    parser = _chat_parser()
    options = parser.parse_args(arguments)
    # $connect's own rule, checked here so a bad name gets its reason, not a bare HTTP 400.
    name_problem = None if options.name is None else display_name_problem(options.name)
    if name_problem:
        parser.error(f"--name: {name_problem}")
    try:
        url = chat_url(options.url, name=options.name, room=options.room)
    except BadUrlError as error:
        parser.error(str(error))
    return interactive.run(
        url, raw=options.json, linger_seconds=options.wait, room=options.room or "lobby", token=options.token
    )


if __name__ == "__main__":
    sys.exit(main())
