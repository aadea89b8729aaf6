"""The hardening components pass the team's policy pack (`policy/`), the way `pulumi preview --policy-pack` runs it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pytest

from app.settings import StackSettings
from infra.authorization import TokenAuthorizer, TokenAuthorizerArgs
from infra.domain import build_custom_domain
from infra.monitoring import Monitoring, MonitoringArgs
from policy.rules import STACK_RULES, StackResource
from tests.hardening.harness import ComponentRun, run_components
from tests.policy.harness import run_policies

PROD_LIKE = StackSettings(
    stage_name="prod",
    auth="jwt",
    tracing=True,
    reserved_concurrency=20,
    log_retention_days=365,
    custom_domain_name="chat.example.com",
    certificate_arn="arn:aws:acm:us-east-1:123456789012:certificate/0b9d3e5c-1a2b-4c3d-8e9f-001122334455",
    hosted_zone_id="Z0123456789ABCDEFGHIJ",
    alarm_email="ops@example.com",
)
"""Every hardening feature on, as the prod profile would have it."""


def _everything(settings: StackSettings) -> ComponentRun:
    def build() -> Any:
        authorizer = TokenAuthorizer(
            "authorizer",
            TokenAuthorizerArgs(
                api_id="a1b2c3d4e5",
                execution_arn="arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5",
                secret=pulumi.Output.secret("k3Q1xv0cB7oW2yq5G9r8Zt4nL6mH1sDfJ2pAe0uYiKc="),
                code=pulumi.AssetArchive({"handlers/authorizer.py": pulumi.StringAsset("")}),
                code_hash=None,
                settings=settings,
            ),
        )
        build_custom_domain("domain", settings=settings, api_id="a1b2c3d4e5", stage_name=settings.stage_name)
        Monitoring(
            "monitoring",
            MonitoringArgs(
                api_id="a1b2c3d4e5",
                stage_name=settings.stage_name,
                functions={"authorizer": authorizer.function_name},
                region="us-east-1",
                settings=settings,
            ),
        )
        return authorizer.authorizer_id

    return run_components(build)


@pytest.mark.parametrize("tracing", [True, False], ids=["tracing", "no-tracing"])
def test_every_resource_passes_the_mandatory_policies(tracing: bool) -> None:
    run = _everything(dataclasses.replace(PROD_LIKE, tracing=tracing))
    for resource in run.resources:
        blocking = [v for v in run_policies(resource.type, resource.inputs, resource.urn) if v.mandatory]
        assert blocking == [], f"{resource} is stopped by the policy pack: {blocking}"


def test_with_tracing_on_no_advisory_policy_reports_anything() -> None:
    run = _everything(PROD_LIKE)
    for resource in run.resources:
        reported = run_policies(resource.type, resource.inputs, resource.urn)
        assert reported == [], f"{resource} gets advisories with every feature on: {reported}"


def test_stack_rules_pass() -> None:
    run = _everything(PROD_LIKE)
    stack = [StackResource(resource.type, resource.urn, resource.outputs) for resource in run.resources]
    for rule in STACK_RULES:
        assert rule.check(stack) == [], f"stack rule {rule.name} fails: {rule.check(stack)}"
