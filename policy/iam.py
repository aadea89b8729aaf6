"""Reading IAM policy documents out of resource inputs, the way the rules need them.

The engine hands a policy pack the resource's inputs with Pulumi's property names (`inlinePolicies`, `policy`) and
policy documents as JSON strings. These helpers find every document a resource carries and split it into
statements whose `Action`/`Resource` are always lists, so the rules never deal with IAM's "string or list" forms.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DOCUMENT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:iam/policy:Policy": ("policy",),
    "aws:iam/rolePolicy:RolePolicy": ("policy",),
    "aws:iam/userPolicy:UserPolicy": ("policy",),
    "aws:iam/groupPolicy:GroupPolicy": ("policy",),
    "aws:iam/role:Role": ("assumeRolePolicy",),
}
"""Resource types whose inputs hold a whole policy document, and the properties that hold it."""

ROLE_TYPE = "aws:iam/role:Role"


@dataclass(frozen=True)
class Statement:
    """One statement of a policy document, normalised."""

    where: str
    """Where it came from, for messages: `policy statement 2 ("CallbackApi")`."""
    effect: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
    resources: tuple[str, ...]
    not_resources: tuple[str, ...]

    @property
    def allows(self) -> bool:
        """Whether it grants (rather than denies) access."""
        return self.effect.lower() == "allow"


@dataclass(frozen=True)
class Document:
    """A policy document found in a resource's inputs, or the reason it could not be read."""

    where: str
    statements: tuple[Statement, ...]
    error: str | None = None


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence):
        return tuple(str(item) for item in value)
    return (str(value),)


def parse_document(where: str, document: Any) -> Document:
    """Parse a document given as a JSON string or an already-decoded mapping."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as error:
            return Document(where, (), f"{where} is not valid JSON ({error})")
    if not isinstance(document, Mapping):
        return Document(where, (), f"{where} is not a policy document (a JSON object with a Statement list)")
    raw_statements = document.get("Statement", ())
    if isinstance(raw_statements, Mapping):
        raw_statements = (raw_statements,)
    statements = []
    for index, raw in enumerate(raw_statements, start=1):
        if not isinstance(raw, Mapping):
            return Document(where, (), f"{where} statement {index} is not a JSON object")
        sid = raw.get("Sid")
        label = f"{where} statement {index}" + (f' ("{sid}")' if sid else "")
        statements.append(
            Statement(
                where=label,
                effect=str(raw.get("Effect", "")),
                actions=_strings(raw.get("Action")),
                not_actions=_strings(raw.get("NotAction")),
                resources=_strings(raw.get("Resource")),
                not_resources=_strings(raw.get("NotResource")),
            )
        )
    return Document(where, tuple(statements))


def documents(resource_type: str, props: Mapping[str, Any]) -> list[Document]:
    """Every policy document in a resource's inputs (a role's inline policies included)."""
    found = [
        parse_document(name, props[name])
        for name in DOCUMENT_PROPERTIES.get(resource_type, ())
        if props.get(name) is not None
    ]
    if resource_type == ROLE_TYPE:
        for index, inline in enumerate(props.get("inlinePolicies") or (), start=1):
            if isinstance(inline, Mapping) and inline.get("policy") is not None:
                label = f"inline policy {inline.get('name') or index}"
                found.append(parse_document(label, inline["policy"]))
    return found


def has_wildcard(pattern: str) -> bool:
    """Whether an IAM action or ARN pattern matches more than one literal value."""
    return "*" in pattern or "?" in pattern


def grants(pattern: str, action: str) -> bool:
    """Whether an IAM action pattern (`execute-api:*`, `*`) covers `action`; IAM matches case-insensitively."""
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())
