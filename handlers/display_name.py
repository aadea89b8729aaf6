"""The display-name rule, shared by `$connect` (`?name=`), the signed tokens the authorizer verifies and `publish`.

Names are checked on their NFKC form, which is what is stored and shown, and look-alikes compare equal through
`name_key`, so nobody can pose as a name held in the room (docs/handlers.md lists the rule).
"""

from __future__ import annotations

import re
import unicodedata

MAX_DISPLAY_NAME_CHARS = 32
MAX_COMBINING_MARKS = 2
"""Marks on one base character: enough for Vietnamese (`ệ`), too few for a tower that covers other lines."""

_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
"""Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt) plus U+2800 BRAILLE PATTERN BLANK,
which is a symbol by category yet renders blank. The standard library has no such property, hence the table."""

_PADDED_ID = re.compile(r"[A-Za-z0-9+/_-]{8,24}={1,2}")
_BARE_ID = re.compile(r"(?=.*[0-9])(?=.*[a-z])(?=.*[A-Z])[A-Za-z0-9+/]{16}")
"""API Gateway ids are 16 base64 characters (`L0SM9cOFvHcCIhw=`), and pages show the id of a sender without a name:
base64 ending in padding, or 16 base64 characters mixing digits and both cases, is refused."""
_YOU_SUFFIX = re.compile(r"\(\s*you\s*\)\s*$", re.IGNORECASE)
_CHECKED_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")

_LOOK_ALIKES = str.maketrans(
    (
        "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u051b\u051d\u04bb\u04cf\u0432"
        "\u043a\u043c\u043d\u0442\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425"
        "\u0406\u0408\u0405\u03b1\u03bf\u03c1\u03b9\u03c5\u03bd\u03ba\u03c4\u03b2\u03b5\u03b6\u03b7\u03bc"
        "\u03c7\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a70"
        "1"
    ),
    "aeopcyxijsdqwhlbkmhtABEKMHOPCTYXIJSaopiuvktbezhnxABEZHIKMNOPTYXol",
)
"""Cyrillic and Greek letters (and digits) that render like Latin ones, mapped to them for `name_key` only."""


def normalize(name: str) -> str:
    """The form a name is checked, stored and shown in: NFKC."""
    return unicodedata.normalize("NFKC", name)


def display_name_problem(name: object) -> str | None:
    """Why `name` is not an acceptable display name (a sentence), or None when it is.

    Checked on the NFKC form: printable, not blank, no outer whitespace, none of the shapes docs/handlers.md lists.
    """
    if not isinstance(name, str):
        return f"a display name must be text, got {type(name).__name__}"
    if not name.strip():
        return "a display name must not be empty or blank"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "a display name must contain printable characters only"
    name = normalize(name)
    if len(name) > MAX_DISPLAY_NAME_CHARS:
        return f"a display name must be at most {MAX_DISPLAY_NAME_CHARS} characters, got {len(name)}"
    if not name.isprintable():
        return "a display name must contain printable characters only"
    if name != name.strip():
        return "a display name must not start or end with whitespace"
    return _shape_problem(name)


def _shape_problem(name: str) -> str | None:
    """The impersonation checks, on a normalised name that is already printable and trimmed."""
    if any(_invisible(character) for character in name):
        return "a display name must not contain invisible or blank filler characters"
    if unicodedata.category(name[0]).startswith("M"):
        return "a display name must not start with a combining mark"
    if _longest_mark_run(name) > MAX_COMBINING_MARKS:
        return f"a display name may carry at most {MAX_COMBINING_MARKS} combining marks on one character"
    scripts = {_script(character) for character in name} & set(_CHECKED_SCRIPTS)
    if len(scripts) > 1:
        return "a display name must not mix Latin, Cyrillic and Greek letters"
    if _YOU_SUFFIX.search(name):
        return 'a display name must not end in "(you)"'
    if _PADDED_ID.fullmatch(name) or _BARE_ID.fullmatch(name):
        return "a display name must not look like a connection id"
    return None


def name_key(name: str) -> str:
    """What two names must differ in to be held at once in one room: NFKC, look-alikes folded to Latin, case."""
    return normalize(name).translate(_LOOK_ALIKES).casefold()


def _invisible(character: str) -> bool:
    code = ord(character)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def _longest_mark_run(name: str) -> int:
    longest = run = 0
    for character in name:
        run = run + 1 if unicodedata.category(character).startswith("M") else 0
        longest = max(longest, run)
    return longest


def _script(character: str) -> str:
    if not character.isalpha():
        return ""
    return unicodedata.name(character, "").split(" ", 1)[0]
