"""Pulumi.yaml's config block and the README's settings table, generated from `app.settings`.

`python -m app.settings_doc --write` rewrites both between their markers; without `--write` it exits 1 when either
differs from what `app.settings` gives, so the settings are described once, in `app/settings.py`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from app.settings import KEYS, SECRET_KEYS, Key, StackSettings

REPOSITORY = Path(__file__).resolve().parents[1]
PROJECT_FILE = REPOSITORY / "Pulumi.yaml"
README = REPOSITORY / "README.md"

YAML_BEGIN = "# BEGIN settings, generated from app/settings.py by `python -m app.settings_doc --write`"
YAML_END = "# END settings"
README_BEGIN = "<!-- BEGIN settings, generated from app/settings.py by `python -m app.settings_doc --write` -->"
README_END = "<!-- END settings -->"

_NO_DEFAULT = object()
_PULUMI_TYPES = {int: "integer", bool: "boolean", str: "string", float: "string"}
_WIDTH = 116


def default_of(key: Key) -> Any:
    """The key's default in `StackSettings`, or `_NO_DEFAULT` when the field has none (the stage name)."""
    field = next(field for field in dataclasses.fields(StackSettings) if field.name == key.field)
    return _NO_DEFAULT if field.default is dataclasses.MISSING else field.default


def declared_keys() -> list[Key]:
    """Keys with a fixed default; Pulumi treats a declared key without a default as required, so only these."""
    return [key for key in KEYS if default_of(key) not in (None, _NO_DEFAULT)]


def pulumi_config_block() -> str:
    """The generated part of Pulumi.yaml: a comment on the undeclared keys, then `config:`."""
    optional = ", ".join(key.name for key in KEYS if key not in declared_keys())
    lines = [
        YAML_BEGIN,
        *_comment(
            "Every setting with a default is declared here; app/settings.py validates them. Not declared, because "
            "the Pulumi CLI treats a declared key without a default as required, yet these are optional: "
            f"{optional}. Set them per stack like any other key: `pulumi config set stageName live`. "
            f"Secrets, never declared here: {', '.join(SECRET_KEYS)} (`pulumi config set --secret ...`)."
        ),
        "config:",
    ]
    for key in declared_keys():
        default = default_of(key)
        lines.append(f"  {key.name}:")
        if isinstance(default, float):
            lines.append(
                "    # A string because project config types have no decimal number; the program reads it as one."
            )
        lines.append(f"    type: {_PULUMI_TYPES[type(default)]}")
        lines.extend(_yaml_text("description", key.description))
        lines.append(f"    default: {_yaml_scalar(default)}")
    lines.append(YAML_END)
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    """The README's table of every setting: key, default, description."""
    rows = [README_BEGIN, "| key | default | what |", "|---|---|---|"]
    for key in KEYS:
        default = default_of(key)
        shown = "unset" if default in (None, _NO_DEFAULT) else f"`{_readme_value(default)}`"
        description = key.description.replace("|", "\\|")
        rows.append(f"| `{key.name}` | {shown} | {description} |")
    rows.append(README_END)
    return "\n".join(rows) + "\n"


def render(text: str, begin: str, end: str, block: str, path: Path) -> str:
    """`text` with the lines from `begin` to `end` replaced by `block`; ValueError when a marker is missing."""
    lines = text.splitlines(keepends=True)
    try:
        first = next(index for index, line in enumerate(lines) if line.rstrip("\n") == begin)
        last = next(index for index in range(first, len(lines)) if lines[index].rstrip("\n") == end)
    except StopIteration:
        raise ValueError(f"{path.name}: the markers {begin!r} and {end!r} are missing") from None
    return "".join(lines[:first]) + block + "".join(lines[last + 1 :])


def generated() -> dict[Path, str]:
    """Each generated file's full text as `app.settings` gives it."""
    return {
        PROJECT_FILE: render(PROJECT_FILE.read_text(), YAML_BEGIN, YAML_END, pulumi_config_block(), PROJECT_FILE),
        README: render(README.read_text(), README_BEGIN, README_END, readme_table(), README),
    }


def main(argv: list[str] | None = None) -> int:
    """Write the files with `--write`; otherwise report drift and exit 1 if there is any."""
    parser = argparse.ArgumentParser(prog="python -m app.settings_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite Pulumi.yaml and README.md")
    arguments = parser.parse_args(argv)
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if arguments.write:
        for path, text in generated().items():
            path.write_text(text)
        return 0
    for path in stale:
        print(f"{path.name} is out of date with app/settings.py: run python -m app.settings_doc --write")
    return 1 if stale else 0


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, _WIDTH - 2)]


def _yaml_text(name: str, text: str) -> list[str]:
    line = f"    {name}: {json.dumps(text, ensure_ascii=False)}"
    if len(line) <= _WIDTH:
        return [line]
    # A folded block joins its lines with single spaces, which is what wrapping at spaces took out.
    return [f"    {name}: >-", *(f"      {part}" for part in textwrap.wrap(text, _WIDTH - 6))]


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # Quoted: YAML would read OFF, none or 1000 as a boolean, null or number.
    return json.dumps(_readme_value(value))


def _readme_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
