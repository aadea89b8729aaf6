"""Command-line tools for the chat: an interactive client like `wscat` and a smoke test for any stack.

`python -m client URL` chats; `python -m client smoke URL` checks a local emulator or a deployed stack end to end.
Both speak the wire protocol described in docs/client.md and work the same against `ws://` and `wss://` URLs.
"""
