"""The policy pack over what the real program registers (under the shared mocks) for each stack's config.

Every stack with a `Pulumi.<stack>.yaml` must pass the mandatory policies, and the pass must not be vacuous: the
program has to register the resources the policies judge. Then the real program is broken the way a careless
change would break it, and the pack has to stop it.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from app import definition, settings
from handlers import environment
from tests.infra.mocks import ConfigValue, ProgramRun, run_program, shared_run
from tests.policy.harness import Violation, run_policies, run_stack_policies
from tests.policy.workflows import stack_configs

JUDGED_TYPES = (
    "aws:lambda/function:Function",
    "aws:lambda/permission:Permission",
    "aws:apigatewayv2/stage:Stage",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:dynamodb/table:Table",
    "aws:iam/role:Role",
)


def program_violations(run: ProgramRun) -> list[Violation]:
    """Every violation the pack reports on the program's resources (components are not sent to policies):
    resource policies on each one's inputs, stack policies on everyone's outputs."""
    custom = [resource for resource in run.resources if resource.custom]
    return [
        violation for resource in custom for violation in run_policies(resource.type, resource.inputs, resource.urn)
    ] + run_stack_policies([(resource.type, resource.urn, resource.outputs) for resource in custom])


def mandatory(violations: list[Violation]) -> list[str]:
    return [
        f"{violation.policy} on {violation.urn}: {violation.message}" for violation in violations if violation.mandatory
    ]


def test_dev_and_prod_are_configured() -> None:
    assert {"dev", "prod"} <= stack_configs(), f"stack configs: {stack_configs()}"


@pytest.mark.parametrize("stack", sorted(stack_configs()))
def test_stack_config_passes_the_mandatory_policies(stack: str) -> None:
    run = shared_run(stack)
    for type_token in JUDGED_TYPES:
        assert run.of_type(type_token), f"{stack}: the program registered no {type_token}, so no policy judged it"
    callback_grants = [
        resource.urn
        for resource in run.resources
        if "execute-api:ManageConnections" in json.dumps(resource.inputs.get("policy", ""))
        or "execute-api:ManageConnections" in json.dumps(resource.inputs.get("inlinePolicies", ""))
    ]
    assert callback_grants, f"{stack}: no IAM document grants ManageConnections, so the callback policy judged none"
    blocking = mandatory(program_violations(run))
    assert not blocking, f"{stack}: mandatory policies fail:\n" + "\n".join(blocking)


EVERY_FEATURE: dict[str, ConfigValue] = {
    "auth": "jwt",
    "jwtSecret": "policy-test-signing-secret-0123456789abcdef",
    "tracing": True,
    "reservedConcurrency": 5,
    "alarmEmail": "ops@example.com",
    "customDomainName": "chat.example.com",
    "certificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-policy-test",
    "hostedZoneId": "Z0POLICYTEST",
    "executionLoggingLevel": "ERROR",
    "tableKmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-policy-test",
}
"""Every optional setting turned on: the authorizer, custom domain, alarms, tracing, execution logging, a CMK."""


def test_prod_with_every_feature_on_passes_every_policy() -> None:
    run = run_program("prod", EVERY_FEATURE)
    assert run.of_type("aws:apigatewayv2/authorizer:Authorizer"), "the authorizer was not built, so not judged"
    found = [f"{v.policy} on {v.urn}: {v.message}" for v in program_violations(run)]
    assert not found, "with every feature on, policies report:\n" + "\n".join(found)


def test_a_runtime_the_settings_accept_but_aws_deprecated_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # A runtime that ages out after a release of this program: the settings still list it, the policy stops it.
    monkeypatch.setattr(settings, "SUPPORTED_RUNTIMES", ("python3.10", *settings.SUPPORTED_RUNTIMES))
    run = run_program("dev", {"lambdaRuntime": "python3.10"})
    violations = [v for v in program_violations(run) if v.mandatory]
    assert {v.policy for v in violations} == {"lambda-runtime-supported"}, f"unexpected: {mandatory(violations)}"
    functions = {resource.urn for resource in run.of_type("aws:lambda/function:Function")}
    assert {v.urn for v in violations} == functions, f"not every python3.10 function was stopped: {violations}"


def test_a_wildcard_table_action_in_the_definition_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    careless = dataclasses.replace(
        definition.SEND_MESSAGE, table_access=(definition.TableAccess(environment.TABLE_NAME, ("dynamodb:*",)),)
    )
    monkeypatch.setattr(
        definition,
        "FUNCTIONS",
        tuple(careless if function.name == careless.name else function for function in definition.FUNCTIONS),
    )
    monkeypatch.setattr(
        definition,
        "ROUTES",
        tuple(
            dataclasses.replace(route, function=careless) if route.function.name == careless.name else route
            for route in definition.ROUTES
        ),
    )
    blocking = mandatory(program_violations(run_program("dev")))
    assert any("iam-no-wildcard-actions" in line and "dynamodb:*" in line for line in blocking), (
        f"a dynamodb:* grant in send-message's role passed the pack: {blocking}"
    )
