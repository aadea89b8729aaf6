"""The display-name rule, shared by `$connect` (`?name=`) and the signed tokens the authorizer verifies."""

from __future__ import annotations

MAX_DISPLAY_NAME_CHARS = 32


def display_name_problem(name: object) -> str | None:
    """Why `name` is not an acceptable display name (a sentence), or None when it is.

    The rule: text of 1 to 32 printable characters that is not blank and has no leading or trailing whitespace.
    """
    if not isinstance(name, str):
        return f"a display name must be text, got {type(name).__name__}"
    if not name.strip():
        return "a display name must not be empty or blank"
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        return f"a display name must be at most {MAX_DISPLAY_NAME_CHARS} characters, got {len(name)}"
    if not name.isprintable():
        return "a display name must contain printable characters only"
    if name != name.strip():
        return "a display name must not start or end with whitespace"
    return None
