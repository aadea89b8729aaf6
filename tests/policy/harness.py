"""Runs the registered policies over one resource the way the Pulumi engine does, without the engine.

The inputs take the analyzer's path: numbers become floats (a protobuf Struct, the wire format, has no integers),
then pulumi-policy's own deserializer unpacks them and its unknown-checking proxy wraps them. Then every
`ResourceValidationPolicy` of `policy.pack.POLICIES` validates them, and what they report is collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResourceOptions,
    ResourceValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from policy.pack import POLICIES


@dataclass(frozen=True)
class Violation:
    """One reported violation: which policy, how hard it blocks, on what, and its message."""

    policy: str
    mandatory: bool
    urn: str
    message: str


def _on_the_wire(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _on_the_wire(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_on_the_wire(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def engine_view(props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The inputs as a policy sees them during `pulumi preview`/`up`."""
    proxied: Mapping[str, Any] = unknown_checking_proxy(deserialize_properties(_on_the_wire(props)))
    return proxied


def run_policies(resource_type: str, props: Mapping[str, Any], urn: str = "") -> list[Violation]:
    """Every violation the pack's resource policies report for one resource."""
    name = urn.rsplit("::", 1)[-1] if urn else "resource"
    urn = urn or f"urn:pulumi:test::websocket-chat::{resource_type}::{name}"
    options = PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    args = ResourceValidationArgs(resource_type, engine_view(props), urn, name, options, None)
    found: list[Violation] = []
    for policy in POLICIES:
        mandatory = policy.enforcement_level == EnforcementLevel.MANDATORY

        def report(message: str, _urn: str | None = None, *, policy_name: str = policy.name,
                   is_mandatory: bool = mandatory) -> None:
            found.append(Violation(policy_name, is_mandatory, urn, message))

        policy.validate(args, report)
    return found
