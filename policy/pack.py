"""The rules of `policy/rules.py` as pulumi-policy `ResourceValidationPolicy`/`StackValidationPolicy` objects.

Importing this module only builds the policy objects; `policy/__main__.py` hands them to `PolicyPack`, which is
what starts the analyzer server Pulumi talks to. Tests drive these same objects through pulumi-policy's own
`validate` API, so the wiring (names, enforcement levels, how violations are reported) is tested too.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidation,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import RULES, STACK_RULES, Rule, StackResource, StackRule

PACK_NAME = "websocket-chat-guard-rails"
"""The name `pulumi preview` prints next to each violation."""


def _validator(rule: Rule) -> ResourceValidation:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _stack_validator(rule: StackRule) -> StackValidation:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [StackResource(resource.resource_type, resource.urn, resource.props) for resource in args.resources]
        for urn, message in rule.check(resources):
            report_violation(message, urn)

    return validate


def _level(mandatory: bool) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if mandatory else EnforcementLevel.ADVISORY


def _description(rule: Rule | StackRule) -> str:
    return f"{rule.description} (scanners: {', '.join(rule.scanner_ids)})"


RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    ResourceValidationPolicy(
        name=rule.name,
        description=_description(rule),
        validate=_validator(rule),
        enforcement_level=_level(rule.mandatory),
    )
    for rule in RULES
]
"""One policy per resource rule, in the order of `RULES`."""

STACK_POLICIES: list[StackValidationPolicy] = [
    StackValidationPolicy(
        name=rule.name,
        description=_description(rule),
        validate=_stack_validator(rule),
        enforcement_level=_level(rule.mandatory),
    )
    for rule in STACK_RULES
]
"""One policy per stack rule, in the order of `STACK_RULES`."""

POLICIES: list[Policy] = [*RESOURCE_POLICIES, *STACK_POLICIES]
"""Everything the pack serves."""
