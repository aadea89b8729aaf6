"""The rules of `policy/rules.py` as pulumi-policy `ResourceValidationPolicy` objects.

Importing this module only builds the policy objects; `policy/__main__.py` hands them to `PolicyPack`, which is
what starts the analyzer server Pulumi talks to. Tests drive these same objects through pulumi-policy's own
`validate` API, so the wiring (names, enforcement levels, how violations are reported) is tested too.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policy.rules import RULES, Rule

PACK_NAME = "websocket-chat-guard-rails"
"""The name `pulumi preview` prints next to each violation."""


def _validator(rule: Rule) -> ResourceValidation:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    return validate


def _policy(rule: Rule) -> ResourceValidationPolicy:
    level = EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY
    return ResourceValidationPolicy(
        name=rule.name,
        description=f"{rule.description} (scanners: {', '.join(rule.scanner_ids)})",
        validate=_validator(rule),
        enforcement_level=level,
    )


POLICIES: list[ResourceValidationPolicy] = [_policy(rule) for rule in RULES]
"""One policy per rule, in the order of `RULES`."""
