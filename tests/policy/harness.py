"""Runs the registered policies over resources the way the Pulumi engine does, without the engine.

Properties take the analyzer's path: numbers become floats (a protobuf Struct, the wire format, has no integers),
then pulumi-policy's own deserializer unpacks them and its unknown-checking proxy wraps them. Then the pack's
`ResourceValidationPolicy` objects validate one resource's inputs, or its `StackValidationPolicy` objects the whole
stack's outputs, and what they report is collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from policy.pack import RESOURCE_POLICIES, STACK_POLICIES


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


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def urn_of(resource_type: str, name: str) -> str:
    """A URN in a made-up stack, for resources built by hand."""
    return f"urn:pulumi:test::websocket-chat::{resource_type}::{name}"


def run_policies(resource_type: str, props: Mapping[str, Any], urn: str = "") -> list[Violation]:
    """Every violation the pack's resource policies report for one resource."""
    urn = urn or urn_of(resource_type, "resource")
    name = urn.rsplit("::", 1)[-1]
    args = ResourceValidationArgs(resource_type, engine_view(props), urn, name, _options(), None)
    found: list[Violation] = []
    for policy in RESOURCE_POLICIES:
        mandatory = policy.enforcement_level == EnforcementLevel.MANDATORY

        def report(
            message: str, _urn: str | None = None, *, policy_name: str = policy.name, is_mandatory: bool = mandatory
        ) -> None:
            found.append(Violation(policy_name, is_mandatory, urn, message))

        policy.validate(args, report)
    return found


def run_stack_policies(resources: Sequence[tuple[str, str, Mapping[str, Any]]]) -> list[Violation]:
    """Every violation the pack's stack policies report; `resources` are (type, URN, outputs)."""
    stack = [
        PolicyResource(resource_type, engine_view(outputs), urn, name, _options(), None, None, [], {})
        for resource_type, urn, outputs in resources
        for name in [urn.rsplit("::", 1)[-1]]
    ]
    found: list[Violation] = []
    for policy in STACK_POLICIES:
        mandatory = policy.enforcement_level == EnforcementLevel.MANDATORY

        def report(
            message: str, urn: str | None = None, *, policy_name: str = policy.name, is_mandatory: bool = mandatory
        ) -> None:
            found.append(Violation(policy_name, is_mandatory, urn or "", message))

        policy.validate(StackValidationArgs(stack), report)
    return found
