"""The JSON Schemas of the server's frames (`schemas/`), and a check that a frame matches the one for its type."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


@cache
def validators() -> dict[str, Draft202012Validator]:
    """One validator per frame type (file stem), resolving `$ref`s between the schemas."""
    loaded = {path.name: json.loads(path.read_text(encoding="utf-8")) for path in SCHEMAS.glob("*.schema.json")}
    registry: Registry[Any] = Registry().with_resources(
        (name, Resource.from_contents(schema)) for name, schema in loaded.items()
    )
    found = {}
    for name, schema in loaded.items():
        Draft202012Validator.check_schema(schema)
        found[name.removesuffix(".schema.json")] = Draft202012Validator(schema, registry=registry)
    return found


def frame_problems(data: bytes) -> list[str]:
    """Why a frame the server sent does not match its type's schema; empty when it does."""
    frame = json.loads(data)
    kind = frame.get("type", "gateway-error") if isinstance(frame, dict) else None
    validator = validators().get(str(kind))
    if validator is None:
        return [f"no schema for frame type {kind!r}: add schemas/{kind}.schema.json"]
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(frame)]
